"""QueueEvents: the lifecycle events spoold publishes on spool:events:<queue>."""
from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

from ._conn import CLUSTER_NODES, ConnectionLike, close_client, connection_kwargs, make_client, map_error
from .errors import SpoolConnectionError, SpoolError
from .queue import Queue

EVENTS = ("pushed", "reserved", "acked", "retried", "expired", "dead", "progress", "lease-expired")


@dataclass
class Event:
    """One event: `event` (pushed, reserved, acked, retried, expired, dead,
    ...), `queue`, `id`, `attempt`, `time` (Unix ms), `error` when the failure
    had one; `fields` holds everything the broker sent."""

    event: str
    queue: str
    id: Optional[str]
    attempt: Optional[int] = None
    time: Optional[int] = None
    error: Optional[str] = None
    fields: Dict[str, Any] = field(default_factory=dict)


def _node_of_queues(kwargs: Dict[str, Any], queues: List[str]) -> Dict[str, Any]:
    """A cluster publishes a queue's events on the node that serves it: the
    connection settings of that node, which must serve every queue given."""
    rc = make_client(kwargs)
    try:
        nodes = {q: rc.get_node_from_key(q) for q in queues}
    except BaseException as e:
        raise map_error(e) from e
    finally:
        close_client(rc)
    where = {(n.host, n.port) for n in nodes.values()}
    if len(where) != 1:
        raise SpoolError("QueueEvents: in a cluster the queues must be served by one node, but %s (each node "
                         "publishes the events of its own queues: one QueueEvents per node, or tag the queues "
                         "alike, e.g. {mail}welcome; docs/cluster.md)"
                         % ", ".join("%s is on %s:%d" % (q, n.host, n.port) for q, n in nodes.items()))
    host, port = where.pop()
    plain = {k: v for k, v in kwargs.items() if k != CLUSTER_NODES}
    plain.update(host=host, port=port)
    return plain


class QueueEvents:
    """Follows one queue's events (or several: a list of names, or a Queue).

    >>> with QueueEvents("emails") as events:
    ...     for ev in events:                 # blocks; ev.event == "acked", ...
    ...         print(ev.event, ev.id)

    or with callbacks on a background thread:
    >>> events = QueueEvents("emails").on("dead", alert).start()

    Events published while nobody listens are not kept (pub/sub). Subscribe
    first (the constructor does), then act, to see every event of the act.

    On a cluster the events come from the node that serves the queues; while
    events are read, every `follow` seconds (default 1; 0: never) QueueEvents
    asks the cluster again and, when the queues moved (a slot move, a new
    leader of a replicated group), subscribes on their new node and leaves
    the old one. Events between the move and the new subscription are missed."""

    def __init__(self, queue: Any, connection: ConnectionLike = None, *, follow: float = 1.0) -> None:
        names = [queue] if isinstance(queue, (str, Queue)) else list(queue)
        self.queues = [q.name if isinstance(q, Queue) else q for q in names]
        if connection is None and isinstance(queue, Queue):
            kwargs = dict(queue._kwargs)
        else:
            kwargs = connection_kwargs(connection)
        self._cluster_kwargs = kwargs if kwargs.get(CLUSTER_NODES) else None
        self._follow = follow
        self._checked = time.monotonic()
        if self._cluster_kwargs:
            kwargs = _node_of_queues(kwargs, self.queues)
        self._where = (kwargs.get("host"), kwargs.get("port"))
        self._listeners: Dict[str, List[Callable[[Event], None]]] = {}
        self._thread: Optional[threading.Thread] = None
        self._closed = threading.Event()
        self._io = threading.Lock()  # redis-py's PubSub is not thread-safe
        self._client, self._pubsub = self._subscribe(kwargs)

    def _subscribe(self, kwargs: Dict[str, Any]) -> Any:
        """A client and its PubSub subscribed to the queues' channels, after
        the confirmations (so events after this call are seen)."""
        client = make_client(kwargs, single=False, socket_timeout=None)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(*["spool:events:" + q for q in self.queues])
            pending = len(self.queues)
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                m = pubsub.parse_response(block=False, timeout=0.5)
                if m and m[0] == "subscribe":
                    pending -= 1
        except BaseException as e:
            pubsub.close()
            client.close()
            raise map_error(e) from e
        return client, pubsub

    def _follow_queues(self) -> None:
        """On a cluster, every `follow` seconds: subscribes on the node that
        serves the queues now when it is another (called holding _io)."""
        if not self._cluster_kwargs or self._follow <= 0 or time.monotonic() - self._checked < self._follow:
            return
        self._checked = time.monotonic()
        kwargs = _node_of_queues(self._cluster_kwargs, self.queues)
        where = (kwargs.get("host"), kwargs.get("port"))
        if where == self._where:
            return
        client, pubsub = self._subscribe(kwargs)
        old = (self._client, self._pubsub)
        self._client, self._pubsub, self._where = client, pubsub, where
        try:
            old[1].close()
        finally:
            old[0].close()

    def __enter__(self) -> "QueueEvents":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def get(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting up to `timeout` seconds (None = forever);
        None when none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            left = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                with self._io:  # close() waits for this wait to end
                    if self._closed.is_set():
                        return None
                    self._follow_queues()
                    m = self._pubsub.get_message(timeout=min(left, 0.25))
            except BaseException as e:
                if self._closed.is_set():
                    return None
                raise map_error(e) from e
            if m and m.get("type") == "message":
                return _parse(m["data"])
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    def __iter__(self) -> Iterator[Event]:
        """Events until close(). A broken connection is made again (with
        backoff, subscriptions restored); events published meanwhile are
        missed, as with any pub/sub."""
        failures = 0
        while not self._closed.is_set():
            try:
                ev = self.get(1.0)
            except SpoolConnectionError:
                failures += 1
                delay = min(5.0, 0.1 * 2 ** (failures - 1))
                self._closed.wait(random.uniform(delay / 2, delay))
                continue
            failures = 0
            if ev is not None:
                yield ev

    def on(self, event: str, fn: Callable[[Event], None]) -> "QueueEvents":
        """Calls fn(ev) for events named `event` ("*" for all), from start()'s thread."""
        self._listeners.setdefault(event, []).append(fn)
        return self

    def start(self) -> "QueueEvents":
        """Delivers events to the on() callbacks on a background thread."""
        def loop() -> None:
            for ev in self:
                for fn in self._listeners.get(ev.event, []) + self._listeners.get("*", []):
                    fn(ev)
        self._thread = threading.Thread(target=loop, name="spool-events", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stops following; an iteration in another thread ends within 0.25 s."""
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        with self._io:
            try:
                self._pubsub.close()
            finally:
                self._client.close()


def _parse(data: str) -> Event:
    try:
        f = json.loads(data)
    except ValueError:
        f = {"event": "unknown", "raw": data}
    if not isinstance(f, dict):
        f = {"event": "unknown", "raw": data}
    return Event(event=str(f.get("event")), queue=str(f.get("queue")), id=f.get("id"),
                 attempt=f.get("attempt"), time=f.get("time"), error=f.get("error"), fields=f)
