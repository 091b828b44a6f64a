"""The slot map kept by a replicated first group (docs/cluster.md, "Who
keeps the map"), driven by redis-py against a group of three in cluster
mode (spool cluster create --replicas 2 commits the first map through Raft).

Checks: every member installs the committed map; CLUSTER CASMAP sent four
times at once from one epoch to the leader: exactly one committed, the
others refused as conflicts, every member on the winner; a change made
from an older epoch is refused; a follower refuses CASMAP (READONLY) and
SETMAP (it takes maps from the log only); a change answered by the leader,
which is then killed with SIGKILL at once, survives: the new leader has it
before it serves, the killed node has it when back, and the next change
goes through the new leader. With one I/O thread (--io-threads 1): while
a CASMAP waits on a leader cut off from its group (both followers
stopped with SIGSTOP), another client is served at once, and the waiting
one is answered "outcome unknown" naming the epoch; a waiting client
that closes its connection leaves the node serving, and the next change
commits.
Ends with "N passed, N failed".

  /usr/bin/python3 slotmap.py --spoold PATH --spool PATH
"""
import argparse
import json
import signal
import socket
import sys
import tempfile
import threading
import time

import redis

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from failover import ELECTION_MS, Group, Suite, ended, map_epochs, wait_map  # noqa: E402


def epoch_of(g, i):
    return map_epochs([g.ports[i]])[0]


def converged(g, epoch, deadline_s=10.0):
    return wait_map([g.ports[i] for i in g.procs], epoch, deadline_s)


def map_leader(g, deadline_s=20.0):
    """The member that serves as the group's leader (INFO replication:
    replica_role:leader, set once its barrier committed), polled. (CLUSTER
    NODES names the map's leader while an election runs.)"""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for i in list(g.procs):
            try:
                if g.client(i).info("replication").get("replica_role") == "leader":
                    return i
            except (redis.ConnectionError, redis.TimeoutError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"no member led within {deadline_s} s")


def next_map(g, lead, tag):
    m = json.loads(g.client(lead).execute_command("CLUSTER", "GETMAP"))
    n = dict(m, epoch=m["epoch"] + 1)
    n["groups"] = [dict(m["groups"][0], name=tag)]
    return m["epoch"], n


def casmap(g, i, old, m):
    try:
        return g.client(i).execute_command("CLUSTER", "CASMAP", str(old), json.dumps(m))
    except redis.ResponseError as e:
        return str(e)


def at_once(suite, g):
    lead = map_leader(g)
    old, _ = next_map(g, lead, "x")
    maps = [next_map(g, lead, f"try{k}")[1] for k in range(4)]
    results = [None] * 4
    gate = threading.Barrier(4)

    def one(k):
        gate.wait()
        results[k] = casmap(g, lead, old, maps[k])
    ts = [threading.Thread(target=one, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    wins = [k for k in range(4) if results[k] == 1]
    print(f"# four CASMAP from epoch {old} at once: {results}")
    suite.check("four changes from one epoch at once: exactly one committed, the others refused as conflicts",
                len(wins) == 1 and all("map conflict" in str(results[k]) for k in range(4) if k not in wins),
                str(results))
    same = converged(g, old + 1) and wins and all(
        json.loads(g.client(i).execute_command("CLUSTER", "GETMAP"))["groups"][0]["name"] == f"try{wins[0]}"
        for i in g.procs)
    suite.check("every member installed the winner from the log", bool(same))
    stale = casmap(g, lead, old, maps[0])
    suite.check("a change made from an older epoch is refused, naming both epochs",
                f"the slot map is at epoch {old + 1}, this change was made from epoch {old}" in str(stale), str(stale))
    follower = next(i for i in g.procs if i != lead)
    _, n = next_map(g, lead, "follower")
    r = casmap(g, follower, old + 1, n)
    suite.check("a follower refuses CASMAP and names the leader (READONLY)", "does not lead the group that keeps the "
                "slot map" in str(r) and str(g.ports[lead]) in str(r), str(r))
    try:
        r = g.client(follower).execute_command("CLUSTER", "SETMAP", json.dumps(n))
    except redis.ResponseError as e:
        r = str(e)
    suite.check("a follower refuses SETMAP: it takes maps from its Raft log", "takes maps from its Raft log" in str(r),
                str(r))


def leader_killed(suite, g):
    lead = map_leader(g)
    old, n = next_map(g, lead, "survives")
    r = casmap(g, lead, old, n)
    g.kill(lead)  # right after the answer
    suite.check("the change is answered", r == 1, str(r))
    new = map_leader(g)
    suite.check(f"the new leader (node {new}) has the change when it serves", epoch_of(g, new) == old + 1,
                f"epoch {epoch_of(g, new)}")
    g.start(lead)
    suite.check(f"the killed node {lead}, back, and every member converge on epoch {old + 1}", converged(g, old + 1))
    new = map_leader(g)
    _, n2 = next_map(g, new, "after")
    r = casmap(g, new, old + 1, n2)
    suite.check("the next change goes through the new leader from that epoch", r == 1 and converged(g, old + 2), str(r))


def one_conn(g, i):
    return redis.Redis(port=g.ports[i], socket_timeout=30, socket_connect_timeout=1, single_connection_client=True)


def stop_followers(g, lead, sig):
    for i in g.procs:
        if i != lead:
            g.procs[i].send_signal(sig)


def served_while_waiting(g, lead, waiting):
    """PINGs on another connection of the same (only) I/O thread while
    the thread `waiting` runs: (PINGs answered while it still ran, the
    slowest in s)."""
    b = one_conn(g, lead)
    n, worst, end = 0, 0.0, time.monotonic() + 20
    while waiting.is_alive() and time.monotonic() < end:
        t0 = time.monotonic()
        b.ping()
        worst = max(worst, time.monotonic() - t0)
        n += waiting.is_alive()
        time.sleep(0.01)
    return n, worst


def parked(suite, g):
    lead = map_leader(g)
    old, n = next_map(g, lead, "parked")
    result = []
    a = threading.Thread(target=lambda: result.append(casmap_on(one_conn(g, lead), old, n)))
    stop_followers(g, lead, signal.SIGSTOP)
    try:
        a.start()
        served, worst = served_while_waiting(g, lead, a)
        a.join(30)
    finally:
        stop_followers(g, lead, signal.SIGCONT)
    print(f"# CASMAP on a leader cut off: {served} PINGs served meanwhile (slowest {worst * 1000:.0f} ms): {result}")
    suite.check("while a CASMAP waits for its commit, another client of the same I/O thread is served at once",
                served >= 3 and worst < 0.5, f"{served} PINGs, slowest {worst:.3f} s")
    suite.check("the waiting CASMAP is answered: outcome unknown, naming the epoch and the fix",
                len(result) == 1 and "outcome unknown" in str(result[0]) and f"epoch {old + 1}" in str(result[0])
                and "run the command again" in str(result[0]), str(result))


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for x in args:
        x = x.encode() if isinstance(x, str) else x
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out


def gone_while_waiting(suite, g):
    """A client whose CASMAP waits closes its connection (spool has no
    CLIENT KILL: the close is what it would do): the answer that comes
    later finds the connection gone, and the node goes on serving."""
    lead = map_leader(g)
    old, n = next_map(g, lead, "gone")
    stop_followers(g, lead, signal.SIGSTOP)
    try:
        s = socket.create_connection(("127.0.0.1", g.ports[lead]), timeout=5)
        s.sendall(resp("CLUSTER", "CASMAP", str(old), json.dumps(n)))
        time.sleep(0.05)  # the CASMAP reaches the node and waits there
        s.close()
        pongs = [g.client(lead).ping() for _ in range(3)]
        time.sleep(ELECTION_MS * 3 / 1000)  # its answer (leadership lost) arrives for a closed connection
        pongs.append(g.client(lead).ping())
    finally:
        stop_followers(g, lead, signal.SIGCONT)
    suite.check("a client that closes while its CASMAP waits: the node goes on serving", all(pongs), str(pongs))
    new = map_leader(g)
    cur, n2 = next_map(g, new, "after-close")
    r = casmap(g, new, cur, n2)
    suite.check("after it, the next change commits", r == 1 and converged(g, cur + 1), str(r))


def casmap_on(conn, old, m):
    try:
        return conn.execute_command("CLUSTER", "CASMAP", str(old), json.dumps(m))
    except redis.ResponseError as e:
        return str(e)
    except (redis.ConnectionError, redis.TimeoutError) as e:
        return f"connection: {e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spoold", required=True)
    ap.add_argument("--spool", required=True)
    a = ap.parse_args()
    suite = Suite()
    root = tempfile.mkdtemp(prefix="spool-slotmap-")
    g = Group(a.spoold, root, a.spool)
    g.extra = ["--io-threads", "1"]  # a CASMAP waiting for its commit must not hold up its I/O thread
    error = None
    try:
        for i in (1, 2, 3):
            g.start(i)
        g.create_cluster()
        suite.check("spool cluster create: every member installs map epoch 1 from the log", converged(g, 1))
        at_once(suite, g)
        leader_killed(suite, g)
        parked(suite, g)
        gone_while_waiting(suite, g)
    except Exception as e:  # a failed step fails the suite, with its reason
        error = e
    return ended(suite, g, root, error)


if __name__ == "__main__":
    sys.exit(main())
