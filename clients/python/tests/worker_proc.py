"""A worker process for the signal tests.

usage: worker_proc.py URL QUEUE CONCURRENCY SLEEP_S LOG_FILE [LEASE_S]

Runs a spool Worker whose handler appends "start <id> <attempt>" to LOG_FILE,
sleeps SLEEP_S, then appends "done <id> <attempt>". Exits 0 after a graceful
stop with every running job finished, 3 when jobs had to be handed back.
"""
import logging
import os
import sys
import time

try:
    from spool import Worker
except ImportError:  # a checkout without an install
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from spool import Worker


def main() -> int:
    url, queue, conc, sleep_s, log_file = sys.argv[1:6]
    lease = float(sys.argv[6]) if len(sys.argv) > 6 else None
    logging.basicConfig(level=logging.INFO, format="worker: %(levelname)s: %(message)s")
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def handler(job):
        os.write(fd, ("start %s %s\n" % (job.id, job.attempt)).encode())
        time.sleep(float(sleep_s))
        os.write(fd, ("done %s %s\n" % (job.id, job.attempt)).encode())
        return None

    w = Worker(queue, handler, concurrency=int(conc), connection=url, lease=lease, stop_timeout=20)
    clean = w.run()
    print("counters %s" % (w.counters,), flush=True)
    return 0 if clean else 3


if __name__ == "__main__":
    sys.exit(main())
