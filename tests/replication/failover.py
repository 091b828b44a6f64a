"""A replication group of three spoold on loopback, driven by redis-py,
while its leader is killed with SIGKILL (docs/cluster.md, "Replication").

Checks: no acknowledged push lost, no acknowledged ack undone, every
acknowledged job delivered; every node's journal ends the same; a
follower stopped with SIGSTOP does not stop writes; a node whose data dir
was wiped rejoins and gets everything back; a follower redirects (-MOVED
to the leader); a minority refuses writes; bad flags get a clear error. Prints the write
pause at each failover and its p50/p99/max. Ends with "N passed, N failed".

  /usr/bin/python3 failover.py --spoold PATH [--kills N] [--seconds S] [--rounds R]
"""
import argparse
import atexit
import contextlib
import fcntl
import io
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import redis

ELECTION_MS = 400
LEASE_MS = 3000

GROUPS = []  # every Group made by this process: its nodes are stopped when the process ends


@atexit.register
def _kill_nodes():
    """A script that ends early (an exception, or SIGTERM from a timeout)
    leaves no spoold running: each node still running is killed."""
    for g in GROUPS:
        for p in g.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's SIGTERM runs the atexit above


PORT_LOCKS = os.path.join(tempfile.gettempdir(), "spool-test-ports")
_held_ports = {}  # port -> open lock file, kept (and so locked) until this process ends


def _ephemeral_low():
    """The first port of the kernel's range for ephemeral ports (bind to 0,
    the local end of an outgoing connection)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bind_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port():
    """A port for the client and, 10000 above it, for Raft, both given to
    spoold by number (--port, --replica-peers), so spoold cannot pick them
    itself. Both lie below the kernel's ephemeral range: no outgoing
    connection and no bind to port 0 can take one between this pick and
    spoold's bind, or while a node is down between two starts. Both were
    free when picked, and both stay locked (flock on a file under
    PORT_LOCKS per port) until this process ends, so two suites running at
    once never share a port: one's client port is never the other's Raft
    port, taken while that node was down (its restart could not listen)."""
    os.makedirs(PORT_LOCKS, exist_ok=True)
    top = _ephemeral_low() - 10000 - 1
    if top < 11024:
        raise RuntimeError("the ephemeral port range starts too low for a client/Raft port pair")
    for _ in range(2000):
        p = random.randint(10000, top)
        if p in _held_ports or p + 10000 in _held_ports:
            continue
        locks = []
        for q in (p, p + 10000):
            f = open(os.path.join(PORT_LOCKS, str(q)), "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locks.append(f)
            except OSError:
                f.close()
                break
        if len(locks) == 2 and _bind_free(p) and _bind_free(p + 10000):
            _held_ports[p], _held_ports[p + 10000] = locks
            return p
        for f in locks:
            f.close()
    raise RuntimeError("no free port pair")


def map_epochs(ports):
    """The epoch of the slot map each node on ports has (CLUSTER GETMAP; 0:
    none yet, -1: not answering)."""
    out = []
    for p in ports:
        try:
            m = redis.Redis(port=p, socket_timeout=10, socket_connect_timeout=1).execute_command("CLUSTER", "GETMAP")
            out.append(json.loads(m)["epoch"] if m else 0)
        except (OSError, redis.RedisError):
            out.append(-1)
    return out


def wait_map(ports, epoch, deadline_s=10.0):
    """Polls until every node on ports has map epoch epoch: True, or False
    once deadline_s passed (slotmap.py, tests/cluster/cluster_suite.py)."""
    end = time.monotonic() + deadline_s
    while not all(e == epoch for e in map_epochs(ports)):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


class Group:
    def __init__(self, spoold, root, spool_cli=None):
        """spool_cli given: cluster mode (spoold --cluster yes, slot map made by spool cluster create)."""
        self.spoold, self.root, self.spool_cli = spoold, root, spool_cli
        self.cluster = spool_cli is not None
        self.ports = {}
        while len(self.ports) < 3:
            p = free_port()
            if p not in self.ports.values():
                self.ports[len(self.ports) + 1] = p
        self.peers = ",".join(f"{i}=127.0.0.1:{p + 10000}/127.0.0.1:{p}" for i, p in self.ports.items())
        self.procs = {}
        self.extra = []      # more spoold flags for every node
        self.joined = set()  # nodes added to the running group (--replica-join yes): members.py
        GROUPS.append(self)

    def new_node(self, i):
        """A node id i on a fresh port and data dir, to join the running group."""
        while i not in self.ports:
            p = free_port()
            if p not in self.ports.values():
                self.ports[i] = p
        self.joined.add(i)

    def start(self, i):
        d = os.path.join(self.root, f"node-{i}")
        os.makedirs(d, exist_ok=True)
        log = open(os.path.join(self.root, f"node-{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [self.spoold, "--port", str(self.ports[i]), "--http-port", "0", "--data-dir", d, "--shards", "2",
             "--io-threads", "1", "--replica-id", str(i), "--replica-peers", self.peers if i not in self.joined
             else f"{i}=127.0.0.1:{self.ports[i] + 10000}/127.0.0.1:{self.ports[i]}",
             "--replica-election-ms", str(ELECTION_MS), "--enable-debug-command", "yes"]
            + (["--cluster", "yes"] if self.cluster else [])
            + (["--replica-join", "yes"] if i in self.joined else []) + self.extra,
            stdout=log, stderr=log)
        log.close()

    def create_cluster(self):
        """One group of the three, all 16384 slots (spool cluster create --replicas 2)."""
        addrs = [f"127.0.0.1:{self.ports[i]}" for i in sorted(self.ports)]
        end = time.monotonic() + 20
        while True:
            r = subprocess.run([self.spool_cli, "cluster", "create"] + addrs + ["--replicas", "2"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0:
                return
            if time.monotonic() > end:
                raise AssertionError(f"spool cluster create failed: {r.stdout} {r.stderr}")
            time.sleep(0.1)  # a node not listening yet

    def start_group(self):
        """Starts nodes 1-3 (in cluster mode, one group holding every slot) and waits for a leader."""
        for i in (1, 2, 3):
            self.start(i)
        if self.cluster:
            self.create_cluster()
        self.leader()

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs.pop(i)
        p.send_signal(sig)
        p.wait(timeout=30)

    def stop_all(self):
        for i in list(self.procs):
            self.kill(i, signal.SIGTERM)

    def client(self, i):
        return redis.Redis(port=self.ports[i], socket_timeout=10, socket_connect_timeout=1)

    def by_port(self, port):
        return next(i for i, p in self.ports.items() if p == port)

    def leader(self, deadline_s=15.0):
        """The node that accepts a write now (polled with a deadline)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            for i in list(self.procs):
                try:
                    self.client(i).execute_command("JOB.PUSH", "probe", "{}")
                    return i
                except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
                    pass
            time.sleep(0.05)
        raise AssertionError(f"no leader accepted a write within {deadline_s} s")


class Client:
    """Follows -MOVED, retries -CLUSTERDOWN and lost connections; tells
    apart what is acknowledged from what has an unknown outcome."""

    def __init__(self, group):
        self.g, self.node = group, 1

    def call(self, *args, deadline_s=20.0):
        """Returns ("ok", reply) or ("unknown", error): the write may or may not have happened."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.node not in self.g.procs:
                self.node = next(iter(self.g.procs))
            try:
                return "ok", self.g.client(self.node).execute_command(*args)
            except redis.ResponseError as e:
                msg = str(e)
                if msg.startswith("MOVED "):
                    self.node = self.g.by_port(int(msg.split()[2].rsplit(":", 1)[1]))
                    continue
                if "outcome unknown" in msg:
                    return "unknown", msg
                if msg.startswith("CLUSTERDOWN"):
                    time.sleep(0.02)
                    continue
                raise
            except (redis.ConnectionError, redis.TimeoutError) as e:
                # sent (maybe) to a node that died: the outcome is unknown
                nodes = sorted(self.g.procs)
                self.node = nodes[(nodes.index(self.node) + 1) % len(nodes)] if self.node in nodes else nodes[0]
                return "unknown", str(e)
        raise AssertionError(f"{args[0]}: no node answered within {deadline_s} s")


class ClusterClient:
    """redis-py RedisCluster: it follows -MOVED and retries -CLUSTERDOWN
    itself (a retried write may then be applied twice, which the checks
    allow: they follow job ids). redis-py 4.3 does not recover its slot
    table after a node died under it, so a connection error makes a new
    client from the startup nodes (its own tracebacks are kept quiet)."""

    def __init__(self, group):
        self.g = group
        self.rc = None

    def _client(self):
        from redis.cluster import ClusterNode, RedisCluster
        if self.rc is None:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                self.rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.g.ports.values()],
                                       socket_timeout=5, socket_connect_timeout=1)
        return self.rc

    def call(self, *args, deadline_s=20.0):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    return "ok", self._client().execute_command(*args)
            except (redis.exceptions.ClusterDownError, redis.ResponseError) as e:
                if "outcome unknown" in str(e):
                    return "unknown", str(e)
                if not isinstance(e, redis.exceptions.ClusterDownError) and not str(e).startswith("CLUSTERDOWN"):
                    raise
                time.sleep(0.05)
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError,
                    redis.exceptions.RedisClusterException, IndexError) as e:
                # a node died under it (IndexError: redis-py 4.3's slot table lost the slot): maybe sent
                self.rc = None
                return "unknown", str(e)
        raise AssertionError(f"{args[0]}: the cluster did not answer within {deadline_s} s")


def reserved(reply):
    """JOB.RESERVE's reply as a list of dicts."""
    out = []
    for r in reply or []:
        it = iter(r)
        out.append({(k.decode() if isinstance(k, bytes) else k): v for k, v in zip(it, it)})
    return out


class Load:
    def __init__(self, group, first=0):
        self.c = ClusterClient(group) if group.cluster else Client(group)
        self.n = first  # the last number pushed: loads running at once start apart
        self.acked_push = {}      # n -> id
        self.unknown_push = set()
        self.acked_ack = {}       # job id -> time of the acknowledged ack
        self.delivered = []       # (n, job id, time)

    def push(self):
        self.n += 1
        st, rep = self.c.call("JOB.PUSH", "jq", '{"n":%d}' % self.n)
        if st == "ok":
            self.acked_push[self.n] = rep
        else:
            self.unknown_push.add(self.n)
        return st == "ok"

    def consume(self):
        st, rep = self.c.call("JOB.RESERVE", "NOWAIT", "LEASE", LEASE_MS, "FROM", "jq")
        if st != "ok":
            return
        for j in reserved(rep):
            n = int(j["payload"].decode().split(":")[1].rstrip("}"))
            self.delivered.append((n, j["id"], time.monotonic()))
            try:
                st2, _ = self.c.call("JOB.ACK", j["receipt"])
            except redis.ResponseError as e:  # STALE: the lease ran out first (a slow, sanitized node); not acked
                if not str(e).startswith("STALE"):
                    raise
                st2 = "stale"
            if st2 == "ok":
                self.acked_ack.setdefault(j["id"], time.monotonic())

    def step(self):
        self.push()
        if self.n % 2 == 0:
            self.consume()

    def drain(self, quiet_s):
        """Consumes until the queue stayed empty for quiet_s (past every lease)."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            before = len(self.delivered)
            self.consume()
            if len(self.delivered) > before:
                last = time.monotonic()
            else:
                time.sleep(0.05)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round((len(v) - 1) * p)))] if v else 0.0


class Suite:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok - {name}")
        else:
            self.failed += 1
            print(f"not ok - {name}: {detail}")


def failovers(suite, g, kills, seconds, max_pause):
    load = Load(g)
    pauses = []
    for k in range(kills):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            load.step()
        victim = g.leader()
        t_kill = time.monotonic()
        g.kill(victim)
        while not load.push():  # the write pause: from the kill to the next acknowledged push
            pass
        pauses.append(time.monotonic() - t_kill)
        print(f"# failover {k + 1}: killed node {victim}, writes resumed after {pauses[-1] * 1000:.0f} ms")
        g.start(victim)
    check_load(suite, load)
    print(f"# write pause at failover: p50 {pct(pauses, .5) * 1000:.0f} ms, p99 {pct(pauses, .99) * 1000:.0f} ms, "
          f"max {max(pauses) * 1000:.0f} ms (election timeout {ELECTION_MS} ms)")
    suite.check(f"writes resume within {max_pause:g} s of a leader kill", max(pauses) < max_pause,
                f"max pause {max(pauses):.2f} s")


def check_load(suite, load, what=""):
    """Drains the queue; every acknowledged push delivered, no acknowledged ack undone."""
    load.drain(quiet_s=LEASE_MS / 1000 + 1.0)
    seen = {n for n, _, _ in load.delivered}
    lost = sorted(set(load.acked_push) - seen)
    suite.check(f"every acknowledged push was delivered{what}", not lost, f"{len(lost)} lost, e.g. {lost[:10]}")
    undone = sorted({n for n, i, t in load.delivered if i in load.acked_ack and t > load.acked_ack[i]})
    suite.check(f"no acknowledged ack undone (no redelivery after it){what}", not undone, f"redelivered: {undone[:10]}")
    phantom = sorted(seen - set(load.acked_push) - load.unknown_push)
    suite.check(f"nothing delivered that was never pushed{what}", not phantom, f"{phantom[:10]}")
    print(f"# {load.n} pushes ({len(load.acked_push)} acknowledged, {len(load.unknown_push)} "
          f"outcome unknown), {len(load.delivered)} deliveries, {len(load.acked_ack)} acks acknowledged")


def replication_info(g, i):
    try:
        info = g.client(i).info("replication")
    except (redis.ConnectionError, redis.TimeoutError):
        return None, None  # not listening yet
    return info.get("replica_applied_index"), info.get("replica_entries_queued")


def settle(g, deadline_s=60.0):
    """Polls INFO replication until every running node applied the same last entry."""
    end = time.monotonic() + deadline_s
    seen = None
    while time.monotonic() < end:
        seen = {i: replication_info(g, i) for i in g.procs}
        if len({v[0] for v in seen.values()}) == 1 and all(v[0] is not None and v[1] == 0 for v in seen.values()):
            return True
        time.sleep(0.05)
    print(f"# not settled: {seen}")
    return False


def journal_rows(g, i):
    rows = []
    for k in range(2):
        db = sqlite3.connect(os.path.join(g.root, f"node-{i}", f"shard-{k}.db"))
        rows += db.execute("SELECT id, queue, state, attempt, body FROM jobs ORDER BY id").fetchall()
        rows += db.execute("SELECT id, body FROM payloads ORDER BY id").fetchall()
        rows += db.execute("SELECT name, config, paused FROM queues ORDER BY name").fetchall()
        db.close()
    return rows


def journals_equal(suite, g, what):
    """Stops the group once every node applied the log; every journal must hold the same jobs."""
    settled = settle(g)
    members = sorted(g.procs)
    g.stop_all()
    rows = {i: journal_rows(g, i) for i in members}
    first = rows[members[0]]
    diff = [i for i in members if rows[i] != first]
    suite.check(f"{what}: every node's journal holds the same jobs ({len(first)} rows)", settled and not diff,
                f"settled={settled}, nodes differing from node {members[0]}: {diff}")
    for i in members:
        g.start(i)
    g.leader()


def stalled_follower(suite, g, seconds):
    """SIGSTOP a follower under load: writes go on (the other two are a majority)."""
    load = Load(g)
    settle(g)  # every node up and caught up: a node still replaying would leave no majority
    lead = g.leader()
    load.c.node = lead  # a client of the stopped node would wait for its socket timeout
    load.push()  # RedisCluster reads the slot map now, not from the stopped node
    f = next(i for i in g.procs if i != lead)
    g.procs[f].send_signal(signal.SIGSTOP)
    t0, worst, last = time.monotonic(), 0.0, time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            load.push()
            now = time.monotonic()
            worst, last = max(worst, now - last), now
    finally:
        g.procs[f].send_signal(signal.SIGCONT)
    suite.check("a stopped follower (SIGSTOP) does not stop writes", worst < 1.0 and len(load.acked_push) > 10,
                f"{len(load.acked_push)} pushes acknowledged, longest gap {worst:.2f} s")


def wiped_node(suite, g, seconds):
    """A follower loses its data dir and rejoins: the leader sends it the log again."""
    lead = g.leader()
    f = next(i for i in g.procs if i != lead)
    g.kill(f)
    d = os.path.join(g.root, f"node-{f}")
    for name in os.listdir(d):  # in cluster mode the node keeps its identity and map (cluster.json)
        if name != "cluster.json":
            p = os.path.join(d, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    load = Load(g)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        load.step()
    g.start(f)
    journals_equal(suite, g, f"node {f} wiped and rejoined")


def follower_and_minority(suite, g):
    lead = g.leader()
    other = next(i for i in g.procs if i != lead)
    try:
        g.client(other).execute_command("JOB.PUSH", "jq2", "{}")
        suite.check("a follower redirects a write", False, "it accepted the write")
    except redis.ResponseError as e:
        suite.check("a follower redirects a write", str(e) == f"MOVED {slot_of('jq2')} 127.0.0.1:{g.ports[lead]}",
                    str(e))
    moved = f"MOVED 0 127.0.0.1:{g.ports[lead]}"
    if g.cluster:  # no slot to name in a cluster client's map; redis-py drops the READONLY prefix
        moved = f"this node does not lead its replication group: send 'flushall' to the leader " \
                f"(127.0.0.1:{g.ports[lead]})"
    try:
        g.client(other).execute_command("FLUSHALL")
        suite.check("a follower redirects a key-less write (FLUSHALL)", False, "it answered OK")
    except redis.ResponseError as e:
        suite.check("a follower redirects a key-less write (FLUSHALL)", str(e).endswith(moved), str(e))
    tx = g.client(other).pipeline(transaction=True)
    tx.get("txkey")  # a read: only the shard's own refusal stops it (a write would also fail its commit)
    try:
        tx.execute()
        suite.check("a follower redirects a read-only transaction (EXEC)", False, "EXEC answered from the follower")
    except redis.ResponseError as e:
        suite.check("a follower redirects a read-only transaction (EXEC)",
                    str(e).startswith("MOVED ") or (g.cluster and "MOVED " in str(e)), str(e))
    # Two of three gone: the one left is a minority and refuses writes.
    for i in [i for i in list(g.procs) if i != other]:
        g.kill(i)
    end, last = time.monotonic() + 10, ""
    while time.monotonic() < end:
        try:
            g.client(other).execute_command("JOB.PUSH", "jq2", "{}")
            last = "accepted"
        except redis.ResponseError as e:
            last = str(e)
            if last.startswith("CLUSTERDOWN no leader in this replication group"):
                break
        time.sleep(0.1)
    suite.check("a minority refuses writes (CLUSTERDOWN)", last.startswith("CLUSTERDOWN no leader in this replication group"), last)


def cut_off_leader(suite, g):
    """Both followers die: the leader cannot commit. A write to it is not
    acknowledged, and its journal keeps nothing the group did not commit:
    once the other two elected a leader without it and it rejoined, every
    journal holds the same jobs (the write is in none)."""
    lead = g.leader()
    for f in [i for i in g.procs if i != lead]:
        g.kill(f)
    try:
        rep = g.client(lead).execute_command("JOB.PUSH", "cutq", '{"cut":1}')
        suite.check("a leader cut off from its group acknowledges no write", False, f"acknowledged: {rep}")
    except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError) as e:
        suite.check("a leader cut off from its group acknowledges no write", "outcome unknown" in str(e) or
                    str(e).startswith("CLUSTERDOWN"), str(e))
    g.kill(lead)
    for i in g.ports:
        if i != lead:
            g.start(i)
    g.leader()
    g.start(lead)
    journals_equal(suite, g, "a cut-off leader rejoined")


def stalled_leader(suite, g, seconds, clients=6):
    """SIGSTOP the leader under load from several clients, until the other
    two elected a leader; resumed, the old leader finds its leadership
    lost with writes in flight ("outcome unknown"), takes its journal back
    to what the group committed (its transaction held several entries) and
    follows, without a restart. Nothing acknowledged is lost, and every
    journal ends the same."""
    loads = [Load(g, first=k * 1000000) for k in range(clients)]
    lead = g.leader()
    for ld in loads:
        ld.c.node = lead
    other = None

    def body():
        nonlocal other
        time.sleep(seconds / 2)
        g.procs[lead].send_signal(signal.SIGSTOP)
        try:
            end = time.monotonic() + 20
            while other is None and time.monotonic() < end:
                for i in [i for i in g.procs if i != lead]:
                    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                        if g.client(i).info("replication").get("replica_role") == "leader":
                            other = i
                time.sleep(0.05)
        finally:
            g.procs[lead].send_signal(signal.SIGCONT)
        time.sleep(seconds / 2)
    merged = run_loads(g, loads, body)
    suite.check("a stopped leader (SIGSTOP) is replaced", other is not None, "no other node became leader")
    print(f"# leader {lead} stopped, node {other} elected; {len(merged.acked_push)} pushes acknowledged, "
          f"{len(merged.unknown_push)} outcome unknown")
    check_load(suite, merged, " (leader stopped)")
    journals_equal(suite, g, f"leader {lead} stopped and resumed")


def run_loads(g, loads, body):
    """Runs body() while each load pushes and consumes on a thread of its own; returns them merged."""
    stop = threading.Event()

    def run(ld):
        while not stop.is_set():
            ld.step()
    threads = [threading.Thread(target=run, args=(ld,)) for ld in loads]
    saved = sys.stdout, sys.stderr  # ClusterClient's redirections are not per thread: put them back after
    for t in threads:
        t.start()
    try:
        body()
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.stdout, sys.stderr = saved
    return merge_loads(g, loads)


def merge_loads(g, loads):
    """One Load holding what the loads (started apart, Load(g, first=k * 1000000)) did."""
    merged = Load(g)
    for k, ld in enumerate(loads):
        merged.n += ld.n - k * 1000000
        merged.acked_push.update(ld.acked_push)
        merged.unknown_push |= ld.unknown_push
        merged.acked_ack.update(ld.acked_ack)
        merged.delivered += ld.delivered
    return merged


def journal_applied(g, i):
    """The last log entry each shard journal of node i holds (read from its files; the node is down)."""
    out = []
    for k in range(2):
        db = sqlite3.connect(os.path.join(g.root, f"node-{i}", f"shard-{k}.db"))
        row = db.execute("SELECT applied FROM spool_replica WHERE id = 0").fetchone()
        db.close()
        out.append(row[0] if row else 0)
    return out


def power_cut_leader(suite, g, seconds):
    """The leader loses its power under load (DEBUG POWER-CUT: every write
    not synced is gone). In a group its shard journals are synced about
    once a second, so they lose their last commits; restarted, the node
    gets them back from the Raft log, which a majority synced before any
    reply: nothing acknowledged is lost and every journal ends the same."""
    load = Load(g)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        load.step()
    lead = g.leader()
    index = g.client(lead).info("replication")["replica_applied_index"]
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
        g.client(lead).execute_command("DEBUG", "POWER-CUT")
    g.procs.pop(lead).wait(timeout=30)
    print(f"# power cut of leader {lead}: its log had applied entry {index}; its shard journals hold entries up "
          f"to {journal_applied(g, lead)} after the cut")
    while not load.push():
        pass
    g.start(lead)
    check_load(suite, load, " (leader power cut)")
    journals_equal(suite, g, f"leader {lead} after a power cut")


def slot_of(key):
    """Redis Cluster's slot of a key without a {tag} (CRC16/XMODEM mod 16384)."""
    crc = 0
    for b in key.encode():
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc % 16384


def bad_flags(suite, spoold, root):
    cases = [
        (["--replica-id", "1"], "--replica-id and --replica-peers go together"),
        (["--replica-id", "4", "--replica-peers", "1=127.0.0.1:1/127.0.0.1:2,2=127.0.0.1:3/127.0.0.1:4,"
          "3=127.0.0.1:5/127.0.0.1:6"], "--replica-id 4 is not a member"),
        (["--replica-id", "1", "--replica-peers", "1=127.0.0.1:1"], "is not ID=RAFTHOST:PORT/HOST:PORT"),
        (["--replica-id", "1", "--replica-peers", "1=127.0.0.1:1/127.0.0.1:2,2=127.0.0.1:3/127.0.0.1:4"],
         "a group has 1, 3 or 5 members"),
    ]
    for k, (flags, want) in enumerate(cases):
        d = os.path.join(root, f"bad-{k}")
        os.makedirs(d)
        r = subprocess.run([spoold, "--port", "0", "--http-port", "0", "--data-dir", d] + flags,
                           capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode(errors="replace")
        suite.check(f"bad flags {' '.join(flags[:2])}...: refused, naming the problem", r.returncode != 0 and want in out,
                    out.strip()[-300:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spoold", required=True)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5, help="load between kills")
    ap.add_argument("--spool", help="the spool CLI: run in cluster mode (spoold --cluster yes, redis-py RedisCluster)")
    ap.add_argument("--max-pause", type=float, default=3.0, help="the write pause allowed at a failover, s")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of a SIGSTOPped follower and a wiped node")
    a = ap.parse_args()
    suite = Suite()
    root = tempfile.mkdtemp(prefix="spool-replication-")
    g = Group(a.spoold, root, a.spool)
    try:
        bad_flags(suite, a.spoold, root)
        g.start_group()
        failovers(suite, g, a.kills, a.seconds, a.max_pause)
        journals_equal(suite, g, "after the leader kills")
        power_cut_leader(suite, g, a.seconds)
        stalled_leader(suite, g, 2 * a.seconds)
        cut_off_leader(suite, g)
        for _ in range(a.rounds):
            stalled_follower(suite, g, 3.0)
            wiped_node(suite, g, a.seconds)
        follower_and_minority(suite, g)
    except Exception as e:  # a failed step fails the suite, with its reason
        import traceback
        traceback.print_exc(file=sys.stdout)
        suite.check("the scenario ran to its end", False, repr(e))
    finally:
        g.stop_all()
    return finish(suite, root)


def ended(suite, g, root, error):
    """The end of a scenario: a step that raised error fails the suite with its reason; the group stops."""
    if error is not None:
        import traceback
        traceback.print_exception(error, file=sys.stdout)
        suite.check("the scenario ran to its end", False, repr(error))
    g.stop_all()
    return finish(suite, root)


def finish(suite, root):
    """Scans every node's log for sanitizer reports, prints the logs' tails
    if anything failed, removes root and prints the summary line."""
    reports = []
    for f in sorted(os.listdir(root)):
        if f.endswith(".log"):
            with open(os.path.join(root, f), errors="replace") as fh:
                lines = fh.readlines()
            for n, line in enumerate(lines):
                if ("WARNING: ThreadSanitizer" in line or "ERROR: AddressSanitizer" in line
                        or "runtime error:" in line or "ERROR: LeakSanitizer" in line):
                    reports.append(f"{f}: {line.strip()}")
                    if len(reports) <= 2:  # the first reports in full
                        print("".join("# " + x for x in lines[n:n + 40]), end="")
    suite.check("no sanitizer report in any node's log", not reports, "; ".join(reports[:5]))
    if suite.failed:
        for f in sorted(os.listdir(root)):
            if f.endswith(".log"):
                print(f"# --- {f} (last lines)")
                with open(os.path.join(root, f), errors="replace") as fh:
                    for line in fh.readlines()[-15:]:
                        print("# " + line.rstrip())
    shutil.rmtree(root, ignore_errors=True)
    print(f"{suite.passed} passed, {suite.failed} failed")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
