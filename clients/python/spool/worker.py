"""Worker: runs a handler over the jobs of one or more queues, on threads.

Threads of a running Worker:
  - the fetcher: one blocking connection; JOB.RESERVE ... COUNT <free slots>
    with a short TIMEOUT (so a stop is noticed promptly), hands each job to
    the pool; reconnects with exponential backoff and jitter.
  - the pool: `concurrency` threads running the handler; each sends its
    job's result (ACK/NACK) over a shared connection pool, resending it
    after a broken connection until the job's lease would have run out.
  - the lease keeper: its own connection; JOB.TOUCHes every running job a
    third of its lease after it started or was last touched. A refused
    TOUCH (-STALE/-NOJOB) marks the job lost: its result is dropped, since
    the job may be running elsewhere.
  - the thread that called run(): waits for a stop (SIGTERM/SIGINT when it
    is the main thread, or stop()), then lets running handlers finish and
    hands back (JOB.NACK receipt DELAY 0) those still running after
    stop_timeout.
This mirrors libspool's worker runtime (docs/sdk.md).
"""
from __future__ import annotations

import json
import logging
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ._conn import ConnectionLike, call, close_client, connection_kwargs, make_client, map_error, ms
from .errors import (NoJobError, NotSupportedError, SpoolConnectionError, SpoolError, StaleReceiptError,
                     UnrecoverableError)
from .job import Job
from .queue import Queue

Handler = Callable[[Job], Any]
#: Worker(backoff=...): seconds before a failed job's next run, or a function
#: (attempt, exception) -> seconds; None leaves it to the queue's backoff.
BackoffLike = Union[None, float, int, Callable[[int, BaseException], Optional[float]]]

_ERROR_MAX = 4000  # characters of an exception message sent as last_error
_TOUCH_RETRY = 0.25  # seconds, after a TOUCH that failed on the network
_RESULT_UNSUPPORTED = "is not a job id or receipt"


@dataclass
class WorkerCounters:
    done: int = 0          # acked
    retried: int = 0       # nacked, with attempts left
    failed: int = 0        # nacked into dead
    lost: int = 0          # result not sent (lease lost, or refused as stale)
    handed_back: int = 0   # still running at the stop deadline: given back
    touches: int = 0       # leases extended
    reconnects: int = 0    # connections made again after a failure


class _Slot:
    __slots__ = ("job", "lease", "lease_end", "next_touch", "lost", "handed", "finishing")

    def __init__(self, job: Job, lease: float) -> None:
        now = time.monotonic()
        self.job = job
        self.lease = lease
        self.lease_end = now + lease
        self.next_touch = now + lease / 3
        self.lost = False
        self.handed = False
        self.finishing = False


def _queue_names(queue: Union[str, Queue, Sequence[Union[str, Queue]]]) -> List[str]:
    items = [queue] if isinstance(queue, (str, Queue)) else list(queue)
    names = [q.name if isinstance(q, Queue) else q for q in items]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError("Worker needs a queue name, a Queue, or a list of them (in priority order)")
    return names


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:_ERROR_MAX]


class Worker:
    """Runs `handler(job)` for every job of `queue` (a name, a Queue, or a
    list of them in priority order), up to `concurrency` at once.

    The handler's return value is the job's result (JOB.ACK ... RESULT, when
    the broker keeps results); an exception retries the job with its message
    as the error; UnrecoverableError sends it dead at once.

    >>> Worker("emails", send, concurrency=10).run()   # until SIGTERM/SIGINT

    Times are seconds. lease: the lease asked for on reserve (default: the
    job's, then the queue's). stop_timeout: how long a stop waits for running
    handlers before handing their jobs back."""

    def __init__(self, queue: Union[str, Queue, Sequence[Union[str, Queue]]], handler: Handler, *,
                 concurrency: int = 1, connection: ConnectionLike = None, lease: Optional[float] = None,
                 reserve_timeout: float = 1.0, stop_timeout: float = 30.0, reconnect_min: float = 0.1,
                 reconnect_max: float = 10.0, backoff: BackoffLike = None, name: str = "spool-worker",
                 logger: Optional[logging.Logger] = None) -> None:
        if not callable(handler):
            raise TypeError("handler must be callable: handler(job) -> result")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 1000:
            raise ValueError("concurrency must be an integer from 1 to 1000 (got %r)" % (concurrency,))
        self.queues = _queue_names(queue)
        if connection is None and isinstance(queue, Queue):
            self._kwargs = dict(queue._kwargs)
        else:
            self._kwargs = connection_kwargs(connection)
        self.handler = handler
        self.concurrency = concurrency
        self.lease_ms = ms(lease, "lease") if lease is not None else None
        self.reserve_timeout_ms = max(1, ms(reserve_timeout, "reserve_timeout"))
        self.stop_timeout = float(stop_timeout)
        self.reconnect_min = float(reconnect_min)
        self.reconnect_max = max(float(reconnect_max), self.reconnect_min)
        self.backoff = backoff
        self.name = name
        self.log = logger or logging.getLogger("spool.worker")
        self.counters = WorkerCounters()
        self._mu = threading.Lock()
        self._cv = threading.Condition(self._mu)
        self._stop = threading.Event()
        self._keeper_stop = threading.Event()
        self._count_mu = threading.Lock()
        self._slots: Dict[str, _Slot] = {}
        self._free = concurrency
        self._results_ok = True
        self._listeners: Dict[str, List[Callable[..., None]]] = {}
        self._running = False
        self._thread: Optional[threading.Thread] = None
        self._client = make_client(self._kwargs, name=name)
        self.timed_out = False

    # ------------------------------------------------------------ public API

    def on(self, event: str, fn: Callable[..., None]) -> "Worker":
        """Calls fn on `completed` (job, result), `failed` (job, exc),
        `error` (exc) or `drained` (). Called on worker threads."""
        if event not in ("completed", "failed", "error", "drained"):
            raise ValueError("unknown event %r: completed, failed, error or drained" % (event,))
        self._listeners.setdefault(event, []).append(fn)
        return self

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stops the worker: no more reserves; running jobs finish. Safe from
        any thread and from a signal handler."""
        self._stop.set()

    def start(self) -> threading.Thread:
        """Runs the worker on a background thread (without signal handlers)."""
        t = threading.Thread(target=self.run, kwargs={"handle_signals": False}, name=self.name, daemon=True)
        self._thread = t
        t.start()
        return t

    def close(self, timeout: Optional[float] = None) -> None:
        """stop(), then waits for the background thread of start()."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, handle_signals: bool = True) -> bool:
        """Runs until stop(), SIGTERM or SIGINT. Returns True when every
        running job finished within stop_timeout, False when some were
        handed back."""
        if self._running:
            raise RuntimeError("worker %s is already running" % self.name)
        self._running = True
        self._keeper_stop.clear()
        previous: Dict[signal.Signals, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=self.name)
        keeper = threading.Thread(target=self._keeper_main, name=self.name + "-keeper", daemon=True)
        fetcher = threading.Thread(target=self._fetch_main, args=(pool,), name=self.name + "-fetch", daemon=True)
        keeper.start()
        fetcher.start()
        self.log.info("%s: working on %s with concurrency %d", self.name, ", ".join(self.queues), self.concurrency)
        try:
            while not self._stop.wait(0.2):
                pass
            self.log.info("%s: stopping: finishing running jobs (up to %g s)", self.name, self.stop_timeout)
            fetcher.join()
            clean = self._drain(self.stop_timeout)
            pool.shutdown(wait=True)
            self._keeper_stop.set()
            with self._cv:
                self._cv.notify_all()
            keeper.join()
            return clean
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            close_client(self._client)
            self._running = False

    # ---------------------------------------------------------------- stop

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop.set()

    def _drain(self, timeout: float) -> bool:
        """Waits for running handlers; at the deadline hands their jobs back."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._slots and time.monotonic() < deadline:
                self._cv.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            late = [s for s in self._slots.values() if not s.finishing and not s.handed]
            for s in late:
                s.handed = True
        for s in late:
            self.timed_out = True
            try:
                call(self._client, "JOB.NACK", s.job.receipt, "DELAY", 0, "ERROR",
                     "worker %s stopped before the handler returned; handed back" % self.name)
                self._count('handed_back')
                self.log.warning("%s: job %s still running at the stop deadline: handed back", self.name, s.job.id)
            except SpoolError as e:
                self.log.warning("%s: job %s: handing it back failed: %s", self.name, s.job.id, e)
        return not late

    # -------------------------------------------------------------- fetcher

    def _sleep_backoff(self, n: int, until_stop: bool) -> None:
        d = self.reconnect_min
        for _ in range(1, n):
            if d >= self.reconnect_max:
                break
            d *= 2
        d = min(d, self.reconnect_max)
        d = random.uniform(d / 2, d)
        if until_stop:
            self._stop.wait(d)
        else:
            time.sleep(d)

    def _fetch_main(self, pool: ThreadPoolExecutor) -> None:
        client = make_client(self._kwargs, single=True, socket_timeout=self.reserve_timeout_ms / 1000 + 10,
                             name=self.name + "-fetch", blocking=True)
        failures = 0
        had_work = False
        try:
            while not self._stop.is_set():
                with self._cv:
                    while self._free == 0 and not self._stop.is_set():
                        self._cv.wait(0.5)
                    free = self._free
                if self._stop.is_set():
                    break
                args: List[Any] = ["JOB.RESERVE", "TIMEOUT", self.reserve_timeout_ms, "COUNT", free]
                if self.lease_ms is not None:
                    args += ["LEASE", self.lease_ms]
                args += ["FROM", *self.queues]
                try:
                    reply = call(client, *args)
                except SpoolConnectionError as e:
                    failures += 1
                    if failures == 1:
                        self.log.warning("%s: %s; reconnecting with backoff", self.name, e)
                        self._emit("error", e)
                    self._sleep_backoff(failures, True)
                    continue
                except SpoolError as e:
                    self.log.error("%s: JOB.RESERVE failed: %s", self.name, e)
                    self._emit("error", e)
                    self._sleep_backoff(6, True)
                    continue
                if failures:
                    self._count('reconnects')
                    self.log.info("%s: connected again", self.name)
                    failures = 0
                if not reply:
                    if had_work:
                        had_work = False
                        self._emit("drained")
                    continue
                had_work = True
                for raw in reply:
                    job = Job(_pairs(raw), worker=self)
                    lease_ms = job.lease_ms or self.lease_ms or 30000
                    slot = _Slot(job, lease_ms / 1000)
                    with self._cv:
                        self._slots[str(job.receipt)] = slot
                        self._free -= 1
                        self._cv.notify_all()
                    pool.submit(self._run_job, slot)
        finally:
            close_client(client)

    # ----------------------------------------------------------------- jobs

    def _run_job(self, slot: _Slot) -> None:
        job = slot.job
        outcome: str
        value: Any = None
        try:
            value = self.handler(job)
            outcome = "ack"
        except UnrecoverableError as e:
            outcome, value = "dead", e
        except BaseException as e:  # noqa: B902 - any failure of the handler retries the job
            outcome, value = "retry", e
        with self._cv:
            handed = slot.handed
            slot.finishing = True
            lost = slot.lost
        try:
            if handed:
                pass  # given back at the stop deadline: the result is dropped
            elif lost:
                self._count('lost')
                self.log.warning("%s: job %s: lease lost while running; result dropped", self.name, job.id)
            else:
                self._finish(slot, outcome, value)
        except BaseException as e:  # a bug in a listener must not leak the slot
            self.log.exception("%s: job %s: %s", self.name, job.id, e)
        finally:
            with self._cv:
                self._slots.pop(str(job.receipt), None)
                self._free += 1
                self._cv.notify_all()

    def _nack_args(self, job: Job, outcome: str, exc: BaseException) -> List[Any]:
        args: List[Any] = ["JOB.NACK", job.receipt]
        if outcome == "retry" and self.backoff is not None:
            delay = self.backoff(job.attempt or 1, exc) if callable(self.backoff) else self.backoff
            if delay is not None:
                args += ["DELAY", ms(delay, "backoff")]
        args += ["ERROR", _message(exc)]
        if outcome == "dead":
            args.append("DEAD")
        return args

    def _send(self, slot: _Slot, outcome: str, value: Any) -> Any:
        job = slot.job
        if outcome != "ack":
            return call(self._client, *self._nack_args(job, outcome, value))
        if value is not None and self._results_ok:
            try:
                text = json.dumps(value, default=str)
            except (TypeError, ValueError):
                text = json.dumps(str(value))
            try:
                return call(self._client, "JOB.ACK", job.receipt, "RESULT", text, feature="JOB.ACK RESULT (issue 18)")
            except NotSupportedError:
                with self._count_mu:
                    first, self._results_ok = self._results_ok, False
                if first:
                    self.log.warning("%s: this spoold does not keep job results (JOB.ACK ... RESULT, issue 18);"
                                     " acknowledging without them from now on", self.name)
            except (StaleReceiptError, NoJobError, SpoolConnectionError):
                raise
            except SpoolError as e:
                self.log.warning("%s: job %s: its result was refused (%s); acknowledging without it",
                                 self.name, job.id, e)
        return call(self._client, "JOB.ACK", job.receipt)

    def _earlier_ack_landed(self, job: Job, refusal: Exception) -> bool:
        # The broker says "(it was acked already)" only when the receipt's
        # delivery number and token are those of the delivery that finished
        # the job; a delivery answered before a crash and lost in it has the
        # same number but another token, and gets a different refusal.
        if "(it was acked already)" not in str(refusal):
            return False
        try:
            now = call(self._client, "JOB.GET", job.id)
        except SpoolError:
            return False
        fields = _pairs(now)
        return fields.get("state") == "done" and str(fields.get("attempt")) == str(job.attempt)

    def _finish(self, slot: _Slot, outcome: str, value: Any) -> None:
        job = slot.job
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = self._send(slot, outcome, value)
            except (StaleReceiptError, NoJobError) as e:
                if attempt > 1 and outcome == "ack" and self._earlier_ack_landed(job, e):
                    reply = 1
                else:
                    self._count('lost')
                    self.log.warning("%s: job %s: result refused: %s", self.name, job.id, e)
                    return
            except SpoolConnectionError as e:
                with self._cv:
                    lease_end = slot.lease_end
                if time.monotonic() > lease_end:
                    self._count('lost')
                    self.log.warning("%s: job %s: could not send its result: %s", self.name, job.id, e)
                    return
                self._sleep_backoff(attempt, False)  # a stop does not cut it short
                continue
            except SpoolError as e:
                self._count('lost')
                self.log.error("%s: job %s: result refused: %s", self.name, job.id, e)
                self._emit("error", e)
                return
            break
        if outcome == "ack":
            self._count('done')
            self._emit("completed", job, value)
        else:
            if reply == "dead":
                self._count('failed')
            else:
                self._count('retried')
            self.log.info("%s: job %s (attempt %s) failed (%s): %s", self.name, job.id, job.attempt, reply,
                          _message(value))
            self._emit("failed", job, value)

    def _count(self, name: str) -> None:
        with self._count_mu:
            setattr(self.counters, name, getattr(self.counters, name) + 1)

    def _is_lost(self, job: Job) -> bool:
        with self._mu:
            s = self._slots.get(str(job.receipt))
            return bool(s and s.lost)

    # --------------------------------------------------------------- keeper

    def _keeper_main(self) -> None:
        client = make_client(self._kwargs, single=True, socket_timeout=10.0, name=self.name + "-keeper")
        try:
            while True:
                with self._cv:
                    if self._keeper_stop.is_set():
                        return
                    now = time.monotonic()
                    live = [s for s in self._slots.values() if not (s.finishing or s.handed or s.lost)]
                    due = [(s, s.job.receipt) for s in live if s.next_touch <= now]
                    if not due:
                        wake = min((s.next_touch for s in live), default=now + 0.5)
                        self._cv.wait(min(0.5, max(0.01, wake - now)))
                        continue
                for s, receipt in due:
                    lease_ms = int(s.lease * 1000)
                    try:
                        call(client, "JOB.TOUCH", receipt, "LEASE", lease_ms)
                    except (StaleReceiptError, NoJobError) as e:
                        with self._cv:
                            s.lost = True
                        self.log.warning("%s: job %s: lease lost: %s", self.name, s.job.id, e)
                        continue
                    except SpoolConnectionError:
                        with self._cv:
                            s.next_touch = time.monotonic() + _TOUCH_RETRY
                        continue
                    except SpoolError as e:
                        self.log.error("%s: job %s: JOB.TOUCH failed: %s", self.name, s.job.id, e)
                        with self._cv:
                            s.next_touch = time.monotonic() + s.lease / 3
                        continue
                    now = time.monotonic()
                    with self._cv:
                        s.lease_end = now + s.lease
                        s.next_touch = now + s.lease / 3
                    self._count('touches')
        finally:
            close_client(client)

    # --------------------------------------------------------------- events

    def _emit(self, event: str, *args: Any) -> None:
        for fn in self._listeners.get(event, ()):
            try:
                fn(*args)
            except Exception:  # a listener's bug must not stop the worker
                self.log.exception("%s: %s listener failed", self.name, event)


def _pairs(reply: Any) -> Dict[str, Any]:
    from ._conn import pairs
    return pairs(reply)


__all__ = ["Worker", "WorkerCounters", "Handler", "UnrecoverableError"]
