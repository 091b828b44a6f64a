"""A spoold cluster of three nodes (scripts/cluster start 3, groups of one)
through redis-py's RedisCluster: raw JOB.PUSH / JOB.RESERVE / JOB.ACK routed
by slot (ids and receipts carry their queue's slot), then the SDK's Queue and
Worker on a RedisCluster connection, with queues on every node."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from typing import Dict, Iterator, List, Tuple

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

import spool
from conftest import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run_cluster(*args: str) -> str:
    spoold = os.environ.get("SPOOLD", "")
    env = dict(os.environ, SPOOLD=spoold, SPOOL=os.path.join(os.path.dirname(os.path.dirname(spoold)), "cli", "spool"))
    return subprocess.run([os.path.join(ROOT, "scripts", "cluster"), *args], env=env, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def nodes() -> Iterator[List[int]]:
    d = tempfile.mkdtemp(prefix="spool-py-cluster-")
    run_cluster("start", "3", "--dir", d)
    try:
        with open(os.path.join(d, "nodes")) as f:
            yield [int(line.split()[1].rsplit(":", 1)[1]) for line in f if line.strip()]
    finally:
        run_cluster("stop", d)
        shutil.rmtree(d, ignore_errors=True)


def owners(port: int) -> List[Tuple[int, int, int]]:
    r = redis.Redis(port=port)
    try:
        return [(e[0], e[1], e[2][1]) for e in r.execute_command("CLUSTER SLOTS")]
    finally:
        r.close()


def spread(prefix: str, n: int, table: List[Tuple[int, int, int]]) -> Dict[str, int]:
    """n queue names, as evenly as may be over the nodes: name -> port."""
    out: Dict[str, int] = {}
    per: Dict[int, int] = {}
    i = 0
    while len(out) < n:
        name = "%s%d" % (prefix, i)
        s = key_slot(name.encode())
        port = next(p for a, b, p in table if a <= s <= b)
        if per.get(port, 0) < -(-n // 3):
            per[port] = per.get(port, 0) + 1
            out[name] = port
        i += 1
    assert len(set(out.values())) == 3, "queues on every node"
    return out


def test_raw_commands_route_by_slot(nodes: List[int]) -> None:
    rc = RedisCluster(host="127.0.0.1", port=nodes[0], decode_responses=True)
    try:
        for q, port in spread("raw-", 6, owners(nodes[0])).items():
            jid = rc.execute_command("JOB.PUSH", q, '{"n": 1}')
            assert key_slot(jid.encode()) == key_slot(q.encode()), "id %s carries the slot of %s" % (jid, q)
            job = rc.execute_command("JOB.RESERVE", "TIMEOUT", 1000, "FROM", q)[0]
            assert job[1] == jid
            receipt = job[3]
            assert key_slot(receipt.encode()) == key_slot(q.encode())
            assert rc.execute_command("JOB.ACK", receipt) == 1
            rec = rc.execute_command("JOB.GET", jid)
            assert rec[rec.index("state") + 1] == "done"
            direct = redis.Redis(port=port, decode_responses=True)
            stats = direct.execute_command("QUEUE.STATS", q)
            assert stats[stats.index("done") + 1] == 1, "the job is on the node that owns %s" % q
            direct.close()
            other = redis.Redis(port=next(p for p in nodes if p != port))
            with pytest.raises(redis.ResponseError, match=r"^MOVED \d+ 127\.0\.0\.1:%d$" % port):
                other.execute_command("JOB.GET", jid)
            other.close()
    finally:
        rc.close()


def test_queue_and_worker_on_a_cluster(nodes: List[int]) -> None:
    rc = RedisCluster(host="127.0.0.1", port=nodes[0])
    names = list(spread("sdk-", 6, owners(nodes[0])))
    queues = [spool.Queue(n, connection=rc) for n in names]
    jobs = [q.add({"q": q.name, "i": i}) for q in queues for i in range(2)]
    seen: Dict[str, int] = {}
    lock = threading.Lock()

    def handle(job: spool.Job) -> str:
        with lock:
            seen[job.id] = seen.get(job.id, 0) + 1
        return "ok"

    workers = [spool.Worker(n, handle, connection=rc, reserve_timeout=0.2) for n in names]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: len(seen) == len(jobs), 20, "%d jobs handled" % len(jobs))
    finally:
        for w in workers:
            w.close()
    for j in jobs:
        assert seen[j.id] == 1, "job %s handled once" % j.id
        assert next(q for q in queues if q.name == j.queue_name).get_job(j.id).state == "done"
    for q in queues:
        q.close()
    rc.close()


def test_queue_events_on_the_node_of_the_queue(nodes: List[int]) -> None:
    rc = RedisCluster(host="127.0.0.1", port=nodes[0])
    table = owners(nodes[0])
    names = spread("ev-", 6, table)
    far, far_port = next((n, p) for n, p in names.items() if p != nodes[0])  # not on the startup node
    other = next(n for n, p in names.items() if p != far_port)
    q = spool.Queue(far, connection=rc)
    with spool.QueueEvents(q) as events:
        job = q.add({"n": 1})
        ev = events.get(5)
        assert ev is not None and ev.event == "pushed" and ev.id == job.id, ev
    with pytest.raises(spool.SpoolError, match="must be served by one node"):
        spool.QueueEvents([far, other], connection=rc)
    q.close()
    rc.close()


def test_queue_events_follow_a_moved_queue(nodes: List[int]) -> None:
    rc = RedisCluster(host="127.0.0.1", port=nodes[0])
    name = next(n for n, p in spread("mv-", 6, owners(nodes[0])).items() if p == nodes[0])
    spool_cli = os.path.join(os.path.dirname(os.path.dirname(os.environ["SPOOLD"])), "cli", "spool")
    info = subprocess.run([spool_cli, "cluster", "info", "127.0.0.1:%d" % nodes[0]], check=True,
                          capture_output=True, text=True).stdout
    group = {int(m.group(2)): m.group(1) for m in re.finditer(r"group (\S+): .*leader 127\.0\.0\.1:(\d+)", info)}
    slot = key_slot(name.encode())
    q = spool.Queue(name, connection=rc)
    with spool.QueueEvents(q, follow=0.2) as events:
        subprocess.run([spool_cli, "cluster", "move-slots", "127.0.0.1:%d" % nodes[0], "--from", group[nodes[0]],
                        "--to", group[nodes[1]], "--range", "%d-%d" % (slot, slot)], check=True,
                       capture_output=True, text=True)
        pushed = set()

        def heard() -> bool:  # pushes until one is heard: the resubscription takes up to `follow`
            pushed.add(q.add({"n": len(pushed)}).id)
            ev = events.get(0.3)
            return ev is not None and ev.event == "pushed" and ev.id in pushed

        wait_for(heard, 15, "an event of %s after its slot %d moved to node %d" % (name, slot, nodes[1]))
    q.close()
    rc.close()


def test_schedules_route_by_their_queue(nodes: List[int]) -> None:
    rc = RedisCluster(host="127.0.0.1", port=nodes[0], decode_responses=True)
    table = owners(nodes[0])
    far, port = next((n, p) for n, p in spread("sc-", 6, table).items() if p != nodes[0])
    q = spool.Queue(far, connection=rc)
    q.schedule("nightly-" + far, "@daily", {"n": 1})
    listed = rc.execute_command("SCHED.LIST", far)
    assert listed and "nightly-" + far in str(listed), listed
    direct = redis.Redis(port=port, decode_responses=True)
    assert "nightly-" + far in str(direct.execute_command("SCHED.GET", "nightly-" + far))
    direct.close()
    q.close()
    rc.close()
