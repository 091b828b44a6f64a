"""Connections: URLs, redis-py clients, and the mapping of redis-py's errors."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Union
from urllib.parse import urlsplit

import redis
import redis.cluster as rcluster
import redis.exceptions as rex

from .errors import AuthError, SpoolConnectionError, SpoolError, error_from_reply

DEFAULT_URL = "spool://127.0.0.1:7379"
DEFAULT_PORT = 7379

#: What `connection=` accepts: a URL (`spool://[user:password@]host[:port]`,
#: `redis://` too), a dict of redis.Redis keyword arguments, an existing
#: redis.Redis (its settings are reused), a redis.cluster.RedisCluster (a
#: spoold cluster: its nodes and settings are reused, docs/cluster.md), or
#: None for $SPOOL_URL or the default.
ConnectionLike = Union[None, str, Mapping[str, Any], "redis.Redis[Any]", "rcluster.RedisCluster"]

#: The key of connection_kwargs() that marks a cluster: its startup nodes.
CLUSTER_NODES = "spool_cluster_nodes"


def connection_kwargs(connection: ConnectionLike) -> Dict[str, Any]:
    """redis.Redis keyword arguments for a connection setting."""
    if connection is None:
        connection = os.environ.get("SPOOL_URL") or DEFAULT_URL
    if isinstance(connection, rcluster.RedisCluster):
        kw = {k: v for k, v in connection.nodes_manager.connection_kwargs.items()
              if isinstance(v, (str, int, float, bool)) and k in rcluster.REDIS_ALLOWED_KEYS
              and k not in ("host", "port")}
        kw[CLUSTER_NODES] = [(n.host, n.port) for n in connection.nodes_manager.startup_nodes.values()]
        return kw
    if isinstance(connection, redis.Redis):
        kw = dict(connection.connection_pool.connection_kwargs)
        for k in ("connection_class", "retry"):
            kw.pop(k, None)
        return kw
    if isinstance(connection, str):
        url = connection
        if url.startswith("spool://"):
            url = "redis://" + url[len("spool://"):]
        elif "://" not in url:
            url = "redis://" + url
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("connection URL %r: use spool://[user:password@]host[:port]" % connection)
        pool = redis.ConnectionPool.from_url(url)
        kw = dict(pool.connection_kwargs)
        kw.pop("connection_class", None)
        if not url.startswith("unix://") and urlsplit(url).port is None:
            kw["port"] = DEFAULT_PORT  # spool's port, not Redis's 6379
        return kw
    if isinstance(connection, Mapping):
        return dict(connection)
    raise TypeError("connection must be a URL, a dict of redis.Redis arguments or a redis.Redis, not %r"
                    % type(connection).__name__)


def make_client(kwargs: Mapping[str, Any], *, single: bool = False, socket_timeout: Optional[float] = 30.0,
                max_connections: Optional[int] = None, name: Optional[str] = None,
                blocking: bool = False) -> "redis.Redis[str]":
    """A redis.Redis that decodes replies as UTF-8 (undecodable bytes kept as
    surrogates) and never resends a command by itself. `blocking`: the
    client sends blocking commands, so `socket_timeout` is used as given,
    whatever the connection settings say."""
    kw = dict(kwargs)
    if blocking or kw.get("socket_timeout") is None:
        kw["socket_timeout"] = socket_timeout
    kw.setdefault("socket_connect_timeout", 5.0)
    kw["decode_responses"] = True
    kw["encoding_errors"] = "surrogateescape"
    kw["retry_on_timeout"] = False
    if name:
        kw["client_name"] = name
    # single: one thread's private client. Not redis-py's
    # single_connection_client, which connects in the constructor: a worker
    # started before its broker must come up and wait, not crash. Each
    # client has a pool of its own, so one thread reuses one connection.
    del single
    if max_connections:
        kw["max_connections"] = max_connections
    nodes = kw.pop(CLUSTER_NODES, None)
    if nodes:
        # redis-py routes by the keys COMMAND declares (job ids and receipts
        # carry their slot) and follows -MOVED / -ASK itself.
        kw = {k: v for k, v in kw.items() if k in rcluster.REDIS_ALLOWED_KEYS and k not in ("host", "port")}
        return rcluster.RedisCluster(startup_nodes=[rcluster.ClusterNode(h, p) for h, p in nodes], **kw)
    return redis.Redis(**kw)


def close_client(client: Any) -> None:
    """Closes a client's connections (a RedisCluster: those to every node)."""
    if isinstance(client, rcluster.RedisCluster):
        client.disconnect_connection_pools()
        return
    client.close()
    client.connection_pool.disconnect()


def call(client: "redis.Redis[str]", *args: Any, feature: str = "") -> Any:
    """Runs one command, turning redis-py's errors into SpoolErrors."""
    try:
        return client.execute_command(*args)
    except BaseException as e:  # noqa: B902 - re-raised as our own types
        raise map_error(e, feature) from e


def map_error(e: BaseException, feature: str = "") -> BaseException:
    if isinstance(e, SpoolError):
        return e
    if isinstance(e, rex.AuthenticationError) or isinstance(e, rex.NoPermissionError):
        return AuthError(str(e))
    if isinstance(e, (rex.ConnectionError, rex.TimeoutError, OSError)):
        return SpoolConnectionError("spoold connection: %s" % (e,))
    if isinstance(e, rex.ResponseError):
        return error_from_reply(str(e), feature)
    return e


def pairs(reply: Any) -> Dict[str, Any]:
    """A flat field/value array (RESP2) or a dict (RESP3) as a dict."""
    if reply is None:
        return {}
    if isinstance(reply, dict):
        return dict(reply)
    it = iter(reply)
    return {k: v for k, v in zip(it, it)}


def ms(seconds: Any, what: str) -> int:
    """Seconds (int, float or timedelta) as whole milliseconds, checked."""
    if hasattr(seconds, "total_seconds"):
        seconds = seconds.total_seconds()
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("%s must be seconds (a number or a timedelta), not %r" % (what, seconds))
    if seconds < 0:
        raise ValueError("%s must not be negative (got %r seconds)" % (what, seconds))
    return int(round(seconds * 1000))


def as_list(v: Any) -> List[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]
