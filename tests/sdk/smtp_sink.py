#!/usr/bin/python3
"""smtp_sink.py - a local SMTP server for the email-sender test (aiosmtpd).

usage: smtp_sink.py PORT_FILE MAIL_DIR

Listens on 127.0.0.1 on a free port and writes that port (and a newline)
to PORT_FILE once it accepts connections. Every accepted message is written
to MAIL_DIR/<n>.eml (written under a temporary name, then renamed, so a
reader never sees half a message). Recipients decide the reply, to give the
test every path of the worker:
  *reject*   550 5.1.1 <addr>: Recipient address rejected: no such user
  *flaky*    451 4.3.0 try again later, the first time for each address
  others     accepted
Stops on SIGTERM.
"""
import asyncio
import os
import signal
import socket
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, mail_dir):
        self.mail_dir = mail_dir
        self.count = 0
        self.flaky_seen = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "reject" in address:
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        if "flaky" in address and address not in self.flaky_seen:
            self.flaky_seen.add(address)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = os.path.join(self.mail_dir, "%d.eml" % self.count)
        tmp = os.path.join(self.mail_dir, ".%d.tmp" % self.count)
        with open(tmp, "wb") as f:
            f.write(("X-Rcpt-To: %s\r\n" % ",".join(envelope.rcpt_tos)).encode())
            f.write(envelope.original_content)
        os.rename(tmp, name)
        return "250 Message accepted for delivery"


def main():
    port_file, mail_dir = sys.argv[1], sys.argv[2]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sink = Sink(mail_dir)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(sink, hostname="sink.local"), sock=sock))
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % sock.getsockname()[1])
    os.rename(tmp, port_file)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    server.close()


if __name__ == "__main__":
    main()
