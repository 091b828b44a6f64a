"""MULTI/EXEC through redis-py (Debian's python3-redis) against spoold:
pipeline(transaction=True) commits all or nothing; keys on two shards are
refused with nothing applied; WATCH aborts with WatchError. Prints
"N passed, N failed"."""
import os
import subprocess
import sys
import tempfile
import time

import redis

sys.path.insert(0, os.path.dirname(__file__))


def slot_of(key):
    k = key.encode()
    o = k.find(b'{')
    if o >= 0:
        c = k.find(b'}', o + 1)
        if c > o + 1:
            k = k[o + 1:c]
    crc = 0
    for b in k:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xffff if crc & 0x8000 else (crc << 1) & 0xffff
    return crc % 16384


def two_shards(prefix, n=2):
    first = prefix + '0'
    for i in range(1, 1000):
        if slot_of(prefix + str(i)) % n != slot_of(first) % n:
            return first, prefix + str(i)
    raise AssertionError('no pair')


def start():
    d = tempfile.mkdtemp(prefix='spool-py-kv-')
    os.mkdir(os.path.join(d, 'data'))
    pf = os.path.join(d, 'port')
    spoold = os.environ.get('SPOOLD') or os.path.join(os.path.dirname(__file__), '../../build-test/broker/spoold')
    p = subprocess.Popen([spoold, '--port', '0', '--port-file', pf, '--data-dir', os.path.join(d, 'data'),
                          '--http-port', '0', '--shards', '2'], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.path.exists(pf) and open(pf).read().endswith('\n'):
            return p, int(open(pf).read())
        time.sleep(0.02)
    p.kill()
    raise SystemExit('spoold did not start')


def test_transaction_commits_all(r):
    with r.pipeline(transaction=True) as p:
        p.lpush('{py:1}', '{"to":"a@example.com"}')
        p.set('{py:1}:sent', '1', nx=True, ex=60)
        assert p.execute() == [1, True]
    assert r.llen('{py:1}') == 1 and r.get('{py:1}:sent') == b'1'


def test_cross_shard_applies_nothing(r):
    a, b = two_shards('pq')
    p = r.pipeline(transaction=True)
    p.lpush(a, '{}')
    p.set(b, '1')
    try:
        p.execute()
        raise AssertionError('EXEC across shards succeeded')
    except redis.exceptions.ResponseError as e:
        assert 'CROSSSLOT' in str(e) or 'EXECABORT' in str(e), str(e)
    assert r.llen(a) == 0 and r.exists(b) == 0


def test_unknown_command_aborts(r):
    p = r.pipeline(transaction=True)
    p.lpush('{pyh}', '{}')
    p.execute_command('NOSUCH', 'x')
    try:
        p.execute()
        raise AssertionError('EXEC with an unknown command succeeded')
    except redis.exceptions.ResponseError:
        pass
    assert r.llen('{pyh}') == 0


def test_watch(r, other):
    r.set('{pw}k', '1')
    with r.pipeline(transaction=True) as p:
        p.watch('{pw}k')
        other.set('{pw}k', '2')
        p.multi()
        p.set('{pw}k', '3')
        try:
            p.execute()
            raise AssertionError('EXEC ran although a watched key changed')
        except redis.exceptions.WatchError:
            pass
    assert r.get('{pw}k') == b'2'


def test_per_command_error(r):
    r.set('{pe}s', 'text')
    with r.pipeline(transaction=True) as p:
        p.incr('{pe}s')
        p.set('{pe}t', 'v')
        res = p.execute(raise_on_error=False)
    assert isinstance(res[0], redis.exceptions.ResponseError) and res[1] is True, res


def main():
    proc, port = start()
    passed = failed = 0
    try:
        r = redis.Redis(port=port)
        other = redis.Redis(port=port)
        tests = [lambda: test_transaction_commits_all(r), lambda: test_cross_shard_applies_nothing(r),
                 lambda: test_unknown_command_aborts(r), lambda: test_watch(r, other),
                 lambda: test_per_command_error(r)]
        names = ['transaction_commits_all', 'cross_shard_applies_nothing', 'unknown_command_aborts', 'watch',
                 'per_command_error']
        for name, t in zip(names, tests):
            try:
                t()
                passed += 1
                print('ok redis-py ' + name)
            except Exception as e:  # noqa: BLE001 - report every failure
                failed += 1
                print('not ok redis-py %s: %r' % (name, e))
    finally:
        proc.terminate()
        proc.wait(10)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
