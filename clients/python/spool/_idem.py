"""Pushes whose outcome is unknown, sent again safely.

Every push carries an idempotency key: the caller's own (`unique=` /
`job_id=`), else one made here, 128 random bits as 32 hex digits, once per
add() call and per add_bulk() item. `JOB.PUSH ... UNIQUE key` answers a push
whose key an unfinished job of the queue holds with that job's id and stores
nothing, so a push can be sent again when its outcome is unknown: the
connection broke with it in flight (or timed out), a replicated cluster
answered -CLUSTERDOWN (its leader was lost) or -TRYAGAIN (its slot is
moving), or the node is -LOADING. Resends wait 0.05 s doubling to 1 s, for
at most `push_retry` seconds (default 10) from the first attempt. redis-py
follows -MOVED itself (RedisCluster refreshes its map)."""
from __future__ import annotations

import secrets
import time
from typing import Any, Callable, Optional

import redis.exceptions as rex

from .errors import SpoolConnectionError, SpoolError

#: Seconds a push whose outcome is unknown is sent again, by default.
DEFAULT_PUSH_RETRY = 10.0
_FIRST_DELAY = 0.05
_MAX_DELAY = 1.0
_UNKNOWN_WORDS = ("CLUSTERDOWN", "TRYAGAIN", "LOADING")


def idempotency_key() -> str:
    """A new idempotency key: 128 random bits as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def outcome_unknown(e: BaseException) -> bool:
    """Whether a failed push may or may not have been stored (a resend with
    its key is safe): a lost connection or timeout, -CLUSTERDOWN, -TRYAGAIN,
    -LOADING. Any other reply is an outcome."""
    cause = e.__cause__
    if cause is not None and cause is not e and outcome_unknown(cause):
        return True  # redis-py's own error, before it became a SpoolError
    if isinstance(e, (rex.ClusterDownError, rex.TryAgainError, rex.BusyLoadingError)):
        return True
    if isinstance(e, rex.ClusterError):  # redis-py gave up on a cluster (no node answered)
        return True
    if isinstance(e, (SpoolConnectionError, rex.ConnectionError, rex.TimeoutError, OSError)):
        return True
    if isinstance(e, (SpoolError, rex.ResponseError)):
        return str(e).split(" ", 1)[0] in _UNKNOWN_WORDS
    return False


def push_retry_seconds(v: Any) -> float:
    """The push_retry setting as seconds: None/False/0 turn resends (and the
    automatic key) off."""
    if v is None or v is False:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError("push_retry is seconds >= 0 (0 or None: no resends, no automatic key), not %r" % (v,))
    return float(v)


def push_with_retry(limit: float, what: str, key: Optional[str], push: Callable[[], Any]) -> Any:
    """Runs push() and, while it fails with an unknown outcome and `limit`
    seconds have not passed, runs it again (it sends the same key). The error
    that ends it says how often it was sent and with which key."""
    deadline = time.monotonic() + limit
    delay = _FIRST_DELAY
    tries = 0
    while True:
        tries += 1
        try:
            return push()
        except Exception as e:  # noqa: B902 - re-raised unless the outcome is unknown
            left = deadline - time.monotonic()
            if not key or limit <= 0 or not outcome_unknown(e):
                raise
            if left <= 0:
                e.args = ("%s (%s sent %d times in %g s with UNIQUE key %s; outcome unknown: get_job or a "
                          "push with that key will tell; raise push_retry to wait longer)"
                          % (e, what, tries, limit, key),) + tuple(e.args[1:])
                raise
            time.sleep(min(delay, left))
            delay = min(delay * 2, _MAX_DELAY)
