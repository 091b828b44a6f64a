"""The worker runtime against a real spoold: the done-when tests of issue 19."""
from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from conftest import HERE, wait_for
from spool import Queue, UnrecoverableError, Worker


def lease_expiries(queue):
    """QUEUE.STATS' lease-expiry total: `expired` today, `lease_expired`
    once issue 17 gives `expired` to expiring jobs."""
    stats = queue.stats()
    return stats["lease_expired"] if "lease_expired" in stats else stats["expired"]


class Recorder:
    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.seen: "collections.Counter[str]" = collections.Counter()

    def add(self, job_id: str) -> None:
        with self.mu:
            self.seen[job_id] += 1

    def total(self) -> int:
        with self.mu:
            return sum(self.seen.values())


def test_thousand_jobs_concurrency_10_each_exactly_once(spoold, queue):
    ids = [j.id for j in queue.add_bulk({"data": {"n": i}} for i in range(1000))]
    assert len(set(ids)) == 1000
    rec = Recorder()
    running = [0]
    peak = [0]
    mu = threading.Lock()

    def handler(job):
        with mu:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        rec.add(job.id)
        time.sleep(0.001)
        with mu:
            running[0] -= 1
        return {"n": job.data["n"]}

    w = Worker(queue, handler, concurrency=10)
    w.start()
    try:
        wait_for(lambda: w.counters.done >= 1000, 120, "1000 acks")
    finally:
        w.close(30)
    assert set(rec.seen) == set(ids)
    assert all(c == 1 for c in rec.seen.values()), [k for k, c in rec.seen.items() if c != 1][:5]
    assert w.counters.done == 1000 and w.counters.lost == 0
    assert 1 < peak[0] <= 10
    counts = queue.get_job_counts()
    assert counts["ready"] == 0 and counts["reserved"] == 0 and counts["delayed"] == 0 and counts["dead"] == 0
    assert queue.get_job(ids[0]).state == "done"


def test_raising_handler_is_retried_then_dead_with_its_error_text(spoold, queue):
    job = queue.add({"to": "x"}, attempts=3)
    calls = []

    def handler(j):
        calls.append(j.attempt)
        raise RuntimeError("smtp said 451 for attempt %d" % j.attempt)

    w = Worker(queue, handler, concurrency=2, backoff=0)  # NACK ... DELAY 0: no wait between tries
    w.start()
    try:
        wait_for(lambda: queue.get_job(job.id).state == "dead", 20, "the job to go dead")
    finally:
        w.close(30)
    dead = queue.get_job(job.id)
    assert calls == [1, 2, 3]
    assert dead.last_error == "smtp said 451 for attempt 3"
    assert w.counters.retried == 2 and w.counters.failed == 1


def test_unrecoverable_error_sends_the_job_dead_at_once(spoold, queue):
    job = queue.add({"to": "bad"}, attempts=10)
    calls = []

    def handler(j):
        calls.append(j.id)
        raise UnrecoverableError("550 no such user")

    w = Worker(queue, handler)
    w.start()
    try:
        wait_for(lambda: queue.get_job(job.id).state == "dead", 20, "the job to go dead")
    finally:
        w.close(30)
    assert calls == [job.id]
    got = queue.get_job(job.id)
    assert got.last_error == "550 no such user" and got.attempt == 1


def test_lease_is_kept_alive_for_a_job_running_three_times_its_lease(spoold, queue):
    job = queue.add({"slow": True}, lease=1.0, attempts=5)
    starts = []

    def handler(j):
        starts.append(j.attempt)
        time.sleep(3.2)
        return "finished"

    w = Worker(queue, handler, concurrency=2)
    w.start()
    try:
        wait_for(lambda: w.counters.done >= 1, 20, "the slow job to be acked")
    finally:
        w.close(30)
    got = queue.get_job(job.id)
    assert got.state == "done" and got.attempt == 1
    assert starts == [1]
    assert w.counters.touches >= 3 and w.counters.lost == 0
    assert lease_expiries(queue) == 0


def _as_broker_without_results(client):
    """Makes client talk like a spoold before issue 18 (JOB.ACK ... RESULT):
    that spoold read each argument of JOB.ACK as a receipt and refused the
    word RESULT with the reply below; every other command goes through."""
    real = client.execute_command

    def execute_command(*args, **kwargs):
        if len(args) > 2 and str(args[0]).upper() == "JOB.ACK" and "RESULT" in args[2:]:
            raise redis.exceptions.ResponseError(
                "ERR 'RESULT' is not a job id or receipt (16 hex digits, or <id>-<delivery> for a receipt)")
        return real(*args, **kwargs)

    client.execute_command = execute_command


def test_result_ack_falls_back_to_plain_ack_on_a_broker_without_results(spoold, queue, caplog):
    """A spoold without results (before issue 18) refuses JOB.ACK ... RESULT:
    the worker notices once, logs once, and acks plainly from then on:
    nothing is lost or delivered twice."""
    jobs = [queue.add({"n": i}) for i in range(5)]
    w = Worker(queue, lambda j: {"echo": j.data["n"]}, concurrency=1)
    _as_broker_without_results(w._client)
    with caplog.at_level(logging.WARNING, logger="spool.worker"):
        w.start()
        try:
            wait_for(lambda: w.counters.done >= 5, 20, "5 acks")
        finally:
            w.close(30)
    for j in jobs:
        got = queue.get_job(j.id)
        assert got.state == "done" and got.attempt == 1
    assert not w._results_ok, "the worker did not notice the broker keeps no results"
    notes = [r for r in caplog.records if "results" in r.getMessage()]
    assert len(notes) == 1, [r.getMessage() for r in caplog.records]
    assert w.counters.lost == 0


def _lines(path):
    try:
        with open(path) as f:
            return [l.split() for l in f.read().splitlines() if l.strip()]
    except FileNotFoundError:
        return []


def _spawn_worker(spoold, qname, tmp_path, conc, sleep_s, lease=None):
    log = str(tmp_path / "jobs.log")
    args = [sys.executable, os.path.join(HERE, "worker_proc.py"), spoold.url, qname, str(conc), str(sleep_s), log]
    if lease is not None:
        args.append(str(lease))
    out = open(str(tmp_path / "worker.out"), "wb")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def test_sigterm_mid_run_finishes_running_jobs_and_loses_none(spoold, queue, qname, tmp_path):
    ids = [j.id for j in queue.add_bulk({"data": {"n": i}} for i in range(40))]
    proc, log = _spawn_worker(spoold, qname, tmp_path, 4, 0.6)
    try:
        wait_for(lambda: len([l for l in _lines(log) if l[0] == "start"]) >= 6, 20, "the worker to start jobs")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = (tmp_path / "worker.out").read_text()
    assert rc == 0, out
    lines = _lines(log)
    started = [l[1] for l in lines if l[0] == "start"]
    done = [l[1] for l in lines if l[0] == "done"]
    assert sorted(started) == sorted(done), "a running job was cut off:\n" + out
    assert len(set(started)) == len(started)
    states = collections.Counter(queue.get_job(i).state for i in ids)
    assert states["done"] == len(done), (states, out)
    assert states["ready"] == 40 - len(done), states  # the rest wait for the next worker
    assert states["reserved"] == 0 and states["delayed"] == 0 and states["dead"] == 0


def test_sigkill_mid_run_redelivers_unfinished_jobs_after_their_leases(spoold, queue, qname, tmp_path):
    queue.configure(backoff=0.05, backoff_max=0.05)
    ids = [j.id for j in queue.add_bulk({"data": {"n": i}} for i in range(12))]
    proc, log = _spawn_worker(spoold, qname, tmp_path, 3, 30, lease=1.0)
    try:
        wait_for(lambda: len([l for l in _lines(log) if l[0] == "start"]) >= 3, 20, "the worker to start jobs")
        proc.kill()
        proc.wait(10)
        killed_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    held = {l[1] for l in _lines(log) if l[0] == "start"}
    assert len(held) == 3
    for i in held:
        assert queue.get_job(i).state == "reserved"  # still leased to the dead process
    redelivered = {}
    rec = Recorder()

    def handler(job):
        rec.add(job.id)
        if job.id in held:
            redelivered[job.id] = (job.attempt, time.monotonic() - killed_at)

    w = Worker(queue, handler, concurrency=4)
    w.start()
    try:
        wait_for(lambda: w.counters.done >= 12, 30, "all 12 jobs done")
    finally:
        w.close(30)
    assert set(rec.seen) == set(ids) and all(c == 1 for c in rec.seen.values())
    assert set(redelivered) == held
    for job_id, (attempt, after) in redelivered.items():
        assert attempt == 2, (job_id, attempt)
        assert after > 0.3, "job %s came back %.2f s after the kill, before its lease ran out" % (job_id, after)
    assert all(queue.get_job(i).state == "done" for i in ids)
    assert lease_expiries(queue) >= 3


def test_spoold_restart_mid_run_is_survived(spoold, qname, caplog):
    q = Queue(qname, connection=spoold.url)
    ids = [j.id for j in q.add_bulk({"data": {"n": i}} for i in range(300))]
    rec = Recorder()

    def handler(job):
        rec.add(job.id)
        time.sleep(0.01)

    w = Worker(q, handler, concurrency=4, reconnect_min=0.05, reconnect_max=0.5)
    w.start()
    try:
        wait_for(lambda: w.counters.done >= 60, 30, "60 jobs before the restart")
        spoold.stop()
        done_while_down = w.counters.done
        spoold.start(spoold.port)
        wait_for(lambda: rec.total() >= 300 and w.counters.done + w.counters.lost >= 300 - 0
                 and len(rec.seen) == 300, 60, "every job run after the restart")
        wait_for(lambda: all(q.get_job(i).state == "done" for i in ids), 30, "every job done")
    finally:
        w.close(30)
        q.close()
    dups = sum(c - 1 for c in rec.seen.values())
    print("restart: counters %s, %d ran twice" % (w.counters, dups))
    assert dups <= 4, "%d jobs ran twice (at most the 4 running at the restart may)" % dups
    assert done_while_down < 300  # the worker went on after the restart
    assert w.counters.done + w.counters.lost == rec.total()  # every run ended in an ack, or was redone
    assert w.counters.lost <= dups


def test_stop_timeout_hands_back_a_job_still_running(spoold, queue):
    job = queue.add({"slow": True}, attempts=5)
    started = threading.Event()
    release = threading.Event()

    def handler(j):
        started.set()
        release.wait(20)
        return "too late"

    w = Worker(queue, handler, stop_timeout=0.3)
    result = []
    t = threading.Thread(target=lambda: result.append(w.run(handle_signals=False)))
    t.start()
    try:
        wait_for(started.is_set, 10, "the handler to start")
        w.stop()
        wait_for(lambda: queue.get_job(job.id).state != "reserved", 10, "the job to be handed back")
        got = queue.get_job(job.id)
        assert got.state == "ready" and "handed back" in got.last_error
    finally:
        release.set()
        t.join(20)
    assert result == [False]
    assert w.counters.handed_back == 1 and w.counters.done == 0
    assert queue.get_job(job.id).state == "ready"  # the late result was dropped, not acked


def test_a_lost_lease_drops_the_result(spoold, queue):
    job = queue.add({"n": 1}, lease=0.6)

    def handler(j):
        wait_for(lambda: j.lease_lost, 10, "the keeper to notice the lost lease")
        return "dropped"

    w = Worker(queue, handler)
    w.start()
    try:
        wait_for(lambda: queue.get_job(job.id) and queue.get_job(job.id).state == "reserved", 10, "the reserve")
        assert queue.remove_job(job.id)  # an operator deletes the running job: TOUCH gets -NOJOB
        wait_for(lambda: w.counters.lost >= 1, 10, "the job to count as lost")
    finally:
        w.close(10)
    assert w.counters.done == 0 and w.counters.lost == 1


def test_worker_waits_for_a_broker_that_is_not_up_yet(tmp_path, qname):
    from conftest import Spoold
    s = Spoold()
    try:
        # pick a port by starting once, then stop it: the worker starts first
        s.start()
        port = s.port
        s.stop()
        seen = []
        w = Worker(qname, lambda j: seen.append(j.data), connection="spool://127.0.0.1:%d" % port,
                   reconnect_min=0.05, reconnect_max=0.3)
        errors = []
        w.on("error", errors.append)
        w.start()
        try:
            wait_for(lambda: errors, 10, "the worker to find no broker")
            assert "spoold connection" in str(errors[0])
            s.start(port)
            q = Queue(qname, connection=s.url)
            q.add({"hello": 1})
            wait_for(lambda: seen == [{"hello": 1}], 20, "the job after the broker came up")
            q.close()
        finally:
            w.close(10)
        assert w.counters.reconnects >= 1
    finally:
        s.cleanup()


def test_a_resent_ack_counts_as_done_only_for_the_delivery_that_finished_the_job(spoold, queue, qname):
    """A worker whose ACK reply was lost resends it; a refusal then means the
    first ACK landed only if the broker says this very delivery (number and
    token) was acked. A delivery answered before a crash and lost in it has
    the same number but another token: counting it as done counted a job twice."""
    from spool._conn import call
    from spool.errors import StaleReceiptError
    from spool.job import Job
    from spool.worker import _pairs
    queue.add({"n": 1})
    w = Worker(queue, lambda job: None)
    raw = call(w._client, "JOB.RESERVE", "TIMEOUT", 0, "COUNT", 1, "FROM", qname)
    job = Job(_pairs(raw[0]), worker=w)
    assert call(w._client, "JOB.ACK", job.receipt) == 1
    with pytest.raises(StaleReceiptError) as same:
        call(w._client, "JOB.ACK", job.receipt)
    assert w._earlier_ack_landed(job, same.value)
    other = job.receipt[:-8] + ("%08x" % ((int(job.receipt[-8:], 16) ^ 1) or 1))
    with pytest.raises(StaleReceiptError) as lost:
        call(w._client, "JOB.ACK", other)
    assert not w._earlier_ack_landed(job, lost.value), str(lost.value)
