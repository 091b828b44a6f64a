"""Pushes whose outcome is unknown: a proxy between the Queue and a real
spoold loses the reply of a push the broker ran (it closes both sides when
the reply comes). add/add_bulk send the push again with the same
idempotency key, and the queue holds exactly one job per push."""
from __future__ import annotations

import select
import socket
import threading

import pytest
import redis

from spool import Queue
from spool._idem import outcome_unknown
from spool.errors import QueueFullError, SpoolConnectionError


class DropProxy:
    """Relays 127.0.0.1:port to spoold; while `drops` > 0 a connection that
    relays a JOB.PUSH closes both sides when the broker's reply comes."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.drops = 0
        self.cut = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.th = threading.Thread(target=self._accept, daemon=True)
        self.th.start()

    def _accept(self) -> None:
        while not self.stopping:
            r, _, _ = select.select([self.ls], [], [], 0.1)
            if r:
                c, _ = self.ls.accept()
                threading.Thread(target=self._relay, args=(c,), daemon=True).start()

    def _take_drop(self) -> bool:
        with self.lock:
            if self.drops > 0:
                self.drops -= 1
                return True
            return False

    def _relay(self, c: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.target))
        armed = False
        try:
            while not self.stopping:
                r, _, _ = select.select([c, up], [], [], 0.1)
                if c in r:
                    d = c.recv(65536)
                    if not d:
                        return
                    up.sendall(d)
                    if not armed and b"JOB.PUSH" in d and self._take_drop():
                        armed = True
                if up in r:
                    d = up.recv(65536)
                    if not d:
                        return
                    if armed:  # the push ran; its reply is lost
                        with self.lock:
                            self.cut += 1
                        return
                    c.sendall(d)
        except OSError:
            return
        finally:
            c.close()
            up.close()

    def close(self) -> None:
        self.stopping = True
        self.th.join(5)
        self.ls.close()


@pytest.fixture
def proxy(spoold):
    p = DropProxy(spoold.port)
    yield p
    p.close()


@pytest.fixture
def raw(spoold):
    c = redis.Redis(port=spoold.port, decode_responses=True)
    yield c
    c.close()


def ready(raw, q: str) -> int:
    st = raw.execute_command("QUEUE.STATS", q)
    st = dict(zip(st[::2], st[1::2])) if isinstance(st, list) else st
    return int(st["ready"])


def unique_of(raw, job_id: str):
    g = raw.execute_command("JOB.GET", job_id)
    g = dict(zip(g[::2], g[1::2])) if isinstance(g, list) else g
    return g["unique"]


def test_a_push_whose_reply_was_lost_is_sent_again_and_stored_once(proxy, raw, qname):
    q = Queue(qname, connection="spool://127.0.0.1:%d" % proxy.port)
    proxy.drops = 1
    job = q.add({"n": 1})
    assert proxy.cut == 1, "the proxy lost no reply"
    assert ready(raw, qname) == 1, "the resend made a second job"
    key = unique_of(raw, job.id)
    assert len(key) == 32 and int(key, 16) >= 0
    other = q.add({"n": 2})
    assert unique_of(raw, other.id) != key, "two adds got one key"
    q.close()


def test_the_callers_own_unique_key_is_kept(proxy, raw, qname):
    q = Queue(qname, connection="spool://127.0.0.1:%d" % proxy.port)
    proxy.drops = 1
    job = q.add({"n": 1}, job_id="order-991")
    assert proxy.cut == 1
    assert ready(raw, qname) == 1
    assert unique_of(raw, job.id) == "order-991"
    q.close()


def test_add_bulk_resends_the_lost_items_each_with_its_key(proxy, raw, qname):
    q = Queue(qname, connection="spool://127.0.0.1:%d" % proxy.port)
    proxy.drops = 1
    jobs = q.add_bulk([{"data": {"n": n}} for n in range(40)])
    assert proxy.cut == 1
    assert len({j.id for j in jobs}) == 40
    assert ready(raw, qname) == 40, "resent items made extra jobs"
    q.close()


def test_push_retry_off_sends_no_key_and_reports_the_lost_reply(proxy, raw, qname):
    q = Queue(qname, connection="spool://127.0.0.1:%d" % proxy.port, push_retry=0)
    proxy.drops = 1
    with pytest.raises(SpoolConnectionError):
        q.add({"n": 1})
    got = raw.execute_command("JOB.RESERVE", "NOWAIT", "FROM", qname)
    assert len(got) == 1, "the push ran on the broker"
    f = got[0]
    f = dict(zip(f[::2], f[1::2])) if isinstance(f, list) else f
    assert unique_of(raw, f["id"]) is None
    q.close()


def test_outcome_unknown_tells_lost_connections_from_refusals():
    assert outcome_unknown(SpoolConnectionError("spoold connection: reset"))
    assert outcome_unknown(redis.exceptions.ClusterDownError("outcome unknown: leadership was lost"))
    assert outcome_unknown(redis.exceptions.TryAgainError("slot 5 is being moved"))
    assert not outcome_unknown(QueueFullError("FULL queue q has 10 unfinished jobs"))
    assert not outcome_unknown(redis.exceptions.ResponseError("ERR wrong number of arguments"))
    with pytest.raises(ValueError, match="push_retry"):
        Queue("q", connection="spool://127.0.0.1:1", push_retry=-1)
