"""spool: the Python client and worker runtime for the spool job-queue broker.

    from spool import Queue, Worker

    q = Queue("emails", connection="spool://127.0.0.1:7379")
    q.add({"to": "ann@example.com"}, attempts=5)

    def send(job):
        ...                     # return a result, raise to retry
    Worker(q, send, concurrency=10).run()   # until SIGTERM/SIGINT

See docs/python.md.
"""
from .errors import (AuthError, BadJsonError, BulkAddError, CrossSlotError, NoJobError, NotSupportedError,
                     QueueFullError, ServerError, SpoolConnectionError, SpoolError, StaleReceiptError,
                     TooBigError, UnrecoverableError, WrongTypeError)
from .batch import Batch
from .events import Event, QueueEvents
from .job import Job
from .queue import Queue
from .worker import Worker, WorkerCounters

__version__ = "0.1.0"

__all__ = [
    "Queue", "Worker", "WorkerCounters", "Job", "QueueEvents", "Event", "Batch",
    "SpoolError", "ServerError", "StaleReceiptError", "NoJobError", "QueueFullError", "BadJsonError",
    "TooBigError", "AuthError", "WrongTypeError", "CrossSlotError", "NotSupportedError",
    "SpoolConnectionError", "BulkAddError", "UnrecoverableError",
]
