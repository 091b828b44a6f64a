"""Results, progress, waiting, batches and schedules against a spoold that
has them (issue 18): the values the broker sends reach the Python objects."""
from __future__ import annotations

from conftest import wait_for
from spool import Batch, Worker


def test_worker_result_and_progress_reach_wait(queue):
    job = queue.add({"n": 4})

    def handler(j):
        j.update_progress({"step": 1})
        return {"square": j.data["n"] ** 2}

    w = Worker(queue, handler)
    w.start()
    try:
        done = job.wait(timeout=10)
    finally:
        w.close(10)
    assert done is not None and done.state == "done"
    assert done.result == {"square": 16}
    assert done.progress == {"step": 1}
    assert w._results_ok


def test_wait_times_out_with_none(queue):
    job = queue.add({})
    assert job.wait(timeout=0.1) is None


def test_batch_counts_and_callback(spoold, queue):
    b = Batch.create(spoold.url, on_complete=(queue.name, {"all": "done"}))
    jobs = [b.add(queue.name + "-work", {"i": i}) for i in range(3)]
    b.close()
    info = b.get()
    assert info["state"] == "closed" and int(info["total"]) == 3
    w = Worker(queue.name + "-work", lambda j: None, connection=spoold.url)
    w.start()
    try:
        wait_for(lambda: b.get()["state"] == "finished", 10, "the batch to finish")
    finally:
        w.close(10)
    info = b.get()
    assert int(info["done"]) == 3 and "complete" in info["fired"]
    wait_for(lambda: queue.get_job_counts()["ready"] == 1, 5, "the callback job")
    assert len(jobs) == 3


def test_schedule_pushes_jobs(queue):
    queue.schedule("beat-" + queue.name, "@every 1s", {"t": 1}, catchup="none")
    try:
        wait_for(lambda: queue.get_job_counts()["ready"] >= 1, 5, "a scheduled job")
    finally:
        assert queue.remove_schedule("beat-" + queue.name)
    assert not queue.remove_schedule("beat-" + queue.name)
