"""Cluster mode with real clients, beside a real Redis Cluster (see run-suite).

Each test prints "ok NAME" or "FAIL NAME: why"; the last line is
"N passed, N failed"."""
from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "replication"))
from failover import free_port, map_epochs, wait_map  # noqa: E402  (shared with the replication suites)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS: argparse.Namespace


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = cond()
        except (OSError, redis.RedisError):
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(0.02)


# ------------------------------------------------------------ raw RESP


class Raw:
    """A bare RESP connection: replies as (type, value) trees, so that RESP2
    and RESP3 shapes can be compared exactly."""

    def __init__(self, port: int, proto: int = 2) -> None:
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        if proto == 3:
            self.cmd("HELLO", "3")

    def close(self) -> None:
        self.s.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self) -> Tuple[str, Any]:
        line = self._line()
        t, rest = chr(line[0]), line[1:].decode()
        if t in "+-:(,#":
            return t, rest
        if t in "$=!":
            n = int(rest)
            if n < 0:
                return t, None
            text = self._exact(n).decode(errors="replace")
            return t, text[4:] if t == "=" else text  # a verbatim string's "txt:"
        if t == "_":
            return t, None
        if t in "*~>":
            n = int(rest)
            return (t, None) if n < 0 else (t, [self.read() for _ in range(n)])
        if t == "%":
            return t, [self.read() for _ in range(2 * int(rest))]
        raise AssertionError("bad RESP type %r" % t)

    def cmd(self, *args: str) -> Tuple[str, Any]:
        out = b"*%d\r\n" % len(args)
        for a in args:
            b = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(b), b)
        self.s.sendall(out)
        return self.read()


def raw_text(port: int, *args: str) -> str:
    r = Raw(port)
    try:
        return str(r.cmd(*args)[1])
    finally:
        r.close()


def shape(v: Tuple[str, Any]) -> Any:
    """Types and structure; texts that name nodes reduced to their form."""
    t, x = v
    if isinstance(x, list):
        return (t, [shape(e) for e in x])
    if t in "$+" and x is not None:
        if re.fullmatch(r"[0-9a-f]{40}", x):
            return (t, "<id>")
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", x):
            return (t, "<ip>")
        return (t, x)
    if t == ":":
        return (t, "<int>")
    return (t, x)


# -------------------------------------------------------------- servers


class RedisClusterServers:
    """Three redis-server nodes in cluster mode, made a cluster by
    redis-cli --cluster create."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="spool-redis-cluster-")
        self.procs: List[subprocess.Popen] = []
        self.ports: List[int] = []
        for i in range(3):
            port = free_port()  # and port + 10000, its cluster bus
            d = os.path.join(self.dir, str(i))
            os.mkdir(d)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", os.path.join(d, "nodes.conf"), "--dir", d, "--save", "",
                 "--appendonly", "no", "--logfile", os.path.join(d, "log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.ports.append(port)
        for p in self.ports:
            wait_for(lambda p=p: redis.Redis(port=p).ping(), 10, "redis-server on %d" % p)
        subprocess.run(["redis-cli", "--cluster", "create"] + ["127.0.0.1:%d" % p for p in self.ports] +
                       ["--cluster-yes"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in self.ports:
            wait_for(lambda p=p: "cluster_state:ok" in raw_text(p, "CLUSTER", "INFO"), 20, "redis cluster ok")

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def scripts_cluster(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPOOLD=ARGS.spoold, SPOOL=ARGS.spool)
    return subprocess.run([os.path.join(ROOT, "scripts", "cluster"), *args], env=env, capture_output=True, text=True)


def spool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ARGS.spool, *args], capture_output=True, text=True, timeout=120)


class SpoolCluster:
    def __init__(self, nodes: int = 3, replicas: int = 0) -> None:
        self.dir = tempfile.mkdtemp(prefix="spool-cluster-suite-")
        r = scripts_cluster("start", str(nodes), "--dir", self.dir, "--replicas", str(replicas))
        assert r.returncode == 0, "scripts/cluster start %d: %s %s" % (nodes, r.stdout, r.stderr)
        with open(os.path.join(self.dir, "nodes")) as f:
            self.ports = [int(line.split()[1].rsplit(":", 1)[1]) for line in f if line.strip()]
        self.extra: List[subprocess.Popen] = []

    def owner(self, key: str) -> int:
        s = key_slot(key.encode())
        for e in redis.Redis(port=self.ports[0]).execute_command("CLUSTER SLOTS"):
            if e[0] <= s <= e[1]:
                return int(e[2][1])
        raise AssertionError("slot %d of %r has no owner" % (s, key))

    def names_on_every_node(self, prefix: str, per_node: int) -> Dict[str, int]:
        out: Dict[str, int] = {}
        count: Dict[int, int] = {}
        i = 0
        while len(out) < per_node * 3:
            name = "%s%d" % (prefix, i)
            p = self.owner(name)
            if count.get(p, 0) < per_node:
                count[p] = count.get(p, 0) + 1
                out[name] = p
            i += 1
        return out

    def kill_and_restart(self, i: int, between: Callable[[], None]) -> None:
        """SIGKILL node i (0-based), run between(), start it again as it was
        (same flags, data directory and port)."""
        nodes = open(os.path.join(self.dir, "nodes")).read().split("\n")
        idx, addr, pid = nodes[i].split()
        argv = open("/proc/%s/cmdline" % pid, "rb").read().rstrip(b"\0").split(b"\0")
        os.kill(int(pid), signal.SIGKILL)
        wait_for(lambda: not os.path.exists("/proc/%s" % pid) or "Z" in open("/proc/%s/stat" % pid).read().split()[2],
                 20, "node %d to die" % (i + 1))
        between()
        pf = os.path.join(self.dir, "node-%s.port" % idx)
        os.unlink(pf)
        p = subprocess.Popen([a.decode() for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 20, "node %d to start again" % (i + 1))
        nodes[i] = "%s %s %d" % (idx, addr, p.pid)
        open(os.path.join(self.dir, "nodes"), "w").write("\n".join(nodes))

    def stop(self) -> None:
        for p in self.extra:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        scripts_cluster("stop", self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- tests


def test_replies_match_redis(sp: SpoolCluster, rd: RedisClusterServers) -> None:
    """CLUSTER SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT, COMMAND GETKEYS and
    the routing errors: the same shapes (RESP2 and RESP3) as Redis's."""
    for proto in (2, 3):
        a, b = Raw(sp.ports[0], proto), Raw(rd.ports[0], proto)
        try:
            ours, theirs = a.cmd("CLUSTER", "SLOTS"), b.cmd("CLUSTER", "SLOTS")
            key = lambda e: e[1][0][1]  # noqa: E731 - sort by first slot
            assert [(e[1][0], e[1][1]) for e in sorted(ours[1], key=lambda e: int(key(e)))] == \
                [(e[1][0], e[1][1]) for e in sorted(theirs[1], key=lambda e: int(key(e)))], "the same slot ranges"
            assert shape(ours) == shape(theirs), "CLUSTER SLOTS RESP%d: %r vs %r" % (proto, ours, theirs)
            ours, theirs = a.cmd("CLUSTER", "SHARDS"), b.cmd("CLUSTER", "SHARDS")
            assert shape(ours)[0] == shape(theirs)[0] and len(ours[1]) == len(theirs[1])
            assert shape(ours[1][0]) == shape(theirs[1][0]), "CLUSTER SHARDS RESP%d: %r vs %r" % (
                proto, ours[1][0], theirs[1][0])
            for sub in (("CLUSTER", "MYID"), ("CLUSTER", "KEYSLOT", "user:{42}:x"), ("CLUSTER", "KEYSLOT"),
                        ("CLUSTER", "NOPE"), ("COMMAND", "GETKEYS", "GET", "k"), ("COMMAND", "GETKEYS", "PING"),
                        ("COMMAND", "GETKEYS", "NOSUCH", "x"), ("COMMAND", "GETKEYS", "GET"),
                        ("CLUSTER", "COUNTKEYSINSLOT", "99999"), ("ASKING",), ("READONLY",), ("READWRITE",)):
                ours, theirs = a.cmd(*sub), b.cmd(*sub)
                assert shape(ours) == shape(theirs), "%s RESP%d: %r vs %r" % (" ".join(sub), proto, ours, theirs)
            ours, theirs = a.cmd("CLUSTER", "INFO"), b.cmd("CLUSTER", "INFO")
            assert ours[0] == theirs[0], "CLUSTER INFO type"
            names = lambda t: [l.split(":")[0] for l in t.split("\r\n") if l]  # noqa: E731
            assert names(ours[1])[:9] == names(theirs[1])[:9], "%r vs %r" % (ours[1], theirs[1])
            assert set(names(ours[1])) <= set(names(theirs[1]))
            ours, theirs = a.cmd("CLUSTER", "NODES"), b.cmd("CLUSTER", "NODES")
            assert ours[0] == theirs[0]
            line = re.compile(r"^[0-9a-f]{40} 127\.0\.0\.1:\d+@\d+ (myself,)?master - 0 \d+ \d+ connected( \d+(-\d+)?)+$")
            for text in (ours[1], theirs[1]):
                lines = [l for l in text.split("\n") if l]
                assert len(lines) == 3 and all(line.match(l) for l in lines), text
            assert a.cmd("INFO", "cluster")[1].startswith("# Cluster\r\ncluster_enabled:1\r\n")
        finally:
            a.close()
            b.close()


def test_redirect_errors_match_redis(sp: SpoolCluster, rd: RedisClusterServers) -> None:
    """-MOVED and -CROSSSLOT: Redis's texts, the same slot numbers."""
    for key in ("foo", "bar", "{user1}:x", "queue:emails"):
        got = {}
        for name, ports in (("spool", sp.ports), ("redis", rd.ports)):
            errs = []
            for p in ports:
                t, v = Raw(p).cmd("GET", key)
                if t == "-":
                    errs.append(re.sub(r"127\.0\.0\.1:\d+", "ADDR", v))
            got[name] = sorted(errs)
        assert got["spool"] == got["redis"], "GET %s: %r" % (key, got)
    t, v = Raw(sp.ports[0]).cmd("MGET", "foo", "bar")
    assert (t, v) == Raw(rd.ports[0]).cmd("MGET", "foo", "bar") == ("-", "CROSSSLOT Keys in request don't hash to the same slot")


def test_redis_cli_cluster_check(sp: SpoolCluster) -> None:
    """redis-cli --cluster check reads CLUSTER NODES and finds nothing wrong."""
    r = subprocess.run(["redis-cli", "--cluster", "check", "127.0.0.1:%d" % sp.ports[0]], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for want in ("All nodes agree about slots configuration", "All 16384 slots covered"):
        assert want in r.stdout, r.stdout


def test_redis_cli_follows_moved(sp: SpoolCluster) -> None:
    for q, port in sp.names_on_every_node("cli-", 1).items():
        out = subprocess.run(["redis-cli", "-c", "-p", str(sp.ports[0]), "JOB.PUSH", q, '{"via":"redis-cli"}'],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert re.fullmatch(r"\{[0-9a-z]+\}[0-9a-f]{16}", out), out
        rec = subprocess.run(["redis-cli", "-c", "-p", str(sp.ports[1]), "JOB.GET", out],
                             capture_output=True, text=True, check=True).stdout
        assert "ready" in rec and q in rec, rec
        assert redis.Redis(port=port).execute_command("QUEUE.STATS", q)[1] == 1


def test_spool_cli_follows_moved(sp: SpoolCluster) -> None:
    """libspool (through the spool CLI) follows -MOVED to the node of the slot."""
    url = "spool://127.0.0.1:%d" % sp.ports[0]
    for q, port in sp.names_on_every_node("sdk-c-", 1).items():
        r = spool("--url", url, "push", q, '{"via":"libspool"}')
        assert r.returncode == 0, r.stderr
        jid = r.stdout.strip().split()[-1]
        assert key_slot(jid.encode()) == key_slot(q.encode()), jid
        r = spool("--url", url, "show", jid)
        assert r.returncode == 0 and "ready" in r.stdout, r.stdout + r.stderr
        rec = redis.Redis(port=port, decode_responses=True).execute_command("JOB.GET", jid)
        assert rec[rec.index("queue") + 1] == q


def test_redis_py_cluster_push_reserve_ack(sp: SpoolCluster) -> None:
    rc = RedisCluster(host="127.0.0.1", port=sp.ports[2], decode_responses=True)
    try:
        for q in sp.names_on_every_node("rp-", 2):
            jid = rc.execute_command("JOB.PUSH", q, "{}")
            job = rc.execute_command("JOB.RESERVE", "TIMEOUT", 1000, "FROM", q)[0]
            assert job[1] == jid
            assert rc.execute_command("JOB.ACK", job[3]) == 1
            assert rc.execute_command("JOB.GET", jid)[5] == "done"
    finally:
        rc.close()


def slot_owner_everywhere(sp: SpoolCluster, slot: int) -> List[int]:
    out = []
    for p in sp.ports:
        for e in redis.Redis(port=p).execute_command("CLUSTER SLOTS"):
            if e[0] <= slot <= e[1]:
                out.append(int(e[2][1]))
    return out


def name_in(prefix: str, lo: int, hi: int, avoid: Tuple[int, ...] = ()) -> str:
    return next(n for n in ("%s%d" % (prefix, i) for i in range(1000000))
                if lo <= key_slot(n.encode()) <= hi and key_slot(n.encode()) not in avoid)


def as_map(flat: List[Any]) -> Dict[str, Any]:
    return dict(zip(flat[0::2], flat[1::2]))


def count_in_slot(port: int, slot: int) -> int:
    return int(redis.Redis(port=port).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))


class SlotFixture:
    """A queue with jobs in every state, settings, a schedule, a unique key
    and keys of each type with an expiry, all in one slot of range lo..hi."""

    def __init__(self, port: int, lo: int, hi: int, tag: str) -> None:
        a = redis.Redis(port=port, decode_responses=True)
        self.q = name_in("%s-q" % tag, lo, hi)
        self.slot = key_slot(self.q.encode())
        q = self.q
        a.execute_command("QUEUE.CONFIG", q, "SET", "retries", "3", "retention", "3600000")
        self.delayed = a.execute_command("JOB.PUSH", q, '{"s":"delayed"}', "DELAY", 3600000)
        self.dead = a.execute_command("JOB.PUSH", q, '{"s":"dead"}', "PRI", 9)
        r = a.execute_command("JOB.RESERVE", "NOWAIT", "FROM", q)[0]
        assert r[1] == self.dead
        assert a.execute_command("JOB.NACK", r[3], "ERROR", "bad address", "DEAD") == "dead"
        self.done = a.execute_command("JOB.PUSH", q, '{"s":"done"}', "PRI", 8)
        r = a.execute_command("JOB.RESERVE", "NOWAIT", "FROM", q)[0]
        assert a.execute_command("JOB.ACK", r[3], "RESULT", '{"ok":true}') == 1
        self.reserved = a.execute_command("JOB.PUSH", q, '{"s":"reserved"}', "PRI", 7)
        r = a.execute_command("JOB.RESERVE", "NOWAIT", "LEASE", 600000, "FROM", q)[0]
        assert a.execute_command("JOB.PROGRESS", r[3], "40") == "OK"
        self.receipt = r[3]
        self.ready = [a.execute_command("JOB.PUSH", q, '{"s":"ready","n":%d}' % i) for i in range(5)]
        self.unique = a.execute_command("JOB.PUSH", q, '{"s":"unique"}', "UNIQUE", "u-1")
        self.sched = "%s-sched" % tag
        a.execute_command("SCHED.SET", self.sched, q, "@every 1h", '{"s":"tick"}')
        self.sched_before = as_map(a.execute_command("SCHED.GET", self.sched))
        self.jobs_before = {j: as_map(a.execute_command("JOB.GET", j)) for j in self.all_ids()}
        t = "{%s}" % q  # keys in the queue's slot
        a.set(t + "str", "v", px=3600000)
        a.hset(t + "hash", mapping={"f1": "1", "f2": "2"})
        a.zadd(t + "zset", {"m1": 1.5, "m2": -2})
        a.pexpire(t + "zset", 3600000)
        self.keys = [t + "str", t + "hash", t + "zset"]

    def all_ids(self) -> List[str]:
        return [self.delayed, self.dead, self.done, self.reserved, self.unique] + self.ready

    def check_on(self, rc: RedisCluster, port: int) -> None:
        """Everything is on port's node, as it was."""
        owner = redis.Redis(port=port, decode_responses=True)
        for j, was in self.jobs_before.items():
            now = as_map(owner.execute_command("JOB.GET", j))
            for f in ("state", "queue", "payload", "priority", "attempt", "retries", "lease_ms", "run_at",
                      "lease_until", "created_at", "last_error", "unique", "result", "progress", "expires_at"):
                assert now[f] == was[f], "job %s: %s was %r, is %r after the move" % (j, f, was[f], now[f])
        assert owner.execute_command("QUEUE.CONFIG", self.q, "GET", "retries") in ("3", ["retries", "3"]), \
            owner.execute_command("QUEUE.CONFIG", self.q, "GET", "retries")
        sc = as_map(owner.execute_command("SCHED.GET", self.sched))
        for f in ("queue", "spec", "payload", "next_at", "created_at", "runs"):
            assert sc[f] == self.sched_before[f], "schedule %s: %s" % (f, sc)
        assert owner.get(self.keys[0]) == "v" and 0 < owner.pttl(self.keys[0]) <= 3600000
        assert owner.hgetall(self.keys[1]) == {"f1": "1", "f2": "2"}
        assert owner.zrange(self.keys[2], 0, -1, withscores=True) == [("m2", -2.0), ("m1", 1.5)]
        assert 0 < owner.pttl(self.keys[2]) <= 3600000
        # the unique key still deduplicates; the receipt taken before acks
        assert rc.execute_command("JOB.PUSH", self.q, '{"s":"unique"}', "UNIQUE", "u-1") == self.unique
        assert rc.execute_command("JOB.ACK", self.receipt) == 1, "a receipt taken before the move acks after it"
        got = rc.execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 100, "FROM", self.q)
        assert sorted(j[1] for j in got) == sorted(self.ready + [self.unique]), got
        for j in got:
            assert rc.execute_command("JOB.ACK", j[3]) == 1


def test_move_slots_with_data(sp: SpoolCluster) -> None:
    """A slot with a queue (jobs in every state, settings, a schedule, a
    unique key) and keys with expiries moves with everything; a worker
    blocked in JOB.RESERVE on the source is answered, not left hanging."""
    g1, g2 = sp.ports[0], sp.ports[1]
    fx = SlotFixture(g1, 100, 199, "mv")
    other = name_in("mv-other-", 100, 199, (fx.slot,))
    redis.Redis(port=g1).set(other, "elsewhere")
    blocked_q = name_in("mv-blocked-", 100, 199)
    blocked = Raw(g1)
    blocked.s.sendall(b"*5\r\n$11\r\nJOB.RESERVE\r\n$7\r\nTIMEOUT\r\n$6\r\n600000\r\n$4\r\nFROM\r\n$%d\r\n%s\r\n"
                      % (len(blocked_q), blocked_q.encode()))
    wait_for(lambda: redis.Redis(port=g1).execute_command("QUEUE.WORKERS", blocked_q), 10, "the reserver blocked")
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % g1, "--from", "g1", "--to", "g2", "--range", "100-199")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "moved 100 of 100 slot(s)" in r.stdout, r.stdout
    blocked.s.settimeout(10)
    t, err = blocked.read()
    assert t == "-" and err.startswith("TRYAGAIN"), (t, err)
    blocked.close()
    assert slot_owner_everywhere(sp, fx.slot) == [g2] * 3
    assert count_in_slot(g1, fx.slot) == 0, "nothing of the slot stays on the source"
    assert count_in_slot(g2, fx.slot) >= 4
    rc = RedisCluster(host="127.0.0.1", port=g1, decode_responses=True)
    try:
        assert rc.get(other) == "elsewhere"
        fx.check_on(rc, g2)
    finally:
        rc.close()
    assert redis.Redis(port=g1).execute_command("SCHED.GET", fx.sched) is None, "the source has no schedule left"
    r = spool("cluster", "info", "127.0.0.1:%d" % g2)
    assert r.returncode == 0 and "all 3 node(s) agree" in r.stdout, r.stdout + r.stderr
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % g1, "--from", "g1", "--to", "g1", "--count", "1")
    assert r.returncode == 2 and "--from and --to must name two groups" in r.stderr, r.stderr
    # SLOTMOVE is for a move in progress only, and admin-only
    try:
        redis.Redis(port=g2).execute_command("SLOTMOVE", "EXPORT", fx.slot)
        raise AssertionError("EXPORT of a slot not being moved was accepted")
    except redis.ResponseError as e:
        assert "is not being moved away" in str(e), str(e)


def test_move_carries_limits_and_totals(sp: SpoolCluster) -> None:
    """A queue's rate limit and concurrency settings, its QUEUE.STATS totals
    and its rate limiter's state move with its slot: the target neither
    counts from zero nor lets a burst through the limit the source held."""
    g1, g2 = sp.ports[0], sp.ports[1]
    a = redis.Redis(port=g1, decode_responses=True)
    q = name_in("lim-q", 200, 299)
    q2 = name_in("lim-c", 200, 299)
    a.execute_command("QUEUE.CONFIG", q, "SET", "rate", "1/1h", "concurrency", "5")
    a.execute_command("QUEUE.CONFIG", q2, "SET", "concurrency", "1")
    for i in range(6):
        a.execute_command("JOB.PUSH", q, '{"i":%d}' % i)
        a.execute_command("JOB.PUSH", q2, '{"i":%d}' % i)
    got = a.execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 10, "FROM", q)
    assert len(got) == 1, "the rate limit (1/1h) lets one through: %r" % (got,)
    for j in got:
        assert a.execute_command("JOB.ACK", j[3]) == 1
    held = a.execute_command("JOB.RESERVE", "NOWAIT", "LEASE", 600000, "COUNT", 10, "FROM", q2)
    assert len(held) == 1, held
    before = as_map(a.execute_command("QUEUE.STATS", q))
    assert before["pushed"] == 6 and before["acked"] == 1, before
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % g1, "--from", "g1", "--to", "g2", "--range", "200-299")
    assert r.returncode == 0, r.stdout + r.stderr
    b = redis.Redis(port=g2, decode_responses=True)
    after = as_map(b.execute_command("QUEUE.STATS", q))
    for f in ("pushed", "acked", "retried", "lease_expired", "buried", "popped", "expired_total", "ready",
              "rate_limit", "rate_period_ms", "concurrency_limit"):
        assert after[f] == before[f], "QUEUE.STATS %s: %s was %r on the source, is %r on the target" % (
            q, f, before[f], after[f])
    assert after["rate_limit"] == 1 and after["concurrency_limit"] == 5, after
    assert not b.execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 10, "FROM", q), \
        "the target let deliveries through the rate limit its source had used up"
    assert not b.execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 10, "FROM", q2), \
        "the target let a second job of a concurrency-1 queue through while one is reserved"
    assert as_map(b.execute_command("QUEUE.STATS", q2))["concurrency_limit"] == 1
    assert b.execute_command("JOB.ACK", held[0][3]) == 1, "the receipt taken on the source acks on the target"
    assert len(b.execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 10, "FROM", q2)) == 1
    assert as_map(b.execute_command("QUEUE.STATS", q2))["acked"] == 1


class Workload:
    """Clients push, reserve and ack through RedisCluster while a move runs;
    keeps what was acknowledged."""

    def __init__(self, port: int, names: List[str], keys: List[str]) -> None:
        self.port, self.names, self.keys = port, names, keys
        self.stop = threading.Event()
        self.pushed: List[str] = []
        self.acked: Dict[str, int] = {}   # job id -> times acked
        self.delivered_after_ack: List[str] = []
        self.unknown: set = set()         # delivered, and the ack's reply never came
        self.errors: List[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.push), threading.Thread(target=self.work)]

    def start(self) -> "Workload":
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.port, decode_responses=True)

    def push(self) -> None:
        rc = self.client()
        i = 0
        while not self.stop.is_set() and i < 20000:
            q = self.names[i % len(self.names)]
            i += 1
            try:
                jid = rc.execute_command("JOB.PUSH", q, '{"i":%d}' % i)
                with self.lock:
                    self.pushed.append(jid)
            except Exception as e:  # noqa: BLE001 - not acknowledged: it must not matter
                self.errors.append("push: %r" % e)
                if not isinstance(e, redis.RedisError):  # redis-py's own trouble: a new client
                    rc = self.client()
        rc.close()

    def take(self, rc: RedisCluster, q: str) -> int:
        got = rc.execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 20, "LEASE", 1000, "FROM", q)
        for job in got or []:
            with self.lock:
                if job[1] in self.acked:
                    self.delivered_after_ack.append(job[1])
                self.unknown.add(job[1])  # until its ack is answered
            if rc.execute_command("JOB.ACK", job[3]) == 1:
                with self.lock:
                    self.acked[job[1]] = self.acked.get(job[1], 0) + 1
            with self.lock:
                self.unknown.discard(job[1])
        return len(got or [])

    def work(self) -> None:
        rc = self.client()
        i = 0
        while not self.stop.is_set():
            try:
                self.take(rc, self.names[i % len(self.names)])
            except Exception as e:  # noqa: BLE001 - counted; an ack in flight is "outcome unknown"
                self.errors.append("work: %r" % e)
                if not isinstance(e, redis.RedisError):
                    rc = self.client()
            i += 1
        rc.close()

    def missing(self, rc: RedisCluster) -> List[str]:
        """Pushed, not acked yet: each must still exist; a delayed one (its
        ack failed during the move and its 1 s lease ran out) is retried."""
        out = [j for j in self.pushed if j not in self.acked]
        for j in out:
            rec = rc.execute_command("JOB.GET", j)
            assert rec, "acknowledged push %s is gone" % j
            state = as_map(rec)["state"]
            if state == "done" and j in self.unknown:  # delivered; its ack went through, its reply was lost
                self.acked[j] = 1
                continue
            assert state in ("ready", "reserved", "delayed"), "job %s is %s, never acked (%s; client errors: %s)" % (
                j, state, rec, sorted(set(e[:100] for e in self.errors))[:8])
            if state == "delayed":
                rc.execute_command("JOB.RETRY", j)
        return out

    def drain_and_check(self) -> str:
        rc = RedisCluster(host="127.0.0.1", port=self.port, decode_responses=True)
        late = len([j for j in self.pushed if j not in self.acked])
        try:
            wait_for(lambda: not self.missing(rc) or any([self.take(rc, q) for q in self.names]) and False, 60,
                     "every acknowledged push delivered and acked")
            for k in self.keys:
                assert rc.get(k) == k, "key %s lost" % k
        finally:
            rc.close()
        assert len(set(self.pushed)) == len(self.pushed), "no id twice"
        missing = [j for j in self.pushed if j not in self.acked]
        assert not missing, "%d acknowledged pushes never delivered, e.g. %s" % (len(missing), missing[:3])
        assert not self.delivered_after_ack, "acked jobs delivered again: %s" % self.delivered_after_ack[:3]
        assert all(n == 1 for n in self.acked.values()), "a job acked twice"
        return "%d jobs pushed and acked (%d after the load stopped), %d client errors (%s)" % (
            len(self.pushed), late, len(self.errors), "; ".join(sorted(set(e[:60] for e in self.errors))[:3]))


def names_in_slots(prefix: str, slots: List[int], per: int) -> List[str]:
    want = {s: per for s in slots}
    out = []
    i = 0
    while any(want.values()):
        n = "%s%d" % (prefix, i)
        s = key_slot(n.encode())
        if want.get(s):
            want[s] -= 1
            out.append(n)
        i += 1
    return out


def owned_slots(port: int, group_port: int) -> List[int]:
    out = []
    for e in redis.Redis(port=port).execute_command("CLUSTER SLOTS"):
        if int(e[2][1]) == group_port:
            out.extend(range(e[0], e[1] + 1))
    return out


def test_moving_1000_slots_under_load_loses_nothing(sp: SpoolCluster) -> None:
    """1,000 slots of g3 holding queues and keys move to g1 while clients
    push, reserve and ack through RedisCluster: every acknowledged push is
    delivered, no acked job is delivered again, no key is lost."""
    g1, g3 = sp.ports[0], sp.ports[2]
    first = owned_slots(g1, g3)[:1000]
    names = names_in_slots("load-", first[::4], 1)        # 250 queues in the slots that move
    names += ["stay-%d" % i for i in range(30)]           # and some anywhere
    keys = names_in_slots("key-", first[1::4], 1)
    rc = RedisCluster(host="127.0.0.1", port=g1, decode_responses=True)
    for k in keys:
        rc.set(k, k)
    for q in names[:250]:
        rc.execute_command("JOB.PUSH", q, '{"before":1}')
    rc.close()
    w = Workload(g1, names, keys).start()
    wait_for(lambda: len(w.acked) > 100, 30, "pushes and acks under way")
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % g3, "--from", "g3", "--to", "g1", "--count", "1000")
    w.finish()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "moved 1000 of 1000 slot(s)" in r.stdout, r.stdout
    assert all(count_in_slot(g3, s) == 0 for s in first[::50]), "the source kept data of moved slots"
    print("   " + w.drain_and_check())
    print("   " + r.stdout.strip().replace("\n", "\n   "))


def map_of(port: int) -> Dict[str, Any]:
    import json
    return json.loads(redis.Redis(port=port).execute_command("CLUSTER", "GETMAP"))


def loaded_slots(seed: int, owner: int, n: int, prefix: str) -> Tuple[List[int], Workload]:
    """The first n slots of the node at owner, a third of them holding a
    queue with a job and a third a key, and a workload running on them."""
    slots = owned_slots(seed, owner)[:n]
    names = names_in_slots(prefix + "-", slots[::3], 1)
    keys = names_in_slots(prefix + "key-", slots[1::3], 1)
    rc = RedisCluster(host="127.0.0.1", port=seed, decode_responses=True)
    for k in keys:
        rc.set(k, k)
    for q in names:
        rc.execute_command("JOB.PUSH", q, '{"before":1}')
    rc.close()
    w = Workload(seed, names, keys).start()
    wait_for(lambda: len(w.acked) > 50, 30, "pushes and acks under way")
    return slots, w


def test_interrupted_move_finishes_when_run_again(sp: SpoolCluster) -> None:
    """The mover dies right after an export (data parked on the source),
    after an import, after the -ASK step and after a drop; a node is killed
    with SIGKILL in the middle of a move. Each time running the same
    move-slots again finishes it, and the workload loses nothing."""
    g1, g2 = sp.ports[0], sp.ports[1]
    slots, w = loaded_slots(g1, g2, 120, "cut")
    args = ["cluster", "move-slots", "127.0.0.1:%d" % g1, "--from", "g2", "--to", "g1", "--batch", "10"]
    for cut, rng in (("export:3", slots[0:30]), ("import:14", slots[30:60]), ("moving:2", slots[60:90]),
                     ("drop:5", slots[90:120])):
        env = dict(os.environ, SPOOL_MOVE_DIE_AT=cut)
        rr = "%d-%d" % (rng[0], rng[-1])
        r = subprocess.run([ARGS.spool, *args, "--range", rr], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 9, "cut at %s: %s %s" % (cut, r.stdout, r.stderr)
        assert map_of(g1)["moves"], "a move cut at %s leaves the map half-done" % cut
        assert spool("cluster", "info", "127.0.0.1:%d" % g1).returncode == 1
        r = spool(*args, "--range", rr)
        assert r.returncode == 0, "run again after %s: %s %s" % (cut, r.stdout, r.stderr)
        assert "finishing" in r.stderr, r.stderr
        assert not map_of(g1)["moves"] and all(s in owned_slots(g2, g1) for s in rng)
    w.finish()
    print("   " + w.drain_and_check())


def test_move_survives_a_node_killed(sp: SpoolCluster) -> None:
    """The source node is killed with SIGKILL while its slots are frozen
    and parked; started again, the same move-slots finishes the move and
    the workload loses nothing."""
    g1, g2 = sp.ports[0], sp.ports[1]
    slots, w = loaded_slots(g1, g2, 100, "kill")
    args = [ARGS.spool, "cluster", "move-slots", "127.0.0.1:%d" % g1, "--from", "g2", "--to", "g1", "--batch", "5",
            "--range", "%d-%d" % (slots[0], slots[-1])]
    mover = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(m["state"] == "frozen" for m in map_of(g1)["moves"]), 30, "a batch frozen")

    def mover_fails() -> None:
        out, err = mover.communicate(timeout=60)
        assert mover.returncode != 0, "the mover cannot finish with the source down: %s %s" % (out, err)
    sp.kill_and_restart(1, mover_fails)
    r = spool(*args[1:])
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(s in owned_slots(g1, g1) for s in slots) and not map_of(g1)["moves"]
    assert all(count_in_slot(g2, s) == 0 for s in slots), "the source kept data of a moved slot"
    w.finish()
    print("   " + w.drain_and_check())


def leader_of(ports: List[int]) -> int:
    for p in ports:
        try:
            if "myself,master" in raw_text(p, "CLUSTER", "NODES"):
                return p
        except OSError:
            pass
    return 0


def settled_leader(ports: List[int], lo: int, hi: int) -> Callable[[], int]:
    """A condition for wait_for: the leader of a young group once it took a
    write and still takes them a second later (a young group on a busy
    machine may elect twice)."""
    key, since = name_in("settle", lo, hi), {}

    def cond() -> int:
        lead = leader_of(ports)
        if not lead or redis.Redis(port=lead).set(key, "1") is not True:
            since.clear()
            return 0
        if lead not in since:  # a new leader: its second starts now
            since.clear()
            since[lead] = time.monotonic()
        return lead if time.monotonic() - since[lead] >= 1.0 else 0
    return cond


def test_move_between_replicated_groups(sp: SpoolCluster) -> None:
    """Two groups of three (Raft): slots with data move from g1 to g2 (the
    move addresses each group's Raft leader); then g2's leader is killed
    and its new leader has everything: the import was a replicated write."""
    rp = SpoolCluster(6, 2)
    try:
        g1, g2 = rp.ports[:3], rp.ports[3:]
        l1 = wait_for(settled_leader(g1, 0, 99), 60, "g1's leader, the same for a second")
        l2 = wait_for(lambda: leader_of(g2), 30, "g2's leader")
        fx = SlotFixture(l1, 0, 99, "rep")
        runs: List[subprocess.CompletedProcess] = []

        def move() -> bool:
            # a leader that changes under the move (a young group on a busy
            # machine) makes it stop; as documented, it is run again
            runs.append(spool("cluster", "move-slots", "127.0.0.1:%d" % g1[1], "--from", "g1", "--to", "g2",
                              "--range", "0-99"))
            assert runs[-1].returncode == 0 or "READONLY" in runs[-1].stderr or "CLUSTERDOWN" in runs[-1].stderr, \
                runs[-1].stdout + runs[-1].stderr
            return runs[-1].returncode == 0
        wait_for(move, 60, "the move to finish")
        l2 = wait_for(lambda: leader_of(g2), 30, "g2's leader")
        assert "to 127.0.0.1:%d" % l2 in runs[-1].stdout or len(runs) > 1, runs[-1].stdout
        victim = rp.ports.index(l2)
        new: List[int] = []

        def elect() -> None:
            new.append(wait_for(lambda: leader_of([p for p in g2 if p != l2]), 30, "a new leader of g2"))
        rp.kill_and_restart(victim, elect)
        rc = RedisCluster(host="127.0.0.1", port=g1[0], decode_responses=True)
        try:
            wait_for(lambda: rc.execute_command("JOB.GET", fx.delayed), 30, "the moved jobs on g2's new leader")
            checked: List[int] = []

            def check_on_leader() -> bool:
                # leadership may move again (the restarted node can win the
                # next election): check on whoever leads g2 when asked
                cur = leader_of(g2)
                if not cur:
                    return False
                try:
                    fx.check_on(rc, cur)
                except redis.exceptions.ConnectionError:
                    return False
                except redis.exceptions.ResponseError as e:
                    if "MOVED" in str(e) or "CLUSTERDOWN" in str(e):
                        return False
                    raise
                checked.append(cur)
                return True
            wait_for(check_on_leader, 30, "every moved job and key on g2's leader")
        finally:
            rc.close()
        print("   moved 100 slots to g2, killed its leader %d; new leader %d (checked on %d) has them"
              % (l2, new[0], checked[-1]))
    finally:
        rp.stop()


def test_add_group_then_give_it_slots(sp: SpoolCluster) -> None:
    d = os.path.join(sp.dir, "node-4")
    pf = os.path.join(sp.dir, "node-4.port")
    p = subprocess.Popen([ARGS.spoold, "--cluster", "yes", "--port", "0", "--port-file", pf, "--http-port", "0",
                          "--data-dir", d, "--shards", "2", "--logfile", os.path.join(sp.dir, "node-4.log")])
    sp.extra.append(p)
    port = int(wait_for(lambda: open(pf).read().strip() if os.path.exists(pf) else None, 20, "node 4"))
    r = spool("cluster", "add-group", "127.0.0.1:%d" % sp.ports[0], "127.0.0.1:%d" % port)
    assert r.returncode == 0 and "group g4 added" in r.stdout, r.stdout + r.stderr
    r = spool("cluster", "add-group", "127.0.0.1:%d" % sp.ports[0], "127.0.0.1:%d" % port)
    assert r.returncode == 1 and "already belongs to a cluster" in r.stderr, r.stderr
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % sp.ports[0], "--from", "g2", "--to", "g4", "--range",
              "6000-6009")
    assert r.returncode == 0, r.stdout + r.stderr
    nodes = raw_text(port, "CLUSTER", "NODES")
    assert len([l for l in nodes.split("\n") if l]) == 4 and "myself,master" in nodes, nodes
    assert " 6000-6009" in nodes
    r = scripts_cluster("status", sp.dir)
    assert r.returncode == 0 and "running" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------- the map kept by g1


def extra_node(sp: SpoolCluster, name: str) -> int:
    """Starts one more spoold --cluster yes (not in the map yet) beside sp's
    nodes; returns its port. Stopped with sp."""
    d, pf = os.path.join(sp.dir, name), os.path.join(sp.dir, name + ".port")
    # a port by number, not 0: a node started again from its command line
    # (test_map_survives_g1_leader_killed_...) keeps its address in the map
    p = subprocess.Popen([ARGS.spoold, "--cluster", "yes", "--port", str(free_port()), "--port-file", pf,
                          "--http-port", "0",
                          "--data-dir", d, "--shards", "2", "--logfile", os.path.join(sp.dir, name + ".log")])
    sp.extra.append(p)
    return int(wait_for(lambda: open(pf).read().strip() if os.path.exists(pf) else None, 20, name))


def test_two_map_changes_at_once_one_wins(sp: SpoolCluster) -> None:
    """Two spool cluster move-slots made from the same map epoch (both read
    the map, then commit a second later): exactly one wins, the other
    changes nothing and says to run it again; every node converges on the
    winner's map; run again, the loser succeeds from the new map."""
    g1, g2, g3 = sp.ports
    base = map_of(g1)["epoch"]
    a = owned_slots(g1, g1)[-10:]
    b = owned_slots(g1, g3)[:10]
    env = dict(os.environ, SPOOL_MAP_COMMIT_DELAY_MS="1000")
    cmds = [[ARGS.spool, "cluster", "move-slots", "127.0.0.1:%d" % g2, "--from", frm, "--to", "g2", "--range",
             "%d-%d" % (rng[0], rng[-1])] for frm, rng in (("g1", a), ("g3", b))]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=120) for p in procs]
    rcs = [p.returncode for p in procs]
    assert sorted(rcs) == [0, 1], "exactly one wins: %r %r" % (rcs, outs)
    win, lose = rcs.index(0), rcs.index(1)
    err = outs[lose][1]
    assert "another change of the slot map came first, so this one changed nothing" in err and \
        "run the command again" in err, err
    winner_slots, loser_slots = (a, b) if win == 0 else (b, a)
    final = map_of(g1)["epoch"]
    assert final == base + 3, "the winner's three steps (frozen, moving, moved), no more: %d -> %d" % (base, final)
    assert wait_map(sp.ports, final, 10), "every node on map epoch %d: %s" % (final, map_epochs(sp.ports))
    for p in sp.ports:
        owned = owned_slots(p, g2)
        assert all(s in owned for s in winner_slots) and not any(s in owned for s in loser_slots), p
        assert not map_of(p)["moves"], "the loser left nothing half-done"
    r = spool(*cmds[lose][1:])
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: all(s in owned_slots(g3, g2) for s in loser_slots), 10, "the loser's slots moved on a re-run")
    print("   %s won; the other: %s" % (["g1->g2", "g3->g2"][win], err.strip().splitlines()[-1][:160]))


def test_casmap_at_once_on_a_replicated_g1(sp: SpoolCluster) -> None:
    """g1 a Raft group of three: two CLUSTER CASMAP made from one epoch sent
    to its leader at the same moment: one is committed, the other refused
    as a conflict; followers install the winner from the log; a follower
    refuses CASMAP and SETMAP (it takes maps from the log only)."""
    rp = SpoolCluster(3, 2)
    try:
        lead = wait_for(lambda: leader_of(rp.ports), 30, "g1's leader")
        m = map_of(lead)
        results: List[Any] = [None, None]
        maps = []
        for i in range(2):
            n = dict(m, epoch=m["epoch"] + 1)
            n["groups"] = [dict(m["groups"][0], name="g1" if i == 0 else "one")]
            maps.append(n)
        gate = threading.Barrier(2)

        def cas(i: int) -> None:
            import json
            r = redis.Redis(port=lead)
            gate.wait()
            try:
                results[i] = r.execute_command("CLUSTER", "CASMAP", str(m["epoch"]), json.dumps(maps[i]))
            except redis.ResponseError as e:
                results[i] = str(e)
        ts = [threading.Thread(target=cas, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        wins = [i for i in range(2) if results[i] == 1]
        assert len(wins) == 1 and "map conflict" in str(results[1 - wins[0]]), results
        assert wait_map(rp.ports, m["epoch"] + 1, 10), "every member on the winner's epoch: %s" % map_epochs(rp.ports)
        for p in rp.ports:
            assert map_of(p)["groups"][0]["name"] == maps[wins[0]]["groups"][0]["name"], p
        import json
        follower = [p for p in rp.ports if p != lead][0]
        nxt = dict(maps[wins[0]], epoch=m["epoch"] + 2)
        for args in (("CASMAP", str(m["epoch"] + 1), json.dumps(nxt)), ("SETMAP", json.dumps(nxt))):
            t, v = Raw(follower).cmd("CLUSTER", *args)
            assert t == "-" and ("READONLY" in v or "takes maps from its Raft log" in v), (args[0], v)
        print("   results %r" % results)
    finally:
        rp.stop()


def test_map_survives_g1_leader_killed_and_a_node_down_catches_up(sp: SpoolCluster) -> None:
    """g1 a Raft group of three and g2 a node of its own. g2's node is down
    while a group is added: the change goes through, and g2's node takes
    the map from g1 once it is back. Then slots move g1 -> g2 and g1's
    leader is killed with SIGKILL right after: the change survives (the
    new leader and every node have it), and the next change goes through
    the new leader from that epoch."""
    rp = SpoolCluster(3, 2)
    try:
        lead = wait_for(settled_leader(rp.ports, 0, 99), 60, "g1's leader, the same for a second")
        n4, n5 = extra_node(rp, "node-4"), extra_node(rp, "node-5")
        r = spool("cluster", "add-group", "127.0.0.1:%d" % lead, "127.0.0.1:%d" % n4)
        assert r.returncode == 0, r.stdout + r.stderr
        rp.ports.append(n4)
        # node 4 down during a change
        p4 = rp.extra[0]
        argv4 = open("/proc/%d/cmdline" % p4.pid, "rb").read().rstrip(b"\0").split(b"\0")
        p4.kill()
        p4.wait(10)
        r = spool("cluster", "add-group", "127.0.0.1:%d" % lead, "127.0.0.1:%d" % n5)
        assert r.returncode == 0 and "takes map epoch" in r.stderr, r.stdout + r.stderr
        epoch = map_of(lead)["epoch"]
        os.unlink(os.path.join(rp.dir, "node-4.port"))
        rp.extra[0] = subprocess.Popen([a.decode() for a in argv4], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        assert wait_map([n4], epoch, 20), "node 4, back, on map epoch %d: %s" % (epoch, map_epochs([n4]))
        assert "took map epoch %d" % epoch in open(os.path.join(rp.dir, "node-4.log")).read()
        # g1's leader killed right after a change
        lead = wait_for(settled_leader(rp.ports[:3], 0, 99), 60, "g1's leader, the same for a second")
        r = spool("cluster", "move-slots", "127.0.0.1:%d" % n4, "--from", "g1", "--to", "g2", "--range", "0-9")
        assert r.returncode == 0, r.stdout + r.stderr
        moved = map_of(lead)["epoch"]
        new: List[int] = []

        def raft_leader() -> int:  # CLUSTER NODES names the map's leader during an election: ask the role
            for p in rp.ports[:3]:
                if p != lead and redis.Redis(port=p).info("replication").get("replica_role") == "leader":
                    return p
            return 0

        def elect() -> None:
            new.append(wait_for(raft_leader, 30, "a new g1 leader"))
            assert map_of(new[0])["epoch"] == moved, "the new leader has the change"
        rp.kill_and_restart(rp.ports.index(lead), elect)
        every = rp.ports + [n5]
        assert wait_map(every, moved, 20), "every node, the killed one too, on epoch %d: %s" % (moved,
                                                                                                map_epochs(every))
        assert all(s in owned_slots(n5, n4) for s in range(10))
        wait_for(settled_leader(rp.ports[:3], 100, 199), 60, "g1's leader, the same for a second")

        def back() -> bool:
            # the restarted node may win one more election under the move,
            # which then stops (as documented) and is run again
            r = spool("cluster", "move-slots", "127.0.0.1:%d" % n5, "--from", "g2", "--to", "g1", "--range", "0-9")
            assert r.returncode == 0 or "READONLY" in r.stderr or "CLUSTERDOWN" in r.stderr, r.stdout + r.stderr
            return r.returncode == 0
        wait_for(back, 60, "the next change, through g1's new leader")
        last = map_of(leader_of(rp.ports[:3]))["epoch"]
        assert last >= moved + 3, (moved, last)
        assert wait_map(every, last, 20), "every node on epoch %d: %s" % (last, map_epochs(every))
        print("   node 4 caught up to epoch %d; leader %d killed after epoch %d, new leader %d; then epoch %d"
              % (epoch, lead, moved, new[0], last))
    finally:
        rp.stop()


TESTS = [test_replies_match_redis, test_redirect_errors_match_redis, test_redis_cli_cluster_check,
         test_redis_cli_follows_moved,
         test_spool_cli_follows_moved, test_redis_py_cluster_push_reserve_ack,
         test_move_slots_with_data, test_move_carries_limits_and_totals,
         test_moving_1000_slots_under_load_loses_nothing,
         test_interrupted_move_finishes_when_run_again, test_move_survives_a_node_killed,
         test_move_between_replicated_groups,
         test_add_group_then_give_it_slots, test_two_map_changes_at_once_one_wins,
         test_casmap_at_once_on_a_replicated_g1, test_map_survives_g1_leader_killed_and_a_node_down_catches_up]


def main() -> int:
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--spoold", required=True)
    ap.add_argument("--spool", required=True)
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    ARGS = ap.parse_args()
    logging.getLogger("redis.cluster").setLevel(logging.CRITICAL)  # it logs every -ASK / -TRYAGAIN it follows
    passed = failed = 0
    sp = rd = None
    try:
        sp, rd = SpoolCluster(), RedisClusterServers()
        for t in TESTS:
            if ARGS.k not in t.__name__:
                continue
            args = (sp, rd) if t.__code__.co_argcount == 2 else (sp,)
            try:
                t(*args)
                print("ok %s" % t.__name__)
                passed += 1
            except Exception:  # noqa: BLE001 - every failure is reported and counted
                print("FAIL %s:\n%s" % (t.__name__, traceback.format_exc()))
                failed += 1
    except Exception:  # noqa: BLE001
        print("FAIL setting up the clusters:\n%s" % traceback.format_exc())
        failed += 1
    finally:
        for x in (sp, rd):
            if x:
                x.stop()
    print("cluster: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
