"""QueueEvents over pub/sub spool:events:<queue>."""
from __future__ import annotations

import threading

from conftest import wait_for
from spool import QueueEvents, UnrecoverableError, Worker


def test_lifecycle_events_in_order(spoold, queue):
    with QueueEvents(queue) as events:
        ok = queue.add({"n": 1})
        bad = queue.add({"n": 2}, attempts=1)

        def handler(job):
            if job.id == bad.id:
                raise UnrecoverableError("cannot do %s" % job.id)
            return None

        w = Worker(queue, handler)
        w.start()
        got = []
        try:
            wait_for(lambda: _collect(events, got) and
                     {("acked", ok.id), ("dead", bad.id)} <= {(e.event, e.id) for e in got}, 20, "acked and dead events")
        finally:
            w.close(10)
    by_job = {}
    for e in got:
        by_job.setdefault(e.id, []).append(e.event)
        assert e.queue == queue.name and isinstance(e.time, int)
    assert by_job[ok.id] == ["pushed", "reserved", "acked"]
    assert by_job[bad.id] == ["pushed", "reserved", "dead"]
    dead = [e for e in got if e.event == "dead"][0]
    assert dead.error == "cannot do %s" % bad.id


def _collect(events, got):
    ev = events.get(0.2)
    if ev is not None:
        got.append(ev)
    return True


def test_callbacks_on_a_background_thread(spoold, queue):
    seen = []
    done = threading.Event()
    events = QueueEvents(queue.name, connection=spoold.url)
    events.on("pushed", lambda e: seen.append(e.id)).on("*", lambda e: done.set()).start()
    try:
        job = queue.add({})
        wait_for(lambda: done.is_set(), 10, "the pushed event")
    finally:
        events.close()
    assert seen == [job.id]
