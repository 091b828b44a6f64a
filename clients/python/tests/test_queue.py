"""Queue: options map to JOB.PUSH, admin calls, and typed errors."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis

from conftest import wait_for
from spool import (BadJsonError, BulkAddError, NoJobError, NotSupportedError, Queue, QueueFullError,
                   SpoolConnectionError, StaleReceiptError, TooBigError, Worker)
from spool._conn import call


def reserve(queue, lease_ms=None):
    args = ["JOB.RESERVE", "NOWAIT"]
    if lease_ms:
        args += ["LEASE", lease_ms]
    reply = call(queue.client, *args, "FROM", queue.name)
    from spool._conn import pairs
    return [pairs(r) for r in reply or []]


def test_add_maps_options_to_job_push(queue):
    job = queue.add({"to": "ann@example.com"}, priority=7, attempts=3, lease=timedelta(seconds=2.5))
    got = queue.get_job(job.id)
    assert got.state == "ready" and got.priority == 7 and got.retries == 2 and got.lease_ms == 2500
    assert got.data == {"to": "ann@example.com"} and got.queue_name == queue.name
    assert queue.get_job(queue.add({}, retries=0).id).retries == 0


def test_delay_and_at_start_delayed(queue):
    before = int(time.time() * 1000)
    a = queue.get_job(queue.add(1, delay=60).id)
    assert a.state == "delayed" and a.run_at >= before + 59_000
    b = queue.get_job(queue.add(2, at=time.time() + 120).id)
    assert b.state == "delayed" and b.run_at >= before + 119_000


def test_priority_orders_delivery(queue):
    queue.add("low", priority=-5)
    queue.add("high", priority=9)
    queue.add("mid")
    order = [r["payload"] for r in reserve(queue)] + [r["payload"] for r in reserve(queue)]
    assert order == ['"high"', '"mid"']


def test_unique_and_job_id_dedupe(queue):
    a = queue.add({"n": 1}, unique="welcome-a")
    b = queue.add({"n": 2}, job_id="welcome-a")
    assert a.id == b.id
    assert queue.get_job_counts("ready") == {"ready": 1}
    assert queue.get_job(a.id).unique == "welcome-a"


def test_bad_options_are_refused_before_sending(queue):
    with pytest.raises(ValueError, match="attempts counts every run"):
        queue.add({}, attempts=0)
    with pytest.raises(ValueError, match="per queue, not per job"):
        queue.add({}, backoff=5)
    with pytest.raises(ValueError, match="priority"):
        queue.add({}, priority=5000)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        queue.add(object())
    assert queue.get_job_counts()["ready"] == 0


def test_add_bulk_pushes_in_order_and_reports_refusals(queue):
    jobs = queue.add_bulk([{"data": {"n": i}, "priority": 1} for i in range(50)])
    assert len(jobs) == 50 and len({j.id for j in jobs}) == 50
    assert queue.get_job_counts("ready")["ready"] == 50
    queue.configure(maxlen=51)
    with pytest.raises(BulkAddError) as ei:
        queue.add_bulk([{"data": 1}, {"data": 2}])
    results = ei.value.results
    assert hasattr(results[0], "id") and isinstance(results[1], QueueFullError)


def test_typed_errors_from_the_server(spoold, queue):
    queue.configure(maxlen=1)
    queue.add({"n": 1})
    with pytest.raises(QueueFullError, match="maxlen is 1") as ei:
        queue.add({"n": 2})
    assert ei.value.code == "FULL"
    with pytest.raises(BadJsonError, match="not valid JSON"):
        queue.add(b"{not json")
    assert queue.get_job("0000000000000001") is None
    with pytest.raises(NoJobError):
        queue.retry_job("0000000000000001")
    queue.configure(maxlen=0)
    job = queue.add({"n": 3})
    (r,) = reserve(queue, lease_ms=1)  # the first ready job
    wait_for(lambda: queue.get_job(r["id"]).state != "reserved", 10, "the 1 ms lease to expire")
    with pytest.raises(StaleReceiptError) as ei:
        call(queue.client, "JOB.ACK", r["receipt"])
    assert str(ei.value).startswith("STALE")
    assert job.id


def test_too_big_payload(spoold, qname):
    q = Queue(qname, connection=spoold.url)
    try:
        with pytest.raises(TooBigError, match="limit"):
            q.add("x" * (1024 * 1024 + 10))
    finally:
        q.close()


def test_counts_pause_resume_retry_clean(queue):
    for i in range(3):
        queue.add({"n": i}, attempts=1)
    queue.pause()
    assert queue.is_paused() and reserve(queue) == []
    queue.resume()
    (r,) = reserve(queue)
    call(queue.client, "JOB.NACK", r["receipt"], "ERROR", "broken", "DEAD")
    assert queue.get_job_counts() == {"ready": 2, "reserved": 0, "delayed": 0, "done": 0, "dead": 1}
    assert [j.last_error for j in queue.peek("dead")] == ["broken"]
    assert queue.retry_jobs() == 1
    assert queue.get_job_counts("ready", "dead") == {"ready": 3, "dead": 0}
    assert queue.clean("ready") == 3
    assert queue.get_job_counts()["ready"] == 0


def test_jobs_pages_through_a_state(queue):
    ids = [j.id for j in queue.add_bulk({"data": i} for i in range(25))]
    assert [j.id for j in queue.jobs("ready", page=10)] == ids


def test_configure_takes_seconds(queue):
    queue.configure(retries=4, backoff=2, backoff_max=60, lease=45)
    cfg = queue.config()
    assert cfg["retries"] == 4 and cfg["backoff"] == 2000 and cfg["backoff-max"] == 60000 and cfg["lease"] == 45000


def test_connection_forms(spoold, qname):
    r = redis.Redis(host="127.0.0.1", port=spoold.port)
    for conn in (spoold.url, "redis://127.0.0.1:%d" % spoold.port, {"host": "127.0.0.1", "port": spoold.port}, r):
        q = Queue(qname, connection=conn)
        assert q.add({"ok": 1}).id
        q.close()
    r.close()


def test_unreachable_broker_is_a_connection_error(qname):
    q = Queue(qname, connection="spool://127.0.0.1:1")
    with pytest.raises(SpoolConnectionError, match="spoold connection"):
        q.add({})
    q.close()


# ------------------------------------------------- pending on issues 17 and 18
# Today's spoold refuses these commands and options; the client maps them to
# the exact forms of issues 17/18 and surfaces the refusal as NotSupportedError.
# When the broker gains a feature, its test below starts to take the other branch.

def _supported_or_refused(fn, feature):
    try:
        return fn()
    except NotSupportedError as e:
        assert feature in e.feature and "does not support" in str(e) and "upgrade" in str(e)
        return e


def test_pending_issue17_group(queue):
    r = _supported_or_refused(lambda: queue.add({}, group="tenant-a"), "GROUP")
    if not isinstance(r, NotSupportedError):
        assert queue.get_job(r.id).state == "ready"
    else:
        assert queue.get_job_counts()["ready"] == 0


def test_pending_issue17_expires(queue):
    r = _supported_or_refused(lambda: queue.add({}, expires=600), "EXPIRES")
    if isinstance(r, NotSupportedError):
        assert queue.get_job_counts()["ready"] == 0


def test_pending_issue18_batch(spoold, queue):
    from spool import Batch
    b = _supported_or_refused(lambda: Batch.create(spoold.url, on_complete=(queue.name, {"all": "done"})), "BATCH")
    if isinstance(b, NotSupportedError):
        r = _supported_or_refused(lambda: queue.add({}, batch="b-1"), "BATCH")
        assert isinstance(r, NotSupportedError)
        assert queue.get_job_counts()["ready"] == 0
    else:
        job = b.add(queue.name, {"n": 1})
        b.close()
        assert queue.get_job(job.id).state == "ready"


def test_pending_issue18_schedule(queue):
    r = _supported_or_refused(lambda: queue.schedule("tick-" + queue.name, "@every 1s", {"t": 1}, catchup="none"),
                              "SCHED.SET")
    if not isinstance(r, NotSupportedError):
        assert queue.remove_schedule("tick-" + queue.name)


def test_pending_issue18_wait(queue):
    job = queue.add({})
    r = _supported_or_refused(lambda: job.wait(timeout=0.05), "JOB.WAIT")
    if not isinstance(r, NotSupportedError):
        assert r is None  # still ready: the wait times out


def test_pending_issue18_progress(queue):
    queue.add({})
    seen = []

    def handler(job):
        seen.append(_supported_or_refused(lambda: job.update_progress(50), "JOB.PROGRESS"))

    w = Worker(queue, handler)
    w.start()
    try:
        wait_for(lambda: w.counters.done >= 1, 10, "the job")
    finally:
        w.close(10)
    assert len(seen) == 1


def test_connection_urls_default_to_spools_port():
    from spool._conn import connection_kwargs
    assert connection_kwargs("spool://broker") == {"host": "broker", "port": 7379}
    assert connection_kwargs("spool://:pw@broker:7400") == {"host": "broker", "port": 7400, "password": "pw"}
    assert connection_kwargs("spool://worker:p%40ss@[::1]")["password"] == "p@ss"
    with pytest.raises(ValueError, match="spool://"):
        connection_kwargs("http://broker")
