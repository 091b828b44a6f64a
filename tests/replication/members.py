"""Log compaction and membership changes of a replication group
(docs/replication.md, "Log compaction", "Membership"), driven by redis-py.

Checks: with a small --replica-snapshot-entries the Raft log directory
stays bounded under load (snapshots taken, old entries dropped); a follower
whose data dir was wiped rejoins through a snapshot and ends with the same
journal; a dead node is replaced by one with a NEW id, port and data dir
(spool cluster remove-replica, then add-replica), which catches up through
a snapshot; the group grows to five; the leader is killed once more; no
acknowledged push lost, no acknowledged ack undone, every journal the
same. Prints snapshot time and size, rejoin and catch-up times. Ends with
"N passed, N failed".

  /usr/bin/python3 members.py --spoold PATH --spool PATH [--cluster]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import redis

from failover import ELECTION_MS, Group, Load, Suite, check_load, ended, journals_equal, reserved, settle

SNAP_ENTRIES = 64
SNAP_TRAILING = 32
# A catch-up round of a node being added ends after this (libraft's 5 s by
# default): the snapshot a new node gets here (tens of MB) takes longer, so
# add-replica passes only when the leader starts another round while the
# node answers (broker/replica.c, add_goes_on), as a large snapshot needs
# on any busy machine.
CATCH_UP_ROUND_MS = 200


def info(g, i):
    return g.client(i).info("replication")


def raft_dir(g, i):
    """Node i's Raft directory: bytes of log segments, bytes of snapshots, the first log index on disk."""
    d = os.path.join(g.root, f"node-{i}", "raft")
    seg, snap, first = 0, 0, None
    for name in os.listdir(d):
        size = os.path.getsize(os.path.join(d, name))
        if name.startswith("snapshot-"):
            snap += size
        elif name.startswith("open-") or name[0].isdigit():
            seg += size
        if "-" in name and name[0].isdigit():  # a closed segment: FIRST-LAST
            start = int(name.split("-")[0])
            first = start if first is None else min(first, start)
    return seg, snap, first


def load_for(load, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        load.step()


def big_pushes(g, lead, n, size):
    """n pushes of size bytes, pipelined 50 at a time, then consumed: the log
    grows, the journal does not. Only the log's growth matters here: a batch
    that fails (leadership moved, as under a sanitizer) goes to the new leader."""
    body = '{"pad":"%s"}' % ("x" * size)
    sent = 0
    while sent < n:
        p = g.client(lead).pipeline(transaction=False)
        for _ in range(50):
            p.execute_command("JOB.PUSH", "big", body)
        if any(isinstance(r, Exception) for r in p.execute(raise_on_error=False)):
            lead = g.leader()
        sent += 50
    while True:
        try:
            got = g.client(lead).execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 100, "FROM", "big")
        except redis.ResponseError:
            lead = g.leader()
            continue
        if not got:
            return lead
        p = g.client(lead).pipeline(transaction=False)
        for j in reserved(got):
            p.execute_command("JOB.ACK", j["receipt"])
        p.execute(raise_on_error=False)


def bounded_log(suite, g, mb):
    """Pushes mb MB through the log; the Raft directory keeps far less, and its first entry moved on."""
    lead = g.leader()
    t0 = time.monotonic()
    lead = big_pushes(g, lead, mb * 64, 16000)
    settle(g)
    took = time.monotonic() - t0

    def bounded(sizes):
        # a log never cut holds all mb MB; one cut at its snapshots holds
        # about the entries since the last one (36-41 MB seen for 64 MB)
        return all(s < mb * 1e6 * 0.75 and f is not None and f > 1 for s, _, f in sizes.values())
    end = time.monotonic() + 30  # a snapshot being written (tens of MB on a busy disk) drops segments when done
    sizes = {i: raft_dir(g, i) for i in g.procs}
    while not bounded(sizes) and time.monotonic() < end:
        time.sleep(0.2)
        sizes = {i: raft_dir(g, i) for i in g.procs}
    st = info(g, lead)
    print(f"# {mb} MB pushed through the log in {took:.1f} s; Raft directories: "
          + ", ".join(f"node {i}: log segments {s / 1e6:.1f} MB from entry {f}, snapshots {n / 1e6:.1f} MB"
                      for i, (s, n, f) in sizes.items()))
    print(f"# leader: {st['replica_snapshots']} snapshots, the last at index {st['replica_snapshot_index']}: "
          f"{st['replica_snapshot_bytes']} bytes in {st['replica_snapshot_ms']} ms")
    suite.check("snapshots are taken (--replica-snapshot-entries)", st["replica_snapshots"] >= 2, str(st))
    suite.check(f"the Raft log stays bounded under load ({mb} MB through it: segments before the last "
                "snapshot are dropped)", bounded(sizes), str(sizes))


def wipe(g, f):
    d = os.path.join(g.root, f"node-{f}")
    for name in os.listdir(d):
        if name != "cluster.json":
            p = os.path.join(d, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def wiped_rejoins(suite, g, load, seconds):
    """A wiped follower rejoins through a snapshot (its entries were compacted away)."""
    lead = g.leader()
    f = next(i for i in g.procs if i != lead)
    g.kill(f)
    wipe(g, f)
    load_for(load, seconds)
    t0 = time.monotonic()
    g.start(f)
    ok = settle(g)
    print(f"# wiped node {f} rejoined and applied everything in {time.monotonic() - t0:.2f} s")
    st = info(g, f)
    suite.check("a wiped follower rejoins through a snapshot install", ok and st["replica_snapshots_restored"] >= 1,
                str(st))
    journals_equal(suite, g, f"node {f} wiped, rejoined through a snapshot")


def stored_as_candidate(suite, g):
    """A wiped follower stores the snapshot it is sent after it turned
    candidate: once it writes the snapshot, the other two and then it are
    stopped past an election timeout; it goes on alone, so its next tick
    makes it a candidate while the write ends. libraft then answers the
    install to the leader of its follower state, a union member that holds
    the candidate's fields now (address 0x100: the Raft thread died in
    strlen); the node drops that answer (broker/replica.c), lives on and
    catches up once the others are back."""
    lead = g.leader()
    f = next(i for i in g.procs if i != lead)
    others = [i for i in g.procs if i != f]
    g.kill(f)
    wipe(g, f)
    logf = os.path.join(g.root, f"node-{f}.log")
    since = os.path.getsize(logf)
    g.start(f)
    rd = os.path.join(g.root, f"node-{f}", "raft")
    end, storing = time.monotonic() + 60, False
    while not storing and time.monotonic() < end and g.procs[f].poll() is None:
        try:
            storing = any(n.startswith("tmp-snapshot") for n in os.listdir(rd))
        except FileNotFoundError:
            pass
        if not storing:
            time.sleep(0.002)

    def tail():
        with open(logf, errors="replace") as fh:
            fh.seek(since)
            return fh.read()
    if storing:
        for i in others + [f]:
            g.procs[i].send_signal(signal.SIGSTOP)
    try:
        if storing:
            time.sleep(2.5 * ELECTION_MS / 1000)  # stopped past its randomized election timeout (at most 2x)
            g.procs[f].send_signal(signal.SIGCONT)
            end = time.monotonic() + 60  # until the snapshot is stored and answered (or the node died)
            while time.monotonic() < end and g.procs[f].poll() is None and "queued for the shards" not in tail():
                time.sleep(0.02)
            end = time.monotonic() + 2  # the answer goes out (or is dropped) in the same callback
            while time.monotonic() < end and g.procs[f].poll() is None and "is dropped" not in tail():
                time.sleep(0.02)
    finally:
        for i in others:
            g.procs[i].send_signal(signal.SIGCONT)
    alive = g.procs[f].poll() is None
    settled = alive and settle(g)
    text = tail()
    print(f"# node {f} stored its snapshot as a {'candidate: its answer dropped' if 'is dropped' in text else 'follower'}")
    suite.check(f"a follower that stores a snapshot after it turned candidate lives on and catches up (node {f})",
                storing and alive and settled,
                f"storing seen {storing}, alive {alive}, settled {settled}: " + " | ".join(
                    line[:200] for line in text.splitlines() if "ERROR" in line or "#" in line[:8])[:1500])


def spool(a, *args):
    r = subprocess.run([a.spool, "cluster", *args], capture_output=True, text=True, timeout=180)
    print("".join(f"# {line}\n" for line in (r.stdout + r.stderr).splitlines()), end="")
    return r


def waiting_node(suite, g, new):
    """A node started with --replica-join yes is no group of its own: for
    three election timeouts after it listens it never leads, and refuses a write."""
    roles, reply = set(), ""
    end = time.monotonic() + 20  # until it listens: a sanitizer build on a busy machine starts slowly
    while time.monotonic() < end:
        try:
            role = info(g, new)["replica_role"]
            if not roles:  # listening now: watch it for three election timeouts
                end = time.monotonic() + 3 * 0.4 + 0.3
            roles.add(role)
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # not listening yet
        time.sleep(0.05)
    try:
        reply = str(g.client(new).execute_command("JOB.PUSH", "early", "{}"))
    except (redis.ResponseError, redis.ConnectionError) as e:
        reply = str(e)
    suite.check(f"node {new}, joining, serves nothing until it is added (no leader, writes refused)",
                "leader" not in roles and roles and reply.startswith("CLUSTERDOWN"), f"roles {roles}, push: {reply}")


def add_node(suite, a, g, new, via):
    """Starts node new on a fresh port and data dir (--replica-join yes) and adds it through node via."""
    g.new_node(new)
    g.start(new)
    waiting_node(suite, g, new)
    t0 = time.monotonic()
    r = spool(a, "add-replica", f"127.0.0.1:{g.ports[new]}", f"127.0.0.1:{g.ports[via]}", "--replica-id", str(new),
              "--raft", f"127.0.0.1:{g.ports[new] + 10000}")
    took = time.monotonic() - t0
    st = info(g, new)
    print(f"# node {new} added, caught up and voting in {took:.2f} s (snapshots restored: "
          f"{st['replica_snapshots_restored']})")
    suite.check(f"spool cluster add-replica: node {new} on a fresh port and data dir joins and votes",
                r.returncode == 0 and f"node {new} is a voter" in r.stdout, r.stdout + r.stderr)
    return st


def members_of(g, i):
    text = g.client(i).execute_command("REPLICA.MEMBERS")
    text = text.decode() if isinstance(text, bytes) else text
    return {int(line.split()[0]): line.split()[3] for line in text.splitlines() if not line.startswith("change:")}


def seen_by(read, ok, within=10.0):
    """read() once ok(read()) holds, or its last value when within seconds
    pass: a follower applies a configuration change or a slot map a moment
    after the leader answered spool cluster add-/remove-replica."""
    end = time.monotonic() + within
    while True:
        v = read()
        if ok(v) or time.monotonic() > end:
            return v
        time.sleep(0.05)


def map_ports(g, i):
    """The ports of the slot map's nodes as node i sees them."""
    import json
    m = json.loads(g.client(i).execute_command("CLUSTER", "GETMAP"))
    return sorted(n["port"] for grp in m["groups"] for n in grp["nodes"])


def replace_and_grow(suite, a, g, load):
    """Kills the leader, removes it at once (spool cluster remove-replica
    waits for the election), adds node 4 on a fresh port and dir, grows to
    5, kills the leader once more."""
    load_for(load, 1.0)
    dead = g.leader()
    g.kill(dead)
    live = sorted(i for i in (1, 2, 3) if i != dead)
    via = f"127.0.0.1:{g.ports[live[0]]}"
    r = spool(a, "remove-replica", str(dead), via)
    suite.check(f"spool cluster remove-replica {dead} right after the leader {dead} died: it waits for the election "
                "and the dead node leaves the group",
                r.returncode == 0 and "waiting up to" in r.stdout
                and dead not in seen_by(lambda: members_of(g, live[0]), lambda m: dead not in m), r.stdout + r.stderr)
    suite.check("a bad remove-replica names the node and the fix",
                "node 9 is not a member" in spool(a, "remove-replica", "9", via).stderr)
    load_for(load, 2.0)  # past a few snapshots: the new node must be sent one
    st = add_node(suite, a, g, 4, live[0])
    suite.check("the new node caught up through a snapshot (the log was compacted)",
                st["replica_snapshots_restored"] >= 1, str(st))
    load_for(load, 1.0)
    add_node(suite, a, g, 5, live[1])
    want = live + [4, 5]

    def four_voters(m):
        return sorted(m) == want and all(v == "voter" for v in m.values())
    m = seen_by(lambda: members_of(g, live[0]), four_voters)
    suite.check(f"the group has four voters: {live[0]}, {live[1]} and the new 4 and 5 ({dead} was removed)",
                four_voters(m), str(m))
    if g.cluster:
        ports_want = sorted(g.ports[i] for i in want)
        ports = seen_by(lambda: map_ports(g, live[0]), lambda p: p == ports_want)
        suite.check(f"cluster mode: the slot map's group follows (node {dead} out, nodes 4 and 5 in)",
                    ports == ports_want, f"node {live[0]}'s map lists {ports}, want {ports_want}")
    # Killing one of four voters leaves a majority only if the other three
    # vote: each must have applied the change that made 4 and 5 voters (a
    # node that still sees itself as a spare stands for no election).
    for i in want:
        m = seen_by(lambda: members_of(g, i), four_voters)
        suite.check(f"node {i} sees the four voters before a leader is killed", four_voters(m), str(m))
    load_for(load, 1.0)
    victim = g.leader()
    g.kill(victim)  # three of four left: still a majority
    load_for(load, 2.0)
    g.start(victim)
    check_load(suite, load)
    journals_equal(suite, g, "after the replacement, the growth to five and a leader kill")


def measure(g, jobs, size):
    """Figures for docs/replication.md: jobs pending of size bytes; the
    snapshot's size and time; a wiped follower's rejoin time."""
    lead = g.leader()
    c = g.client(lead)
    body = '{"pad":"%s"}' % ("x" * max(0, size - 10))
    t0 = time.monotonic()
    for k in range(0, jobs, 500):
        p = c.pipeline(transaction=False)
        for n in range(k, min(jobs, k + 500)):
            p.execute_command("JOB.PUSH", f"m{n % 8}", body)
        p.execute()
    print(f"# {jobs} jobs of {size} bytes pushed in {time.monotonic() - t0:.1f} s")
    settle(g)
    before = info(g, lead)["replica_snapshots"]
    end = time.monotonic() + 120
    while info(g, lead)["replica_snapshots"] == before and time.monotonic() < end:
        c.execute_command("JOB.PUSH", "tick", "{}")  # entries until the next threshold
    st = info(g, lead)
    print(f"# snapshot at index {st['replica_snapshot_index']}: {st['replica_snapshot_bytes'] / 1e6:.1f} MB "
          f"({st['replica_snapshot_bytes'] / jobs:.0f} bytes a job), the journals copied in {st['replica_snapshot_ms']} "
          f"ms, written (compressed, synced) by {st['replica_snapshot_written_ms']} ms; Raft directory of the leader: "
          f"{sum(raft_dir(g, lead)[:2]) / 1e6:.1f} MB")
    f = next(i for i in g.procs if i != lead)
    g.kill(f)
    shutil.rmtree(os.path.join(g.root, f"node-{f}"))
    for _ in range(SNAP_ENTRIES * 2):
        c.execute_command("JOB.PUSH", "tick", "{}")
    t0 = time.monotonic()
    g.start(f)
    settle(g, 300)
    print(f"# wiped follower rejoined (snapshot install + restore of {jobs} jobs) in {time.monotonic() - t0:.2f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spoold", required=True)
    ap.add_argument("--spool", required=True, help="the spool CLI (spool cluster add-replica/remove-replica)")
    ap.add_argument("--cluster", action="store_true", help="cluster mode (spoold --cluster yes, RedisCluster)")
    ap.add_argument("--mb", type=int, default=64, help="MB pushed through the log for the bounded-log check")
    ap.add_argument("--measure", type=int, help="only measure: snapshot size and time, rejoin time, for N jobs")
    ap.add_argument("--size", type=int, default=230, help="--measure: payload bytes a job")
    a = ap.parse_args()
    suite = Suite()
    root = tempfile.mkdtemp(prefix="spool-members-")
    g = Group(a.spoold, root, a.spool if a.cluster else None)
    g.extra = ["--replica-snapshot-entries", str(SNAP_ENTRIES), "--replica-snapshot-trailing", str(SNAP_TRAILING),
               "--replica-catch-up-round-ms", str(CATCH_UP_ROUND_MS)]
    error = None
    try:
        g.start_group()
        if a.measure:
            measure(g, a.measure, a.size)
        else:
            load = Load(g)
            if not g.cluster:
                bounded_log(suite, g, a.mb)
            wiped_rejoins(suite, g, load, 2.0)
            stored_as_candidate(suite, g)
            replace_and_grow(suite, a, g, load)
    except Exception as e:  # a failed step fails the suite, with its reason
        error = e
    return ended(suite, g, root, error)


if __name__ == "__main__":
    sys.exit(main())
