"""Job: one job as the broker describes it (JOB.GET, JOB.RESERVE, JOB.PUSH)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ._conn import call, ms, pairs

if TYPE_CHECKING:  # pragma: no cover
    from .queue import Queue
    from .worker import Worker

_INT_FIELDS = ("priority", "attempt", "retries", "lease_ms", "run_at", "lease_until", "created_at", "updated_at")


def decode_payload(payload: Optional[str]) -> Any:
    """The payload as Python data (JSON-decoded; the text itself if not JSON)."""
    if payload is None:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload


class Job:
    """A job. `data` is the payload decoded from JSON, `payload` the text.

    Fields the broker did not send are None. Times are Unix milliseconds, as
    on the wire. A job handed to a Worker's handler also has `receipt` (this
    delivery) and can report progress."""

    def __init__(self, fields: Dict[str, Any], queue: "Optional[Queue]" = None,
                 worker: "Optional[Worker]" = None) -> None:
        self.fields: Dict[str, Any] = fields
        self.id: str = str(fields.get("id"))
        self.queue_name: Optional[str] = fields.get("queue")
        self.payload: Optional[str] = fields.get("payload")
        self.receipt: Optional[str] = fields.get("receipt")
        self.state: Optional[str] = fields.get("state")
        self.last_error: Optional[str] = fields.get("last_error")
        self.unique: Optional[str] = fields.get("unique")
        self.result: Any = decode_payload(fields["result"]) if fields.get("result") is not None else None
        self.progress: Any = decode_payload(fields["progress"]) if fields.get("progress") is not None else None
        for name in _INT_FIELDS:
            v = fields.get(name)
            setattr(self, name, int(v) if v is not None and str(v).lstrip("-").isdigit() else None)
        self._queue = queue
        self._worker = worker
        self._data_cache: Any = None
        self._data_done = False

    # typing for the dynamic int fields
    priority: Optional[int]
    attempt: Optional[int]
    retries: Optional[int]
    lease_ms: Optional[int]
    run_at: Optional[int]
    lease_until: Optional[int]
    created_at: Optional[int]
    updated_at: Optional[int]

    @property
    def data(self) -> Any:
        if not self._data_done:
            self._data_cache = decode_payload(self.payload)
            self._data_done = True
        return self._data_cache

    def __repr__(self) -> str:
        extra = " state=%s" % self.state if self.state else ""
        if self.attempt is not None:
            extra += " attempt=%d" % self.attempt
        return "<Job %s queue=%r%s>" % (self.id, self.queue_name, extra)

    # ----------------------------------------------------------- producer side

    def _client(self) -> Any:
        if self._worker is not None:
            return self._worker._client
        if self._queue is not None:
            return self._queue.client
        raise RuntimeError("job %s is not attached to a Queue or Worker" % self.id)

    def refresh(self) -> "Job":
        """Reads the job again (JOB.GET) and returns the fresh copy."""
        if self._queue is None:
            raise RuntimeError("job %s is not attached to a Queue" % self.id)
        job = self._queue.get_job(self.id)
        if job is None:
            from .errors import NoJobError
            raise NoJobError("NOJOB no job %s (it never existed, or it finished and was removed)" % self.id)
        return job

    def wait(self, timeout: Optional[float] = None) -> "Optional[Job]":
        """Blocks until the job is done, dead or expired (`JOB.WAIT id
        TIMEOUT ms`) and returns it with its final state and result; None on
        timeout. Needs a spoold with JOB.WAIT (issue 18); an older one raises
        NotSupportedError."""
        if self._queue is None:
            raise RuntimeError("job %s is not attached to a Queue" % self.id)
        return self._queue.wait_job(self.id, timeout)

    def retry(self) -> None:
        """A dead or delayed job becomes ready now (JOB.RETRY)."""
        call(self._client(), "JOB.RETRY", self.id)

    def remove(self) -> bool:
        """Deletes the job in any state (JOB.DEL); False if it was gone."""
        return bool(call(self._client(), "JOB.DEL", self.id))

    # ------------------------------------------------------------- worker side

    def update_progress(self, value: Any) -> None:
        """Reports progress of a running job (`JOB.PROGRESS receipt value`): a
        number 0-100 or a small JSON-able dict. Needs a spoold with
        JOB.PROGRESS (issue 18); an older one raises NotSupportedError."""
        if not self.receipt:
            raise RuntimeError("job %s has no receipt: only a job being run by a Worker reports progress" % self.id)
        if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
            raise TypeError("progress must be a number 0-100 or a dict, not %r" % (value,))
        if isinstance(value, (int, float)) and not 0 <= value <= 100:
            raise ValueError("progress %r is not between 0 and 100" % (value,))
        text = json.dumps(value) if isinstance(value, dict) else repr(value)
        call(self._client(), "JOB.PROGRESS", self.receipt, text, feature="JOB.PROGRESS (issue 18)")

    @property
    def lease_lost(self) -> bool:
        """True once the lease keeper's JOB.TOUCH was refused: the job may be
        running elsewhere and this run's result will not be sent."""
        return self._worker is not None and self._worker._is_lost(self)

    @property
    def stopping(self) -> bool:
        """True once the worker is stopping: a long handler may wrap up."""
        return self._worker is not None and self._worker.stopping

    def touch(self, lease: Optional[float] = None) -> int:
        """Extends this delivery's lease now (JOB.TOUCH); the Worker does it
        for you. Returns the new lease_until (Unix ms)."""
        if not self.receipt:
            raise RuntimeError("job %s has no receipt" % self.id)
        args: List[Any] = ["JOB.TOUCH", self.receipt]
        if lease is not None:
            args += ["LEASE", ms(lease, "lease")]
        return int(call(self._client(), *args))


def job_from_reply(reply: Any, queue: "Optional[Queue]" = None, worker: "Optional[Worker]" = None) -> Optional[Job]:
    if reply is None:
        return None
    return Job(pairs(reply), queue, worker)
