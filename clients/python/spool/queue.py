"""Queue: push jobs and look after a queue (the producer and admin side)."""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import redis

from ._conn import ConnectionLike, call, close_client, connection_kwargs, make_client, map_error, ms, pairs
from ._idem import DEFAULT_PUSH_RETRY, idempotency_key, outcome_unknown, push_retry_seconds, push_with_retry
from .errors import BulkAddError, SpoolError
from .job import Job, job_from_reply

STATES = ("ready", "reserved", "delayed", "done", "dead")

# QUEUE.CONFIG settings given in seconds here and in milliseconds on the wire.
_SECONDS_SETTINGS = {"lease", "backoff", "backoff-max", "retention", "expires"}


def encode_payload(data: Any) -> Union[str, bytes]:
    """bytes go as they are (for queues with `payload raw`); anything else is
    sent as JSON."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise TypeError("job data must be JSON-serialisable (or bytes for a raw queue): %s" % e) from None


def push_args(queue: str, data: Any, *, delay: Any = None, at: Any = None, priority: Optional[int] = None,
              attempts: Optional[int] = None, retries: Optional[int] = None, backoff: Any = None,
              unique: Optional[str] = None, job_id: Optional[str] = None, lease: Any = None,
              group: Optional[str] = None, expires: Any = None, batch: Optional[str] = None) -> "tuple[List[Any], str]":
    """The JOB.PUSH arguments for add()'s options, and the name of the first
    option an older broker may not know ('' when none)."""
    args: List[Any] = ["JOB.PUSH", queue, encode_payload(data)]
    feature = ""
    if delay is not None:
        args += ["DELAY", ms(delay, "delay")]
    if at is not None:
        if isinstance(at, datetime):
            at = at.timestamp()
        args += ["AT", ms(at, "at")]
    if priority is not None:
        if isinstance(priority, bool) or not isinstance(priority, int) or not -1000 <= priority <= 1000:
            raise ValueError("priority must be an integer from -1000 to 1000 (higher runs first), not %r" % (priority,))
        args += ["PRI", priority]
    if attempts is not None and retries is not None:
        raise ValueError("give attempts (every run counts) or retries (runs after the first), not both")
    if attempts is not None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError("attempts counts every run, so it is at least 1 (got %r)" % (attempts,))
        retries = attempts - 1
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be an integer >= 0 (got %r)" % (retries,))
        args += ["RETRIES", retries]
    if backoff is not None:
        raise ValueError(
            "spool keeps the retry backoff per queue, not per job: set it with "
            "Queue.configure(backoff=seconds, backoff_max=seconds), or give the Worker "
            "backoff=... to choose each retry's delay")
    if unique is not None and job_id is not None and unique != job_id:
        raise ValueError("job_id and unique are the same option (the dedupe key); give one")
    key = unique if unique is not None else job_id
    if key is not None:
        if not isinstance(key, str) or not key or len(key.encode()) > 1024 or "\0" in key:
            raise ValueError("unique must be a string of 1 to 1024 bytes without NUL (got %r)" % (key,))
        args += ["UNIQUE", key]
    if lease is not None:
        args += ["LEASE", ms(lease, "lease")]
    if group is not None:
        args += ["GROUP", str(group)]
        feature = feature or "JOB.PUSH GROUP (issue 17)"
    if expires is not None:
        args += ["EXPIRES", ms(expires, "expires")]
        feature = feature or "JOB.PUSH EXPIRES (issue 17)"
    if batch is not None:
        args += ["BATCH", str(batch)]
        feature = feature or "JOB.PUSH BATCH (issue 18)"
    return args, feature


class Queue:
    """One queue of a spool broker.

    >>> q = Queue("emails", connection="spool://127.0.0.1:7379")
    >>> job = q.add({"to": "ann@example.com"}, attempts=5)

    Times are seconds (int, float or timedelta) unless said otherwise. The
    Queue is thread-safe (redis-py's connection pool)."""

    def __init__(self, name: str, connection: ConnectionLike = None, *,
                 client: "Optional[redis.Redis[str]]" = None, push_retry: Any = DEFAULT_PUSH_RETRY) -> None:
        """push_retry: seconds a push whose outcome is unknown (connection lost
        with it in flight, -CLUSTERDOWN, -TRYAGAIN) is sent again with its
        idempotency key (default 10); 0 or None: never, and pushes without
        `unique` carry no key."""
        if not isinstance(name, str) or not name:
            raise ValueError("queue name must be a non-empty string (got %r)" % (name,))
        self.name = name
        self.push_retry = push_retry_seconds(push_retry)
        self._kwargs = connection_kwargs(connection)
        self.client: "redis.Redis[str]" = client if client is not None else make_client(self._kwargs)

    def __repr__(self) -> str:
        return "<Queue %r>" % self.name

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the queue's connections."""
        close_client(self.client)

    # ------------------------------------------------------------------ push

    def add(self, data: Any, *, delay: Any = None, at: Any = None, priority: Optional[int] = None,
            attempts: Optional[int] = None, retries: Optional[int] = None, backoff: Any = None,
            unique: Optional[str] = None, job_id: Optional[str] = None, lease: Any = None,
            group: Optional[str] = None, expires: Any = None, batch: Optional[str] = None) -> Job:
        """Pushes one job (JOB.PUSH) and returns it (`job.id` is the broker's id).

        - delay: seconds before it may run; at: a datetime or Unix seconds
        - priority: -1000..1000, higher runs first (FIFO within a priority)
        - attempts: runs in all, first included (attempts=3 is RETRIES 2);
          or retries: runs after the first
        - unique (alias job_id): while a job with this key is unfinished in
          the queue, adding again returns that job and stores nothing
        - lease: seconds a worker holds the job before it is redelivered
        - group (GROUP, issue 17), expires (EXPIRES, issue 17), batch
          (BATCH, issue 18): raise NotSupportedError on a broker without them
        """
        args, feature = push_args(self.name, data, delay=delay, at=at, priority=priority, attempts=attempts,
                                  retries=retries, backoff=backoff, unique=unique, job_id=job_id, lease=lease,
                                  group=group, expires=expires, batch=batch)
        key = self._key(args)
        job_id_ = push_with_retry(self.push_retry, "push to queue %r" % self.name, key,
                                  lambda: call(self.client, *args, feature=feature))
        return Job({"id": job_id_, "queue": self.name, "payload": _text(args[2])}, self)

    def _key(self, args: List[Any]) -> Optional[str]:
        """The push's idempotency key: its own UNIQUE, else a new one added
        to args (None when resends are off)."""
        for i in range(3, len(args) - 1, 2):
            if args[i] == "UNIQUE":
                return str(args[i + 1])
        if self.push_retry <= 0:
            return None
        key = idempotency_key()
        args += ["UNIQUE", key]
        return key

    def add_bulk(self, jobs: Iterable[Union[Mapping[str, Any], Any]]) -> List[Job]:
        """Pushes many jobs in one round trip (pipelined). Each item is
        `{"data": ..., **options of add()}`. Returns the jobs in order; if any
        was refused, raises BulkAddError whose `results` holds, per item, the
        Job or the error (the others were pushed)."""
        items = []
        for item in jobs:
            if not isinstance(item, Mapping) or "data" not in item:
                raise TypeError("add_bulk takes dicts like {'data': ..., 'priority': 5}, not %r" % (item,))
            opts = dict(item)
            data = opts.pop("data")
            items.append(push_args(self.name, data, **opts))
        if not items:
            return []
        started = time.monotonic()
        keys = [self._key(args) for args, _ in items]
        pipe = self.client.pipeline(transaction=False)
        for args, _ in items:
            pipe.execute_command(*args)  # type: ignore[no-untyped-call]
        try:
            replies = pipe.execute(raise_on_error=False)
        except Exception as e:  # noqa: B902 - the whole pipeline failed: each item is resent or fails
            if self.push_retry <= 0 or not outcome_unknown(e):
                raise map_error(e) from e
            replies = [e] * len(items)
        results: List[Any] = []
        failed = 0
        for (args, feature), key, reply in zip(items, keys, replies):
            if isinstance(reply, Exception) and key and self.push_retry > 0 and outcome_unknown(reply):
                left = max(self.push_retry - (time.monotonic() - started), 0.001)
                try:  # sent again alone, with its key
                    reply = push_with_retry(left, "push to queue %r" % self.name, key,
                                            lambda a=args, f=feature: call(self.client, *a, feature=f))
                except Exception as e:  # noqa: B902 - reported per item
                    reply = e
            if isinstance(reply, Exception):
                results.append(map_error(reply, feature))
                failed += 1
            else:
                results.append(Job({"id": reply, "queue": self.name, "payload": _text(args[2])}, self))
        if failed:
            first = next(r for r in results if isinstance(r, Exception))
            raise BulkAddError("%d of %d jobs were refused by queue %r; first: %s"
                               % (failed, len(results), self.name, first), results)
        return results

    # ------------------------------------------------------------------ read

    def get_job(self, job_id: str) -> Optional[Job]:
        """The whole job (JOB.GET), or None when it does not exist (any more)."""
        return job_from_reply(call(self.client, "JOB.GET", job_id), self)

    def wait_job(self, job_id: str, timeout: Optional[float] = None) -> Optional[Job]:
        """Waits until the job is done, dead or expired (`JOB.WAIT id [TIMEOUT
        ms]`, issue 18) and returns it; None on timeout."""
        args: List[Any] = ["JOB.WAIT", job_id]
        if timeout is not None:
            args += ["TIMEOUT", ms(timeout, "timeout")]
        client = self.client
        if timeout is None or timeout > 20:
            client = make_client(self._kwargs, single=True, socket_timeout=None, blocking=True)
        try:
            reply = call(client, *args, feature="JOB.WAIT (issue 18)")
        finally:
            if client is not self.client:
                close_client(client)
        if reply is None:
            return None
        fields = pairs(reply)
        fields.setdefault("id", job_id)
        return Job(fields, self)

    def get_job_counts(self, *states: str) -> Dict[str, int]:
        """Jobs per state (`ready`, `reserved`, `delayed`, `done`, `dead`), all
        of them or the states named."""
        stats = self.stats()
        for s in states:
            if s not in STATES:
                raise ValueError("unknown state %r; states are %s" % (s, ", ".join(STATES)))
        return {s: int(stats.get(s, 0)) for s in (states or STATES)}

    def stats(self) -> Dict[str, int]:
        """QUEUE.STATS: counts per state, totals since the broker started
        (pushed, acked, retried, ...), oldest_ready_age_ms, waiters, paused."""
        return {k: _int(v) for k, v in pairs(call(self.client, "QUEUE.STATS", self.name)).items()}

    def peek(self, state: str = "ready", count: int = 10, after: Optional[str] = None) -> List[Job]:
        """Up to `count` jobs in one state, without taking them (QUEUE.PEEK)."""
        if state not in STATES:
            raise ValueError("unknown state %r; states are %s" % (state, ", ".join(STATES)))
        args: List[Any] = ["QUEUE.PEEK", self.name, "STATE", state, "COUNT", int(count)]
        if after:
            args += ["AFTER", after]
        return [Job(pairs(r), self) for r in call(self.client, *args) or []]

    def jobs(self, state: str = "ready", page: int = 100) -> Iterator[Job]:
        """Every job in a state, paged with QUEUE.PEEK ... AFTER."""
        after = None
        while True:
            batch = self.peek(state, page, after)
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].id

    def is_paused(self) -> bool:
        return bool(self.stats().get("paused"))

    # ----------------------------------------------------------------- admin

    def pause(self) -> None:
        """Workers get nothing from the queue until resume(); pushes still work."""
        call(self.client, "QUEUE.PAUSE", self.name)

    def resume(self) -> None:
        call(self.client, "QUEUE.RESUME", self.name)

    def retry_jobs(self, state: str = "dead", error: Optional[str] = None) -> int:
        """Makes the queue's dead jobs ready again (QUEUE.RETRY); returns how
        many. `error=pattern` (QUEUE.RETRY ... ERROR, issue 17) retries only
        those whose last error matches."""
        if state != "dead":
            raise ValueError("retry_jobs retries dead jobs (state='dead'); for one delayed job use job.retry()")
        args: List[Any] = ["QUEUE.RETRY", self.name]
        feature = ""
        if error is not None:
            args += ["ERROR", error]
            feature = "QUEUE.RETRY ERROR (issue 17)"
        return int(call(self.client, *args, feature=feature))

    def retry_job(self, job_id: str) -> None:
        """A dead or delayed job becomes ready now (JOB.RETRY)."""
        call(self.client, "JOB.RETRY", job_id)

    def remove_job(self, job_id: str) -> bool:
        """Deletes one job in any state (JOB.DEL)."""
        return bool(call(self.client, "JOB.DEL", job_id))

    def clean(self, state: Optional[str] = None) -> int:
        """Deletes the jobs in `state`, or with no state every job not
        reserved (QUEUE.PURGE). Returns how many."""
        args: List[Any] = ["QUEUE.PURGE", self.name]
        if state is not None:
            if state not in STATES:
                raise ValueError("unknown state %r; states are %s" % (state, ", ".join(STATES)))
            args += ["STATE", state]
        return int(call(self.client, *args))

    def configure(self, **settings: Any) -> None:
        """Changes the queue's settings (QUEUE.CONFIG q SET ...). Names as in
        docs/protocol.md with `_` for `-` (backoff_max); lease, backoff,
        backoff_max, retention and expires in seconds; the rest as the
        broker takes them (retries=10, maxlen=1000, payload="raw")."""
        if not settings:
            raise ValueError("configure needs at least one setting, e.g. configure(retries=10)")
        args: List[Any] = ["QUEUE.CONFIG", self.name, "SET"]
        for key, value in settings.items():
            name = key.replace("_", "-")
            if name in _SECONDS_SETTINGS:
                value = ms(value, key)
            args += [name, value]
        call(self.client, *args)

    def config(self) -> Dict[str, Any]:
        """The queue's settings as the broker reports them (times in ms)."""
        return {k: _int(v) for k, v in pairs(call(self.client, "QUEUE.CONFIG", self.name, "GET")).items()}

    # ------------------------------------------------------------- schedules

    def schedule(self, name: str, spec: str, data: Any, *, tz: Optional[str] = None,
                 priority: Optional[int] = None, attempts: Optional[int] = None,
                 unique: bool = False, catchup: Optional[str] = None) -> None:
        """Creates or replaces a durable schedule that pushes `data` to this
        queue on every tick (`SCHED.SET name queue spec payload ...`, issue 18).
        spec: a cron expression (5 fields, or 6 with seconds first),
        `@hourly`/`@daily`/..., or `@every 15m`. catchup: none, one or all."""
        args: List[Any] = ["SCHED.SET", name, self.name, spec, encode_payload(data)]
        if tz is not None:
            args += ["TZ", tz]
        if priority is not None:
            args += ["PRI", int(priority)]
        if attempts is not None:
            if attempts < 1:
                raise ValueError("attempts counts every run, so it is at least 1 (got %r)" % (attempts,))
            args += ["RETRIES", attempts - 1]
        if unique:
            args.append("UNIQUE")
        if catchup is not None:
            if catchup not in ("none", "one", "all"):
                raise ValueError("catchup must be 'none', 'one' or 'all', not %r" % (catchup,))
            args += ["CATCHUP", catchup]
        call(self.client, *args, feature="SCHED.SET (issue 18)")

    def remove_schedule(self, name: str) -> bool:
        """Deletes a schedule (SCHED.DEL, issue 18)."""
        return bool(call(self.client, "SCHED.DEL", name, feature="SCHED.DEL (issue 18)"))


def _text(payload: Union[str, bytes]) -> str:
    return payload if isinstance(payload, str) else payload.decode("utf-8", "surrogateescape")


def _int(v: Any) -> Any:
    if isinstance(v, str) and v.lstrip("-").isdigit():
        return int(v)
    return v


__all__ = ["Queue", "STATES", "SpoolError"]
