"""Differential test of spool's keyspace against a real redis-server.

Runs the same commands against spoold and redis-server (Debian's) and
compares the raw replies: hand-written cases for every keyspace command,
then seeded random sequences over strings, keys, hashes, sorted sets,
MULTI/EXEC and WATCH. TTL-like replies are compared within a tolerance
(the two servers see the commands a few milliseconds apart). Replies that
differ on purpose are listed in KNOWN and in docs/protocol.md, "Differences
from Redis". Prints one line per failure and ends with "N passed, N failed".
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import redis

TOL = {b'TTL': 1, b'PTTL': 1500, b'EXPIRETIME': 1, b'PEXPIRETIME': 1500}


class Server:
    def __init__(self, argv, client_kw, name):
        self.name = name
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.client_kw = client_kw

    def client(self):
        c = redis.Redis(socket_timeout=10, **self.client_kw())
        c.response_callbacks = {}
        return c

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_for(cond, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise SystemExit('timed out waiting for ' + what)


def start_servers(spoold, tmp):
    port_file = os.path.join(tmp, 'spool.port')
    data = os.path.join(tmp, 'spool-data')
    os.mkdir(data)
    sp = Server([spoold, '--port', '0', '--port-file', port_file, '--data-dir', data, '--shards', '2',
                 '--fsync', 'off', '--http-port', '0'],
                lambda: {'host': '127.0.0.1', 'port': int(open(port_file).read())}, 'spool')
    wait_for(lambda: os.path.exists(port_file) and open(port_file).read().endswith('\n'), 'spoold to listen')
    sock = os.path.join(tmp, 'redis.sock')
    rd = Server(['redis-server', '--port', '0', '--unixsocket', sock, '--save', '', '--appendonly', 'no',
                 '--dir', tmp], lambda: {'unix_socket_path': sock}, 'redis')
    wait_for(lambda: os.path.exists(sock), 'redis-server to listen')
    return sp, rd


def run(c, args):
    try:
        return norm(c.execute_command(*args))
    except redis.exceptions.ResponseError as e:
        return ('ERR', str(e))


def norm(v):
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, Exception):
        return ('ERR', str(v))
    return v


def close(cmd, a, b):
    tol = TOL.get(cmd)
    if tol is not None and isinstance(a, int) and isinstance(b, int):
        return a == b or (a >= 0 and b >= 0 and abs(a - b) <= tol)
    return a == b


def unordered(cmd):
    return cmd in (b'KEYS', b'HKEYS', b'HVALS', b'HGETALL')


def pairs_of_scan(cmd, v):
    """HSCAN's field/value list in a canonical order."""
    if cmd in (b'HSCAN', b'ZSCAN') and isinstance(v, list) and len(v) == 2 and isinstance(v[1], list):
        return [v[0], sorted(zip(v[1][0::2], v[1][1::2]))]
    return v


# Replies that differ on purpose (docs/protocol.md, "Differences from Redis").
KNOWN = []


class Pair:
    def __init__(self, sp, rd):
        self.s = sp.client()
        self.r = rd.client()

    def both(self, args):
        args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        return run(self.s, args), run(self.r, args), args

    def same(self, args):
        a, b, args = self.both(args)
        cmd = args[0].upper()
        a, b = pairs_of_scan(cmd, a), pairs_of_scan(cmd, b)
        if unordered(cmd) and isinstance(a, list) and isinstance(b, list):
            if cmd == b'HGETALL':
                a = sorted(zip(a[0::2], a[1::2]))
                b = sorted(zip(b[0::2], b[1::2]))
            else:
                a, b = sorted(a), sorted(b)
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            ok = all(close(cmd, x, y) for x, y in zip(a, b))
        else:
            ok = close(cmd, a, b)
        return ok, a, b, args


CASES = [
    # strings
    [['SET', 'k', 'v'], ['GET', 'k'], ['GET', 'nope'], ['STRLEN', 'k'], ['STRLEN', 'nope']],
    [['SET', 'k', 'v', 'NX'], ['SET', 'k', 'w', 'NX'], ['GET', 'k'], ['SET', 'k', 'x', 'XX'], ['SET', 'n', 'x', 'XX'],
     ['GET', 'n']],
    [['SET', 'k', 'v', 'EX', '100'], ['TTL', 'k'], ['PTTL', 'k'], ['SET', 'k', 'w', 'KEEPTTL'], ['TTL', 'k'],
     ['SET', 'k', 'z'], ['TTL', 'k']],
    [['SET', 'k', 'v', 'PX', '100000'], ['PTTL', 'k'], ['SET', 'k', 'v', 'EXAT', '4102444800'], ['EXPIRETIME', 'k'],
     ['SET', 'k', 'v', 'PXAT', '4102444800123'], ['PEXPIRETIME', 'k'], ['SET', 'k', 'v', 'EXAT', '1000'], ['GET', 'k']],
    [['SET', 'k', 'v', 'EX', '0'], ['SET', 'k', 'v', 'EX', '-1'], ['SET', 'k', 'v', 'EX', 'x'], ['SET', 'k', 'v', 'EX'],
     ['SET', 'k', 'v', 'NX', 'XX'], ['SET', 'k', 'v', 'EX', '10', 'PX', '10'], ['SET', 'k', 'v', 'KEEPTTL', 'EX', '1'],
     ['SET', 'k', 'v', 'BOGUS'], ['SET', 'k', 'v', 'EX', '9223372036854775807']],
    [['SET', 'k', 'old'], ['SET', 'k', 'new', 'GET'], ['SET', 'n', 'x', 'GET'], ['SET', 'k', 'n2', 'NX', 'GET'],
     ['GET', 'k'], ['HSET', 'h', 'f', 'v'], ['SET', 'h', 'x', 'GET'], ['SET', 'h', 'x'], ['TYPE', 'h']],
    [['SETNX', 'k', 'a'], ['SETNX', 'k', 'b'], ['GET', 'k'], ['SETEX', 'k', '100', 'c'], ['TTL', 'k'],
     ['PSETEX', 'k', '100000', 'd'], ['PTTL', 'k'], ['SETEX', 'k', '0', 'c'], ['PSETEX', 'k', '-5', 'c'],
     ['SETEX', 'k', 'x', 'c']],
    [['SET', 'k', 'v'], ['GETDEL', 'k'], ['GETDEL', 'k'], ['EXISTS', 'k']],
    [['SET', 'k', 'v'], ['GETEX', 'k', 'EX', '100'], ['TTL', 'k'], ['GETEX', 'k', 'PERSIST'], ['TTL', 'k'],
     ['GETEX', 'k', 'PX', '5000'], ['PTTL', 'k'], ['GETEX', 'k'], ['GETEX', 'nope'], ['GETEX', 'k', 'EX', '0'],
     ['GETEX', 'k', 'BAD'], ['GETEX', 'k', 'EXAT', '1'], ['EXISTS', 'k']],
    [['MSET', '{t}a', '1', '{t}b', '2'], ['MGET', '{t}a', '{t}b', '{t}c'], ['MSETNX', '{t}c', '3', '{t}a', '9'],
     ['MGET', '{t}a', '{t}c'], ['MSETNX', '{t}c', '3', '{t}d', '4'], ['MGET', '{t}c', '{t}d'],
     ['MSET', '{t}a'], ['MSET', '{t}a', '1', '{t}b']],
    [['MSET', 'a', '1'], ['MSET', 'b', '2'], ['MSET', 'c', '3'], ['HSET', 'h', 'f', 'v'], ['MGET', 'a', 'b', 'c', 'h', 'zz']],
    [['INCR', 'n'], ['INCRBY', 'n', '10'], ['DECR', 'n'], ['DECRBY', 'n', '5'], ['INCRBY', 'n', '-3'],
     ['INCRBY', 'n', 'x'], ['INCRBY', 'n', '1.5'], ['GET', 'n'], ['SET', 's', 'abc'], ['INCR', 's'],
     ['SET', 'big', '9223372036854775807'], ['INCR', 'big'], ['SET', 'small', '-9223372036854775808'],
     ['DECR', 'small'], ['DECRBY', 'n', '-9223372036854775808'], ['SET', 'sp', ' 1'], ['INCR', 'sp'],
     ['SET', 'z', '007'], ['INCR', 'z']],
    [['INCRBYFLOAT', 'f', '10.5'], ['INCRBYFLOAT', 'f', '0.1'], ['INCRBYFLOAT', 'f', '-5'], ['INCRBYFLOAT', 'f', '5.0e3'],
     ['INCRBYFLOAT', 'f', 'abc'], ['SET', 's', 'x'], ['INCRBYFLOAT', 's', '1'], ['INCRBYFLOAT', 'g', '3'],
     ['GET', 'g'], ['INCRBYFLOAT', 'f', 'inf'], ['SET', 'e', '1e3'], ['INCRBYFLOAT', 'e', '1']],
    [['SET', 'k', 'v', 'EX', '100'], ['INCR', 'c'], ['EXPIRE', 'c', '100'], ['INCR', 'c'], ['TTL', 'c'],
     ['INCRBYFLOAT', 'k2', '1'], ['EXPIRE', 'k2', '50'], ['INCRBYFLOAT', 'k2', '1'], ['TTL', 'k2']],
    [['APPEND', 'a', 'hello'], ['APPEND', 'a', ' world'], ['GET', 'a'], ['STRLEN', 'a'],
     ['GETRANGE', 'a', '0', '4'], ['GETRANGE', 'a', '-5', '-1'], ['GETRANGE', 'a', '5', '2'], ['GETRANGE', 'a', '0', '100'],
     ['GETRANGE', 'a', '-100', '2'], ['GETRANGE', 'a', '-1', '-5'], ['GETRANGE', 'nope', '0', '1'],
     ['GETRANGE', 'a', 'x', '1'], ['GETRANGE', 'a', '3', '-100']],
    # hashes
    [['HSET', 'h', 'a', '1', 'b', '2'], ['HSET', 'h', 'a', '3', 'c', '4'], ['HGET', 'h', 'a'], ['HGET', 'h', 'z'],
     ['HGET', 'nope', 'a'], ['HMGET', 'h', 'a', 'z', 'b'], ['HGETALL', 'h'], ['HKEYS', 'h'], ['HVALS', 'h'],
     ['HLEN', 'h'], ['HLEN', 'nope'], ['HEXISTS', 'h', 'a'], ['HEXISTS', 'h', 'z'], ['HSTRLEN', 'h', 'a'],
     ['HSET', 'h', 'x'], ['HSET', 'h', 'x', 'y', 'z'], ['HMSET', 'h', 'm', 'n'], ['HGETALL', 'nope'], ['TYPE', 'h']],
    [['HSETNX', 'h', 'a', '1'], ['HSETNX', 'h', 'a', '2'], ['HGET', 'h', 'a'], ['HDEL', 'h', 'a', 'z'],
     ['EXISTS', 'h'], ['HDEL', 'h', 'a'], ['HSET', 'h', 'a', '1', 'b', '2'], ['HDEL', 'h', 'a', 'b'], ['EXISTS', 'h']],
    [['HINCRBY', 'h', 'n', '5'], ['HINCRBY', 'h', 'n', '-2'], ['HINCRBY', 'h', 'n', 'x'], ['HSET', 'h', 's', 'abc'],
     ['HINCRBY', 'h', 's', '1'], ['HSET', 'h', 'big', '9223372036854775807'], ['HINCRBY', 'h', 'big', '1'],
     ['HINCRBYFLOAT', 'h', 'f', '1.5'], ['HINCRBYFLOAT', 'h', 'f', '0.25'], ['HINCRBYFLOAT', 'h', 's', '1'],
     ['HINCRBYFLOAT', 'h', 'f', 'x'], ['HGETALL', 'h'], ['SET', 'str', 'v'], ['HSET', 'str', 'a', '1'],
     ['HGET', 'str', 'a'], ['GET', 'h'], ['HINCRBY', 'nh', 'big', '9223372036854775807'],
     ['HINCRBY', 'nh', 'big', '1'], ['EXISTS', 'nh']],
    [['HSET', 'h', 'f1', 'a', 'f2', 'b', 'g1', 'c'], ['HSCAN', 'h', '0', 'COUNT', '100'],
     ['HSCAN', 'h', '0', 'MATCH', 'f*', 'COUNT', '100'], ['HSCAN', 'nope', '0'], ['HSCAN', 'h', 'x'], ['HSCAN', 'h', ''],
     ['HSCAN', 'h', '0', 'COUNT', '0']],
    # sorted sets
    [['ZADD', 'z', '1', 'a', '2', 'b', '3', 'c'], ['ZADD', 'z', '1.5', 'a', '10', 'd'], ['ZCARD', 'z'],
     ['ZSCORE', 'z', 'a'], ['ZSCORE', 'z', 'x'], ['ZMSCORE', 'z', 'a', 'x', 'd'], ['ZRANK', 'z', 'c'],
     ['ZREVRANK', 'z', 'c'], ['ZRANK', 'z', 'x'], ['ZRANGE', 'z', '0', '-1'], ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'],
     ['ZREVRANGE', 'z', '0', '1'], ['ZREVRANGE', 'z', '0', '-1', 'WITHSCORES'], ['ZRANGE', 'z', '5', '10'],
     ['ZRANGE', 'z', '-2', '-1'], ['ZRANGE', 'z', '-100', '1'], ['ZCARD', 'nope'], ['ZRANGE', 'nope', '0', '-1']],
    [['ZADD', 'z', '1', 'a', '2.5', 'b'], ['ZMSCORE', 'z', 'b'], ['ZMSCORE', 'z', 'x', 'b', 'x', 'a'],
     ['ZMSCORE', 'nope', 'a', 'b'], ['ZSCORE', 'nope', 'a'], ['SET', 's', 'v'], ['ZSCORE', 's', 'a'],
     ['ZMSCORE', 's', 'a', 'b'], ['ZSCORE', 'z', 'a', 'b'], ['ZMSCORE', 'z']],
    [['ZADD', 'z', 'NX', '1', 'a'], ['ZADD', 'z', 'NX', '5', 'a'], ['ZADD', 'z', 'XX', '5', 'a', '1', 'new'],
     ['ZSCORE', 'z', 'a'], ['ZSCORE', 'z', 'new'], ['ZADD', 'z', 'GT', '3', 'a'], ['ZADD', 'z', 'GT', 'CH', '7', 'a'],
     ['ZADD', 'z', 'LT', 'CH', '9', 'a'], ['ZADD', 'z', 'LT', 'CH', '2', 'a', '4', 'b'], ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'],
     ['ZADD', 'z', 'INCR', '5', 'a'], ['ZADD', 'z', 'INCR', 'NX', '5', 'a'], ['ZADD', 'z', 'INCR', 'XX', '1', 'q'],
     ['ZADD', 'z', 'NX', 'XX', '1', 'a'], ['ZADD', 'z', 'GT', 'LT', '1', 'a'], ['ZADD', 'z', 'GT', 'NX', '1', 'a'],
     ['ZADD', 'z', 'INCR', '1', 'a', '2', 'b'], ['ZADD', 'z', '1'], ['ZADD', 'z', 'x', 'a'], ['ZADD', 'z', 'nan', 'a'],
     ['ZADD', 'z', 'inf', 'i', '-inf', 'j', '+inf', 'k'], ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'],
     ['ZADD', 'z', 'INCR', '-inf', 'i'], ['ZADD', 'xx', 'XX', '1', 'a'], ['EXISTS', 'xx'], ['ZADD', 'z', 'CH', '1']],
    [['ZINCRBY', 'z', '2', 'a'], ['ZINCRBY', 'z', '2.5', 'a'], ['ZINCRBY', 'z', 'x', 'a'], ['ZADD', 'z', '1.1', 'f'],
     ['ZSCORE', 'z', 'f'], ['ZINCRBY', 'z', '0.1', 'f'], ['ZADD', 'z', '3e5', 'g'], ['ZSCORE', 'z', 'g'],
     ['ZADD', 'z', '-0', 'h'], ['ZSCORE', 'z', 'h'], ['ZADD', 'z', '0.30000000000000004', 'p'], ['ZSCORE', 'z', 'p']],
    [['ZADD', 'z', '1', 'a', '2', 'b', '3', 'c', '4', 'd', '5', 'e'], ['ZCOUNT', 'z', '2', '4'], ['ZCOUNT', 'z', '(2', '4'],
     ['ZCOUNT', 'z', '-inf', '+inf'], ['ZCOUNT', 'z', 'x', '1'], ['ZRANGEBYSCORE', 'z', '2', '(4'],
     ['ZRANGEBYSCORE', 'z', '-inf', '+inf', 'WITHSCORES', 'LIMIT', '1', '2'], ['ZREVRANGEBYSCORE', 'z', '4', '2'],
     ['ZREVRANGEBYSCORE', 'z', '+inf', '-inf', 'LIMIT', '0', '2'], ['ZRANGE', 'z', '2', '4', 'BYSCORE'],
     ['ZRANGE', 'z', '4', '2', 'BYSCORE', 'REV'], ['ZRANGE', 'z', '(1', '5', 'BYSCORE', 'LIMIT', '1', '10'],
     ['ZRANGE', 'z', '0', '-1', 'REV'], ['ZRANGE', 'z', '0', '1', 'LIMIT', '0', '1'],
     ['ZRANGE', 'z', '0', '1', 'BYSCORE', 'BYLEX'], ['ZRANGEBYSCORE', 'z', '1', '5', 'LIMIT', '-1', '2'],
     ['ZRANGEBYSCORE', 'z', '1', '5', 'LIMIT', '1', '-1'], ['ZRANGEBYSCORE', 'z', '5', '1'],
     ['ZRANGEBYSCORE', 'z', '1', '5', 'BOGUS']],
    [['ZADD', 'l', '0', 'a', '0', 'b', '0', 'c', '0', 'd', '0', 'e'], ['ZRANGE', 'l', '[b', '(d', 'BYLEX'],
     ['ZRANGE', 'l', '-', '+', 'BYLEX'], ['ZRANGE', 'l', '+', '-', 'BYLEX'], ['ZRANGE', 'l', '(d', '[b', 'BYLEX', 'REV'],
     ['ZRANGE', 'l', '+', '-', 'BYLEX', 'REV', 'LIMIT', '1', '2'], ['ZRANGEBYLEX', 'l', '-', '[c'],
     ['ZREVRANGEBYLEX', 'l', '[c', '-'], ['ZRANGE', 'l', 'b', 'd', 'BYLEX'], ['ZRANGE', 'l', '-', '+', 'BYLEX', 'WITHSCORES'],
     ['ZRANGE', 'l', '[aa', '[c', 'BYLEX']],
    [['ZADD', 'z', '1', 'a', '2', 'b', '3', 'c', '4', 'd', '5', 'e'], ['ZREM', 'z', 'a', 'x'], ['ZREM', 'nope', 'a'],
     ['ZREMRANGEBYSCORE', 'z', '(2', '3'], ['ZRANGE', 'z', '0', '-1'], ['ZREMRANGEBYRANK', 'z', '0', '0'],
     ['ZRANGE', 'z', '0', '-1'], ['ZREMRANGEBYRANK', 'z', '0', '-1'], ['EXISTS', 'z'], ['ZREMRANGEBYSCORE', 'z', 'a', 'b']],
    [['ZADD', 'z', '1', 'a', '2', 'b', '3', 'c'], ['ZPOPMIN', 'z'], ['ZPOPMAX', 'z', '5'], ['ZPOPMIN', 'z'],
     ['EXISTS', 'z'], ['ZPOPMIN', 'nope'], ['ZPOPMIN', 'z', '-1'], ['ZADD', 'z', '1', 'a'], ['ZPOPMIN', 'z', '0'],
     ['ZPOPMAX', 'z', 'x']],
    [['ZADD', 'z', '1', 'f1', '2', 'f2', '3', 'g1'], ['ZSCAN', 'z', '0', 'COUNT', '100'],
     ['ZSCAN', 'z', '0', 'MATCH', 'f*'], ['ZSCAN', 'nope', '0'], ['ZSCAN', 'z', ''], ['SET', 's', 'v'], ['ZADD', 's', '1', 'a'],
     ['ZRANGE', 's', '0', '-1'], ['ZSCORE', 's', 'a'], ['TYPE', 'z']],
    [['ZADD', 'game:leaderboard', '1000', 'user123'], ['ZADD', 'game:leaderboard', '1500', 'user7', '900', 'user9'],
     ['ZREVRANGE', 'game:leaderboard', '0', '9'], ['ZREVRANGE', 'game:leaderboard', '0', '9', 'WITHSCORES']],
    # blocking pops meet the keyspace
    [['SET', 's', 'v'], ['BLPOP', 's', '0.1'], ['BRPOP', 'nope', 's', '0.1'], ['RPUSH', '{b}l', '{}'],
     ['BLPOP', '{b}l', 's', '0.1'], ['BLPOP', 'nope', '0.05'], ['LPUSH', 's', '{}'], ['LLEN', 's'], ['GET', '{b}l']],
    # keys
    [['SET', 'a', '1'], ['SET', 'b', '2'], ['DEL', 'a', 'b', 'c'], ['EXISTS', 'a'], ['SET', 'a', '1'],
     ['EXISTS', 'a', 'a', 'b'], ['UNLINK', 'a'], ['TYPE', 'a'], ['SET', 'a', 's'], ['TYPE', 'a']],
    [['SET', 'k', 'v'], ['EXPIRE', 'k', '100'], ['TTL', 'k'], ['PEXPIRE', 'k', '50000'], ['PTTL', 'k'],
     ['EXPIREAT', 'k', '4102444800'], ['EXPIRETIME', 'k'], ['PEXPIREAT', 'k', '4102444800000'],
     ['PEXPIRETIME', 'k'], ['PERSIST', 'k'], ['PERSIST', 'k'], ['TTL', 'k'], ['TTL', 'nope'], ['PTTL', 'nope'],
     ['EXPIRETIME', 'nope'], ['EXPIRETIME', 'k'], ['EXPIRE', 'nope', '10'], ['EXPIRE', 'k', 'x']],
    [['SET', 'k', 'v'], ['EXPIRE', 'k', '100', 'XX'], ['EXPIRE', 'k', '100', 'NX'], ['TTL', 'k'],
     ['EXPIRE', 'k', '50', 'GT'], ['EXPIRE', 'k', '200', 'GT'], ['TTL', 'k'], ['EXPIRE', 'k', '300', 'LT'],
     ['EXPIRE', 'k', '30', 'LT'], ['TTL', 'k'], ['EXPIRE', 'k', '10', 'NX', 'XX'], ['EXPIRE', 'k', '10', 'GT', 'LT'],
     ['EXPIRE', 'k', '10', 'FOO'], ['PERSIST', 'k'], ['EXPIRE', 'k', '10', 'GT'], ['EXPIRE', 'k', '10', 'LT'],
     ['TTL', 'k']],
    [['SET', 'k', 'v'], ['EXPIRE', 'k', '-1'], ['EXISTS', 'k'], ['SET', 'k', 'v'], ['EXPIREAT', 'k', '1'], ['GET', 'k'],
     ['SET', 'k', 'v'], ['PEXPIRE', 'k', '0'], ['GET', 'k'], ['SET', 'k', 'v'],
     ['EXPIRE', 'k', '9223372036854775807'], ['TTL', 'k']],
    [['SET', '{r}a', '1'], ['EXPIRE', '{r}a', '100'], ['RENAME', '{r}a', '{r}b'], ['GET', '{r}a'], ['GET', '{r}b'],
     ['TTL', '{r}b'], ['RENAME', '{r}nope', '{r}c'], ['SET', '{r}c', '3'], ['RENAMENX', '{r}b', '{r}c'],
     ['RENAMENX', '{r}b', '{r}d'], ['RENAME', '{r}d', '{r}c'], ['GET', '{r}c'], ['RENAME', '{r}c', '{r}c'],
     ['RENAMENX', '{r}c', '{r}c']],
    [['SET', 'a', '1'], ['SET', 'b', '2'], ['DBSIZE'], ['KEYS', '*'], ['KEYS', 'a*'], ['KEYS', '[ab]'],
     ['KEYS', '?'], ['KEYS', 'x*'], ['FLUSHDB'], ['DBSIZE'], ['KEYS', '*'], ['FLUSHALL', 'BAD'], ['RANDOMKEY']],
    [['SET', 'h\\*llo', '1'], ['SET', 'hallo', '2'], ['KEYS', 'h\\*llo'], ['KEYS', 'h[^e]llo'], ['KEYS', 'h[a-b]llo'],
     ['KEYS', 'h*o'], ['SET', 'only', 'x'], ['DEL', 'h\\*llo', 'hallo'], ['RANDOMKEY']],
]


def run_cases(p, failures):
    passed = 0
    for n, case in enumerate(CASES):
        p.s.execute_command('FLUSHALL')
        p.r.execute_command('FLUSHALL')
        ok = True
        for args in case:
            same, a, b, args = p.same(args)
            if not same and [x.decode(errors='replace') for x in args] not in KNOWN:
                ok = False
                failures.append('case %d: %s\n    spool: %r\n    redis: %r' %
                                (n, ' '.join(x.decode(errors='replace') for x in args), a, b))
        passed += ok
    return passed


class Raw:
    """A raw RESP connection: the exact bytes of each reply, to compare
    the RESP3 encodings redis-py (RESP2 only) cannot show."""

    def __init__(self, kw):
        import socket
        if 'unix_socket_path' in kw:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(kw['unix_socket_path'])
        else:
            self.sock = socket.create_connection((kw['host'], kw['port']))
        self.sock.settimeout(10)
        self.buf = b''

    def cmd(self, *args):
        out = b'*%d\r\n' % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b'$%d\r\n%s\r\n' % (len(a), a)
        self.sock.sendall(out)
        return self.reply()

    def line(self):
        while b'\r\n' not in self.buf:
            self.buf += self.sock.recv(65536)
        ln, self.buf = self.buf.split(b'\r\n', 1)
        return ln + b'\r\n'

    def take(self, n):
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def reply(self):
        ln = self.line()
        t = ln[:1]
        if t in (b'$', b'=', b'!') and ln[1:3] != b'-1':
            return ln + self.take(int(ln[1:-2]) + 2)
        if t in (b'*', b'~', b'>', b'%') and ln[1:3] != b'-1':
            n = int(ln[1:-2]) * (2 if t == b'%' else 1)
            return ln + b''.join(self.reply() for _ in range(n))
        return ln


RESP3_CASES = [
    ['HSET', '{k}h', 'f', 'v'], ['HGETALL', '{k}h'], ['HGETALL', 'nope'],
    ['ZADD', 'z', '1.5', 'a', '2', 'b'], ['ZRANGE', 'z', '0', '-1', 'WITHSCORES'], ['ZSCORE', 'z', 'a'],
    ['ZMSCORE', 'z', 'a', 'x'], ['ZINCRBY', 'z', '1', 'a'], ['ZRANGEBYSCORE', 'z', '-inf', '+inf', 'WITHSCORES'],
    ['ZPOPMIN', 'z', '1'], ['ZPOPMAX', 'z'], ['ZPOPMIN', 'nope'], ['ZADD', 'z', 'INCR', '1', 'q'],
    ['ZADD', 'z', 'NX', 'INCR', '1', 'q'], ['ZSCORE', 'z', 'nope'],
    ['SET', 'k', 'v'], ['GET', 'nope'], ['MGET', 'k', 'nope'], ['INCRBYFLOAT', 'f', '1.5'],
    ['WATCH', 'k'], ['SET', 'k', 'w'], ['MULTI'], ['GET', 'k'], ['EXEC'],
    ['MULTI'], ['GET', 'k'], ['HGETALL', '{k}h'], ['EXEC'], ['TTL', 'k'], ['TYPE', 'z'],
]


def run_resp3(sp, rd, failures):
    """The same commands over RESP3 (HELLO 3): the reply bytes must be equal."""
    s, r = Raw(sp.client_kw()), Raw(rd.client_kw())
    s.cmd('HELLO', '3')
    r.cmd('HELLO', '3')
    s.cmd('FLUSHALL')
    r.cmd('FLUSHALL')
    ok = True
    for args in RESP3_CASES:
        a, b = s.cmd(*args), r.cmd(*args)
        if a != b:
            ok = False
            failures.append('resp3: %s\n    spool: %r\n    redis: %r' % (' '.join(args), a, b))
    return ok


def scan_all(c, *opts):
    cur, seen, calls = b'0', [], 0
    while True:
        cur, keys = c.execute_command('SCAN', cur, *opts)
        seen += keys
        calls += 1
        if cur == b'0' or calls > 100000:
            return seen


def run_scan(p, failures):
    """SCAN over both shards returns every key (order aside), with MATCH and
    TYPE; compared with a full SCAN of redis-server."""
    for c in (p.s, p.r):
        c.execute_command('FLUSHALL')
        for i in range(600):
            c.execute_command('SET', 'key:%d' % i, 'v')
        for i in range(50):
            c.execute_command('HSET', 'hash:%d' % i, 'f', 'v')
            c.execute_command('ZADD', 'zset:%d' % i, '1', 'm')
    ok = True
    for opts in ([], ['COUNT', '7'], ['MATCH', 'key:1*', 'COUNT', '13'], ['TYPE', 'hash'], ['TYPE', 'zset', 'COUNT', '3']):
        a, b = scan_all(p.s, *opts), scan_all(p.r, *opts)
        if set(a) != set(b):
            ok = False
            failures.append('scan %s: spool has %d keys (%d missing), redis %d' %
                            (' '.join(opts), len(set(a)), len(set(b) - set(a)), len(set(b))))
    return ok


def random_step(rng, keys):
    k = rng.choice(keys)
    k2 = rng.choice(keys)
    v = rng.choice(['1', '2', '10', '-3', 'abc', '', '3.5', '9223372036854775806'])
    n = str(rng.randint(-2, 20))
    choices = [
        lambda: ['SET', k, v],
        lambda: ['SET', k, v] + rng.choice([[], ['NX'], ['XX'], ['GET'], ['EX', '1000'], ['PX', '900000'],
                                             ['KEEPTTL'], ['XX', 'GET']]),
        lambda: ['GET', k],
        lambda: ['GETDEL', k],
        lambda: ['GETEX', k] + rng.choice([[], ['PERSIST'], ['EX', '500']]),
        lambda: ['SETNX', k, v],
        lambda: ['INCR', k],
        lambda: ['DECRBY', k, n],
        lambda: ['INCRBYFLOAT', k, rng.choice(['1.5', '-2', 'x', '0'])],
        lambda: ['APPEND', k, v],
        lambda: ['STRLEN', k],
        lambda: ['GETRANGE', k, n, str(rng.randint(-5, 5))],
        lambda: ['MGET', k, k2],
        lambda: ['MSET', k, v, k2, v],
        lambda: ['MSETNX', k, v, k2, v],
        lambda: ['DEL', k, k2],
        lambda: ['EXISTS', k, k2],
        lambda: ['TYPE', k],
        # A TTL drawn from a wide range: two EXPIREs of one key with the same
        # seconds would make GT/LT depend on the milliseconds between them.
        lambda: ['EXPIRE', k, rng.choice([str(rng.randint(2, 999999)), '-1'])] + rng.choice([[], ['NX'], ['XX'], ['GT'], ['LT']]),
        lambda: ['PERSIST', k],
        lambda: ['TTL', k],
        lambda: ['RENAME', k, k2],
        lambda: ['RENAMENX', k, k2],
        lambda: ['DBSIZE'],
        lambda: ['HSET', k, rng.choice('fgh'), v],
        lambda: ['HGET', k, rng.choice('fgh')],
        lambda: ['HDEL', k, rng.choice('fgh')],
        lambda: ['HINCRBY', k, rng.choice('fgh'), n],
        lambda: ['HLEN', k],
        lambda: ['ZADD', k, n, rng.choice('abc')],
        lambda: ['ZINCRBY', k, n, rng.choice('abc')],
        lambda: ['ZRANGE', k, '0', '-1', 'WITHSCORES'],
        lambda: ['ZREM', k, rng.choice('abc')],
        lambda: ['ZSCORE', k, rng.choice('abc')],
        lambda: ['ZCARD', k],
        lambda: ['ZRANK', k, rng.choice('abc')],
    ]
    if os.environ.get('SPOOL_KV_TYPES') == 'string':
        choices = [f for f in choices if f()[0][0] not in 'HZ']
    return rng.choice(choices)()


def run_random(p, seed, steps, failures, multi):
    rng = random.Random(seed)
    keys = ['{x}k%d' % i for i in range(6)]
    p.s.execute_command('FLUSHALL')
    p.r.execute_command('FLUSHALL')
    for i in range(steps):
        if multi and rng.random() < 0.08:
            inner = [random_step(rng, keys) for _ in range(rng.randint(0, 4))]
            inner = [x for x in inner if x[0] != 'DBSIZE']  # runs on every shard: refused in MULTI
            block = [['MULTI']] + inner + \
                    [[rng.choice(['EXEC', 'EXEC', 'EXEC', 'DISCARD'])]]
            if rng.random() < 0.3:
                block = [['WATCH', rng.choice(keys)]] + ([random_step(rng, keys)] if rng.random() < 0.5 else []) + block
        else:
            block = [random_step(rng, keys)]
        for args in block:
            same, a, b, args = p.same(args)
            if not same and [x.decode(errors='replace') for x in args] not in KNOWN:
                failures.append('seed %d step %d: %s\n    spool: %r\n    redis: %r' %
                                (seed, i, ' '.join(x.decode(errors='replace') for x in args), a, b))
                run(p.s, ['DISCARD'])
                run(p.r, ['DISCARD'])
                return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--spoold', required=True)
    ap.add_argument('--seeds', type=int, default=int(os.environ.get('SPOOL_KV_SEEDS', '6')))
    ap.add_argument('--steps', type=int, default=int(os.environ.get('SPOOL_KV_STEPS', '2000')))
    ap.add_argument('--no-multi', action='store_true')
    ap.add_argument('--only-cases', action='store_true')
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='spool-kv-')
    sp = rd = None
    failures = []
    passed = 0
    try:
        sp, rd = start_servers(args.spoold, tmp)
        p = Pair(sp, rd)
        passed += run_cases(p, failures)
        passed += run_scan(p, failures)
        passed += run_resp3(sp, rd, failures)
        if not args.only_cases:
            for seed in range(1, args.seeds + 1):
                passed += run_random(p, seed, args.steps, failures, not args.no_multi)
    finally:
        for srv in (sp, rd):
            if srv:
                srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print('FAIL ' + f)
    total = len(CASES) + 2 + (0 if args.only_cases else args.seeds)
    print('%d passed, %d failed' % (passed, total - passed))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
