#!/usr/bin/python3
"""python-noop-bench - how many jobs per second the Python Worker moves with
a handler that does nothing: the SDK's own overhead plus the broker's
JOB.RESERVE + JOB.ACK round trips (the Python twin of examples/noop-bench).

usage: bench.py [--url spool://host:port] [--concurrency N] [--jobs N] [--queue NAME]

Pushes --jobs jobs (add_bulk, 1000 per round trip) to a fresh queue, then
starts a Worker with --concurrency threads and times from its start until
every job is acked. Prints one line:
  concurrency=50 jobs=20000 seconds=1.234 jobs_per_sec=16207
"""
import argparse
import os
import sys
import time
import uuid

try:
    from spool import Queue, Worker
except ImportError:  # running from a checkout without `pip install ./clients/python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    from spool import Queue, Worker


def main(argv=None):
    p = argparse.ArgumentParser(description="Time a no-op Python worker over N jobs.")
    p.add_argument("--url", default=os.environ.get("SPOOL_URL", "spool://127.0.0.1:7379"))
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--jobs", type=int, default=10000)
    p.add_argument("--queue", default="noop-bench-py-" + uuid.uuid4().hex[:8])
    a = p.parse_args(argv)
    q = Queue(a.queue, connection=a.url)
    for start in range(0, a.jobs, 1000):
        q.add_bulk({"data": {"n": i}} for i in range(start, min(a.jobs, start + 1000)))
    w = Worker(q, lambda job: None, concurrency=a.concurrency, name="noop-bench")
    t0 = time.monotonic()
    w.start()
    while w.counters.done + w.counters.failed + w.counters.retried < a.jobs:
        time.sleep(0.002)
    secs = time.monotonic() - t0
    w.close()
    q.clean("done")
    q.close()
    print("concurrency=%d jobs=%d seconds=%.3f jobs_per_sec=%d" % (a.concurrency, a.jobs, secs, a.jobs / secs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
