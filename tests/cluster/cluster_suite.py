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


def free_port(also_bus: bool = False) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        if not also_bus:
            return port
        try:
            with socket.socket() as b:
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


class RedisClusterServers:
    """Three redis-server nodes in cluster mode, made a cluster by
    redis-cli --cluster create."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="spool-redis-cluster-")
        self.procs: List[subprocess.Popen] = []
        self.ports: List[int] = []
        for i in range(3):
            port = free_port(also_bus=True)
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
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="spool-cluster-suite-")
        r = scripts_cluster("start", "3", "--dir", self.dir)
        assert r.returncode == 0, "scripts/cluster start 3: %s %s" % (r.stdout, r.stderr)
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


def test_move_empty_slots_and_refuse_slots_with_data(sp: SpoolCluster) -> None:
    g1, g2 = sp.ports[0], sp.ports[1]
    # a slot of g1 with a queue in it, and an empty range around it
    q = next(n for n in ("mv-%d" % i for i in range(100000)) if 100 <= key_slot(n.encode()) <= 199)
    slot = key_slot(q.encode())
    jid = redis.Redis(port=g1, decode_responses=True).execute_command("JOB.PUSH", q, '{"keep":1}')
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % g1, "--from", "g1", "--to", "g2", "--range", "100-199")
    assert r.returncode == 1, "a slot with data makes the move exit 1: %s %s" % (r.stdout, r.stderr)
    assert "slot %d holds 1 key(s) or queue(s)" % slot in r.stderr, r.stderr
    assert "moved 99 of 100 slot(s)" in r.stdout, r.stdout
    assert slot_owner_everywhere(sp, slot) == [g1] * 3, "the slot with data stays on g1 on every node"
    assert slot_owner_everywhere(sp, 150 if slot != 150 else 151) == [g2] * 3
    rec = redis.Redis(port=g1, decode_responses=True).execute_command("JOB.GET", jid)
    assert rec[rec.index("state") + 1] == "ready", "the job stays where it was"
    try:
        redis.Redis(port=g2).execute_command("JOB.GET", jid)
        raise AssertionError("g2 answered for a job of g1")
    except redis.ResponseError as e:
        assert str(e) == "MOVED %d 127.0.0.1:%d" % (slot, g1), str(e)
    # a key in a moved slot now lives on g2
    rc = RedisCluster(host="127.0.0.1", port=g1, decode_responses=True)
    k = next(n for n in ("k-%d" % i for i in range(100000)) if 100 <= key_slot(n.encode()) <= 199 and
             key_slot(n.encode()) != slot)
    rc.set(k, "v")
    assert redis.Redis(port=g2, decode_responses=True).get(k) == "v"
    rc.close()
    r = spool("cluster", "info", "127.0.0.1:%d" % g2)
    assert r.returncode == 0 and "all 3 node(s) agree" in r.stdout, r.stdout + r.stderr
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % g1, "--from", "g1", "--to", "g1", "--count", "1")
    assert r.returncode == 2 and "--from and --to must name two groups" in r.stderr, r.stderr


def pusher(port: int, names: List[str], stop: threading.Event, pushed: List[Tuple[str, str]],
           errors: List[str]) -> None:
    rc = RedisCluster(host="127.0.0.1", port=port, decode_responses=True)
    i = 0
    while not stop.is_set() and i < 20000:
        q = names[i % len(names)]
        i += 1
        try:
            pushed.append((q, rc.execute_command("JOB.PUSH", q, '{"i":%d}' % i)))
        except redis.RedisError as e:  # not acknowledged: it must not matter
            errors.append(str(e))
    rc.close()


def test_moving_1000_slots_under_load_loses_nothing(sp: SpoolCluster) -> None:
    """Pushes run while 1,000 slots of g3 move to g1: every acknowledged push
    is found exactly once afterwards (slots that got data stay on g3)."""
    g1, g3 = sp.ports[0], sp.ports[2]
    names = ["load-%d" % i for i in range(300)]
    stop, pushed, errors = threading.Event(), [], []
    t = threading.Thread(target=pusher, args=(g1, names, stop, pushed, errors))
    t.start()
    wait_for(lambda: len(pushed) > 50, 20, "pushes under way")
    r = spool("cluster", "move-slots", "127.0.0.1:%d" % g3, "--from", "g3", "--to", "g1", "--count", "1000")
    stop.set()
    t.join(60)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    moved = int(re.search(r"moved (\d+) of 1000", r.stdout).group(1))
    assert moved > 0, r.stdout + r.stderr
    assert not errors, "pushes refused during the move: %s" % errors[:3]
    rc = RedisCluster(host="127.0.0.1", port=g3, decode_responses=True)
    found: Dict[str, int] = {}
    for q in names:
        while True:
            got = rc.execute_command("JOB.RESERVE", "NOWAIT", "COUNT", 1000, "FROM", q)
            if not got:
                break
            for job in got:
                found[job[1]] = found.get(job[1], 0) + 1
                rc.execute_command("JOB.ACK", job[3])
    rc.close()
    ids = [j for _, j in pushed]
    assert len(set(ids)) == len(ids), "no id twice"
    missing = [j for j in ids if j not in found]
    assert not missing, "%d acknowledged pushes lost, e.g. %s" % (len(missing), missing[:3])
    assert all(n == 1 for n in found.values()) and len(found) == len(ids), "each job delivered once"
    print("   moved %d of 1000 slots while %d jobs were pushed" % (moved, len(ids)))


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


TESTS = [test_replies_match_redis, test_redirect_errors_match_redis, test_redis_cli_cluster_check,
         test_redis_cli_follows_moved,
         test_spool_cli_follows_moved, test_redis_py_cluster_push_reserve_ack,
         test_move_empty_slots_and_refuse_slots_with_data, test_moving_1000_slots_under_load_loses_nothing,
         test_add_group_then_give_it_slots]


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
