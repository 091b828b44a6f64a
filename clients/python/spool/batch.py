"""Batch: jobs that finish together, with callback jobs (issue 18's BATCH.*).

    b = Batch.create(on_complete=("reports", {"report": 7}))
    for page in pages:
        b.add("render", {"page": page})
    b.close()          # the callback is pushed once every job has finished

Needs a spoold with BATCH.* (issue 18); an older one raises NotSupportedError.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import redis

from ._conn import ConnectionLike, call, connection_kwargs, make_client, pairs
from .job import Job
from .queue import Queue, encode_payload

Callback = Tuple[str, Any]  # (queue, data)

_FEATURE = "BATCH.* (issue 18)"


class Batch:
    def __init__(self, batch_id: str, connection: ConnectionLike = None,
                 client: "Optional[redis.Redis[str]]" = None) -> None:
        self.id = batch_id
        self._kwargs = connection_kwargs(connection)
        self.client: "redis.Redis[str]" = client if client is not None else make_client(self._kwargs)

    @classmethod
    def create(cls, connection: ConnectionLike = None, *, on_success: Optional[Callback] = None,
               on_complete: Optional[Callback] = None, on_death: Optional[Callback] = None) -> "Batch":
        """A new open batch (`BATCH.NEW [ON-SUCCESS queue payload]
        [ON-COMPLETE queue payload] [ON-DEATH queue payload]`). ON-SUCCESS:
        all jobs done; ON-COMPLETE: all finished, done or dead; ON-DEATH: at
        the first dead job."""
        client = make_client(connection_kwargs(connection))
        args: List[Any] = ["BATCH.NEW"]
        for word, cb in (("ON-SUCCESS", on_success), ("ON-COMPLETE", on_complete), ("ON-DEATH", on_death)):
            if cb is not None:
                if not (isinstance(cb, tuple) and len(cb) == 2 and isinstance(cb[0], str)):
                    raise TypeError("%s must be a (queue, data) pair, not %r" % (word.lower().replace("-", "_"), cb))
                args += [word, cb[0], encode_payload(cb[1])]
        batch_id = call(client, *args, feature=_FEATURE)
        return cls(str(batch_id), connection, client)

    def add(self, queue: str, data: Any, **options: Any) -> Job:
        """Pushes a job into the batch (`JOB.PUSH queue payload … BATCH id`);
        options as Queue.add."""
        return Queue(queue, client=self.client).add(data, batch=self.id, **options)

    def close(self) -> None:
        """No more jobs (BATCH.CLOSE): the callbacks fire once all have finished."""
        call(self.client, "BATCH.CLOSE", self.id, feature=_FEATURE)

    def get(self) -> Dict[str, Any]:
        """The batch's counts and state (BATCH.GET)."""
        return pairs(call(self.client, "BATCH.GET", self.id, feature=_FEATURE))
