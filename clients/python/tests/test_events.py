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


def test_iteration_survives_a_broker_restart(spoold, queue):
    """Last in this module: it restarts the module's spoold."""
    events = QueueEvents(queue)
    got = []
    t = threading.Thread(target=lambda: [got.append(e) for e in events], daemon=True)
    t.start()
    try:
        first = queue.add({"n": 1})
        wait_for(lambda: any(e.id == first.id for e in got), 10, "the first pushed event")
        spoold.restart()

        def pushed_after_restart():
            job = queue.add({"n": 2})  # until the subscription is back, pushes go unheard
            return any(e.id == job.id for e in list(got)) or wait_briefly(got, job.id)
        wait_for(pushed_after_restart, 20, "an event after the restart", step=0.2)
    finally:
        events.close()
        t.join(10)


def wait_briefly(got, job_id):
    import time
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        if any(e.id == job_id for e in list(got)):
            return True
        time.sleep(0.02)
    return False
