#!/usr/bin/python3
"""python-email - a spool worker that sends the jobs of queue `emails`
through SMTP with smtplib (the Python twin of examples/email-sender).

Payload: {"to": "...", "subject": "...", "body": "..."} (all strings).
Outcome per job, from the SMTP server's reply:
  2xx             done (ack)
  4xx             retried later (the server said "try again"), also when
                  the server cannot be reached at all
  5xx             dead at once (UnrecoverableError) with the server's own
                  text as last_error, e.g. "550 5.1.1 <x@y>: Recipient
                  address rejected: no such user"
  a bad payload   dead at once, saying which field is wrong

Each message carries "X-Spool-Job: <job id>" and "Message-ID: <id@spool>",
so a receiving system can drop the duplicate that a redelivery after a lost
acknowledgement may produce (at-least-once delivery).

Settings, flag or environment: --url / SPOOL_URL, --smtp / SMTP_URL
(smtp://127.0.0.1:25), --from / SMTP_FROM, --user / SMTP_USER,
--password / SMTP_PASSWORD, --concurrency N, --queue NAME, --timeout S.
Stops cleanly on SIGTERM/SIGINT (running sends finish first).

Threads: the Worker's; each thread keeps its own SMTP connection
(threading.local), reused between jobs and reopened after an error.
"""
import argparse
import logging
import os
import smtplib
import sys
import threading
from email.message import EmailMessage
from urllib.parse import urlsplit

try:
    from spool import UnrecoverableError, Worker
except ImportError:  # running from a checkout without `pip install ./clients/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    from spool import UnrecoverableError, Worker


class Mailer:
    def __init__(self, smtp_url, sender, user=None, password=None, timeout=30.0):
        u = urlsplit(smtp_url)
        if u.scheme not in ("smtp", "smtps") or not u.hostname:
            raise SystemExit("--smtp %r: use smtp://host[:port] or smtps://host[:port]" % smtp_url)
        self.scheme, self.host = u.scheme, u.hostname
        self.port = u.port or (465 if u.scheme == "smtps" else 25)
        self.sender, self.user, self.password, self.timeout = sender, user, password, timeout
        self.local = threading.local()

    def _connection(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = smtplib.SMTP_SSL if self.scheme == "smtps" else smtplib.SMTP
            conn = cls(self.host, self.port, timeout=self.timeout)
            if self.user:
                conn.login(self.user, self.password or "")
            self.local.conn = conn
        return conn

    def _drop(self):
        conn = getattr(self.local, "conn", None)
        self.local.conn = None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, job):
        msg = build_message(job, self.sender)
        try:
            conn = self._connection()
            refused = conn.send_message(msg)
        except smtplib.SMTPRecipientsRefused as e:
            self._reset()
            code, text = next(iter(e.recipients.values()))
            fail(code, text)
        except smtplib.SMTPResponseException as e:  # sender refused, data refused, ...
            self._reset()
            fail(e.smtp_code, e.smtp_error)
        except (smtplib.SMTPException, OSError) as e:
            self._drop()
            raise RuntimeError("cannot send through %s:%d: %s" % (self.host, self.port, e)) from None
        if refused:  # some recipients were refused; there is only one
            code, text = next(iter(refused.values()))
            fail(code, text)
        return {"message_id": msg["Message-ID"]}

    def _reset(self):
        try:
            self.local.conn.rset()
        except (smtplib.SMTPException, OSError, AttributeError):
            self._drop()


def fail(code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    line = "%d %s" % (code, text.replace("\r", " ").replace("\n", " "))
    if 500 <= code < 600:
        raise UnrecoverableError(line)
    raise RuntimeError(line)  # 4xx: try again later


def build_message(job, sender):
    data = job.data
    if not isinstance(data, dict):
        raise UnrecoverableError("payload must be a JSON object with \"to\", \"subject\" and \"body\"")
    for field in ("to", "subject", "body"):
        if not isinstance(data.get(field), str):
            raise UnrecoverableError("payload field %r is missing or not a string" % field)
    for field in ("to", "subject"):
        if "\n" in data[field] or "\r" in data[field]:
            raise UnrecoverableError("payload field %r must not contain a line break" % field)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = data["to"]
    msg["Subject"] = data["subject"]
    msg["Message-ID"] = "<%s@spool>" % job.id
    msg["X-Spool-Job"] = job.id
    msg.set_content(data["body"])
    return msg


def main(argv=None):
    p = argparse.ArgumentParser(description="Send the jobs of a spool queue as email over SMTP.")
    p.add_argument("--url", default=os.environ.get("SPOOL_URL", "spool://127.0.0.1:7379"))
    p.add_argument("--smtp", default=os.environ.get("SMTP_URL", "smtp://127.0.0.1:25"))
    p.add_argument("--from", dest="sender", default=os.environ.get("SMTP_FROM", "spool@localhost"))
    p.add_argument("--user", default=os.environ.get("SMTP_USER"))
    p.add_argument("--password", default=os.environ.get("SMTP_PASSWORD"))
    p.add_argument("--queue", default="emails")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=30.0, help="SMTP timeout, seconds")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="python-email: %(levelname)s: %(message)s")
    mailer = Mailer(a.smtp, a.sender, a.user, a.password, a.timeout)
    worker = Worker(a.queue, mailer.handle, connection=a.url, concurrency=a.concurrency, name="python-email")
    return 0 if worker.run() else 1


if __name__ == "__main__":
    sys.exit(main())
