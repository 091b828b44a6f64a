"""Lua scripts on spool against a real redis-server (Debian's 7.0).

The same EVAL/EVALSHA/SCRIPT commands go to spoold and redis-server and the
replies are compared: over RESP2 (redis-py) and byte for byte over RESP3
(HELLO 3): the conversions of every Lua type to a reply and of every reply
to Lua (redis.setresp(2) and (3)), errors and their texts, redis.pcall,
redis.error_reply/status_reply, the sandbox, cjson. Then spool-only checks
that Redis cannot share: keys on another shard, -BUSY while a script loops
and other shards unaffected, SCRIPT KILL, UNKILLABLE, the memory cap, the
cache (FLUSH, LRU). Ends with "N passed, N failed".
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'kv'))
import redis  # noqa: E402
from differential import Raw, Server, start_servers, wait_for  # noqa: E402

K = '{t}a'
K2 = '{t}b'

# Each case: (script, keys, args). Run as EVAL on both servers.
CASES = [
    ("return 1", [], []),
    ("return 3.99", [], []),
    ("return -3.5", [], []),
    ("return 'str'", [], []),
    ("return true", [], []),
    ("return false", [], []),
    ("return nil", [], []),
    ("return {}", [], []),
    ("return {1, 2, {3, 'x', {true, false}}, 'y'}", [], []),
    ("return {1, nil, 3}", [], []),
    ("return {ok='FINE'}", [], []),
    ("return {err='MYERR something'}", [], []),
    ("return {err='no code'}", [], []),
    ("return redis.error_reply('E2 bad thing')", [], []),
    ("return redis.error_reply('-E3 dashed')", [], []),
    ("return redis.error_reply('nospace')", [], []),
    ("return redis.status_reply('DONE')", [], []),
    ("return {double=3.25}", [], []),
    ("return {map={a=1}}", [], []),
    ("return {set={x=true}}", [], []),
    ("return {big_number='123456789012345678901234567890'}", [], []),
    ("return KEYS", [K, K2], ['x', 'y']),
    ("return ARGV", [K], ['1', '2', '']),
    ("return #KEYS + #ARGV", [K, K2], ['a']),
    ("return redis.call('set', KEYS[1], ARGV[1])", [K], ['v']),
    ("redis.call('set', KEYS[1], 'v') return redis.call('get', KEYS[1])", [K], []),
    ("return redis.call('get', KEYS[1])", ['{t}missing'], []),
    ("return type(redis.call('get', KEYS[1]))", ['{t}missing'], []),
    ("return redis.call('incrby', KEYS[1], 5)", ['{t}n'], []),
    ("return redis.call('incrbyfloat', KEYS[1], 1.5)", ['{t}f'], []),
    ("return redis.call('set', KEYS[1], 3.0)", [K], []),
    ("redis.call('set', KEYS[1], 0.1) return redis.call('get', KEYS[1])", [K], []),
    ("return redis.call('hset', KEYS[1], 'f', 'v')", ['{t}h'], []),
    ("return redis.call('hgetall', KEYS[1])", ['{t}h'], []),
    ("return redis.call('zadd', KEYS[1], 1, 'a', 2.5, 'b')", ['{t}z'], []),
    ("return redis.call('zrange', KEYS[1], 0, -1, 'WITHSCORES')", ['{t}z'], []),
    ("return redis.call('zscore', KEYS[1], 'b')", ['{t}z'], []),
    ("return redis.call('ping')", [], []),
    ("return redis.call('exists', KEYS[1], KEYS[2])", [K, '{t}none'], []),
    ("return redis.call('pexpire', KEYS[1], 100000)", [K], []),
    ("return redis.call('ttl', KEYS[1])", [K], []),
    ("return redis.call('del', KEYS[1])", [K], []),
    ("return redis.call('getdel', KEYS[1])", ['{t}none'], []),
    ("redis.call('set', KEYS[1], 'x') return redis.call('incr', KEYS[1])", [K], []),
    ("redis.call('set', KEYS[1], 'x') return redis.pcall('incr', KEYS[1])", [K], []),
    ("local r = redis.pcall('incr', KEYS[1]) return type(r) .. ':' .. r.err", [K], []),
    ("return redis.pcall('nosuchcmd')", [], []),
    ("return redis.call('nosuchcmd')", [], []),
    ("return redis.call('get')", [], []),
    ("return redis.call()", [], []),
    ("return redis.call('set', KEYS[1], {})", [K], []),
    ("return redis.call('hset', KEYS[1], 'f', 'v') .. redis.call('get', KEYS[1])", ['{t}h2'], []),
    ("error('boom')", [], []),
    ("error({err='TABLE err'})", [], []),
    ("error()", [], []),
    ("local t = {} t.x.y = 1", [], []),
    ("return undefined_global", [], []),
    ("newglobal = 1", [], []),
    ("redis = nil", [], []),
    ("redis.call = nil", [], []),
    ("string.rep = nil", [], []),
    ("rawset(_G, 'x', 1)", [], []),
    ("setmetatable(_G, nil)", [], []),
    ("return os", [], []),
    ("return io", [], []),
    ("return loadfile", [], []),
    ("return dofile", [], []),
    ("return require", [], []),
    ("return type(loadstring)", [], []),
    ("this is not lua", [], []),
    ("return 1 +", [], []),
    ("return cjson.encode({1, 2, 3})", [], []),
    ("return cjson.encode({a={b='c'}})", [], []),
    ("return cjson.encode('x\"y')", [], []),
    ("return cjson.encode(1.5)", [], []),
    ("return cjson.encode({})", [], []),
    ("local t = cjson.decode('{\"a\":[1,2,{\"b\":null}],\"c\":true}') return {t.a[1], t.a[2], tostring(t.a[3].b), tostring(t.c)}", [], []),
    ("return cjson.decode('[1,2,3]')", [], []),
    ("return cjson.decode('{bad json')", [], []),
    ("return cjson.decode('\"\\\\u00e9\"')", [], []),
    ("return {bit.band(12, 10), bit.bor(1, 2), bit.bxor(5, 3), bit.bnot(0), bit.tohex(255), bit.tohex(-1, 4)}", [], []),
    ("return {bit.lshift(1, 40), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.rol(1, 33), bit.tobit(2^32 + 7)}", [], []),
    ("bit.band = nil", [], []),
    ("return redis.sha1hex('')", [], []),
    ("return redis.sha1hex('hello world')", [], []),
    ("return redis.sha1hex()", [], []),
    ("return string.format('%d-%s', 5, 'x')", [], []),
    ("return table.concat({'a','b'}, ',')", [], []),
    ("return math.floor(7.9)", [], []),
    ("return tonumber('12') + 1", [], []),
    ("return tostring(nil)", [], []),
    ("local ok, e = pcall(function() error('inner') end) return e", [], []),
    ("local ok, e = pcall(function() redis.call('nosuch') end) return e", [], []),
    ("redis.setresp(3) return redis.call('hgetall', KEYS[1])", ['{t}h'], []),
    ("redis.setresp(3) return redis.call('get', KEYS[1])", ['{t}missing'], []),
    ("redis.setresp(3) return type(redis.call('get', KEYS[1]))", ['{t}missing'], []),
    ("redis.setresp(3) local r = redis.call('zscore', KEYS[1], 'b') return r.double", ['{t}z'], []),
    ("redis.setresp(3) return redis.call('zscore', KEYS[1], 'b')", ['{t}z'], []),
    ("redis.setresp(4)", [], []),
    ("return redis.setresp()", [], []),
    ("redis.log(redis.LOG_WARNING, 'from a script') return 1", [], []),
    ("return redis.log(redis.LOG_WARNING)", [], []),
    ("return redis.LOG_NOTICE", [], []),
    ("return redis.call('lpush', KEYS[1], '{\"n\":1}')", ['{t}q'], []),
    ("return redis.call('llen', KEYS[1])", ['{t}q'], []),
    ("return redis.call('rpop', KEYS[1])", ['{t}q'], []),
    ("return redis.call('blpop', KEYS[1], 0)", ['{t}q'], []),
    ("return redis.call('multi')", [], []),
    ("return redis.call('eval', 'return 1', 0)", [], []),
    ("return redis.call('subscribe', 'x')", [], []),
    ("return redis.call('publish', 'nobody', 'x')", [], []),
]

EVAL_RO = [
    ("return redis.call('get', KEYS[1])", [K], []),
    ("return redis.call('set', KEYS[1], 'x')", [K], []),
]


def args_of(cmd, script, keys, args):
    return [cmd, script, str(len(keys))] + keys + args


class Pair:
    def __init__(self, sp, rd):
        self.s = sp.client()
        self.r = rd.client()


def run(c, args):
    try:
        v = c.execute_command(*args)
        return v
    except redis.exceptions.ResponseError as e:
        return ('ERR', str(e))


def check(name, a, b, failures):
    if a == b:
        return True
    failures.append('%s\n    spool: %r\n    redis: %r' % (name, a, b))
    return False


def run_cases(p, failures):
    passed = 0
    for cmd, cases in (('EVAL', CASES), ('EVAL_RO', EVAL_RO)):
        for script, keys, args in cases:
            a = run(p.s, args_of(cmd, script, keys, args))
            b = run(p.r, args_of(cmd, script, keys, args))
            passed += check('%s %s' % (cmd, script), a, b, failures)
    return passed


def run_resp3(sp, rd, failures):
    s, r = Raw(sp.client_kw()), Raw(rd.client_kw())
    s.cmd('HELLO', '3')
    r.cmd('HELLO', '3')
    passed = 0
    for script, keys, args in CASES:
        a = s.cmd(*args_of('EVAL', script, keys, args))
        b = r.cmd(*args_of('EVAL', script, keys, args))
        passed += check('RESP3 EVAL %s' % script, a, b, failures)
    return passed


def run_cache(p, failures):
    """EVALSHA, SCRIPT LOAD/EXISTS/FLUSH on both servers."""
    body = "return 'cached ' .. ARGV[1]"
    steps = [
        ['SCRIPT', 'FLUSH'],
        ['EVALSHA', 'ffffffffffffffffffffffffffffffffffffffff', '0'],
        ['EVALSHA', 'short', '0'],
        ['SCRIPT', 'LOAD', body],
        ['EVALSHA', '__SHA__', '0', 'x'],
        ['EVALSHA', '__SHA__'.upper(), '0', 'x'],
        ['EVALSHA_RO', '__SHA__', '0', 'y'],
        ['SCRIPT', 'EXISTS', '__SHA__', 'ffffffffffffffffffffffffffffffffffffffff'],
        ['SCRIPT', 'LOAD', 'not lua at all'],
        ['EVAL', "return 'via eval'", '0'],
        ['SCRIPT', 'EXISTS', '__EVALSHA__'],
        ['EVALSHA', '__EVALSHA__', '0'],
        ['SCRIPT', 'FLUSH'],
        ['SCRIPT', 'EXISTS', '__SHA__', '__EVALSHA__'],
        ['EVALSHA', '__SHA__', '0', 'x'],
        ['SCRIPT', 'KILL'],
        ['SCRIPT', 'NOPE'],
        ['EVAL', 'return 1', 'x'],
        ['EVAL', 'return 1', '-1'],
        ['EVAL', 'return 1', '2', 'a'],
    ]
    import hashlib
    sha = hashlib.sha1(body.encode()).hexdigest()
    esha = hashlib.sha1(b"return 'via eval'").hexdigest()
    passed = 0
    for st in steps:
        st = [x.replace('__SHA__'.upper(), sha.upper()).replace('__SHA__', sha).replace('__EVALSHA__', esha)
              for x in st]
        a, b = run(p.s, st), run(p.r, st)
        passed += check(' '.join(st), a, b, failures)
    return passed


# ------------------------------------------------------- ACL in scripts

# The caller's ACL rules hold for every redis.call/redis.pcall. Users made
# the same way on both servers; keys with one {hash tag} so that spool runs
# the script on their shard. Redis 7.0 words the refusal "ERR The user
# executing the script can't ..."; spool answers as Redis 7.2 does, -NOPERM
# naming the user and the command or key (as its dispatcher does). Both
# must refuse, change nothing, and give redis.pcall an error table.
ACL_USERS = [
    ('keyuser', ['on', '>kp', '+eval', '+set', '+get', '~{t}allowed*']),
    ('cmduser', ['on', '>cp', '+eval', '-set', '+get', '~{t}allowed*']),
    ('chanuser', ['on', '>hp', '+eval', '+publish', '&ok*']),
]
A, D = '{t}allowed1', '{t}denied'
ACL_CASES = [
    # (user, password, script, keys, args, spool's error must contain, or None: allowed)
    ('keyuser', 'kp', "return redis.call('set', KEYS[1], 'v')", [A], [], None),
    ('keyuser', 'kp', "return redis.call('set', ARGV[1], 'v')", [A], [D], ["NOPERM", "user keyuser", "'" + D + "'"]),
    ('keyuser', 'kp', "return redis.call('get', ARGV[1])", [A], [D], ["NOPERM", "user keyuser", "'" + D + "'"]),
    ('keyuser', 'kp', "local r = redis.pcall('set', ARGV[1], 'v') return r['err']", [A], [D],
     ["NOPERM", "user keyuser", "'" + D + "'"]),
    ('keyuser', 'kp', "return redis.call('del', ARGV[1])", [A], [D], ["NOPERM", "User keyuser", "'del' command"]),
    ('keyuser', 'kp', "return redis.call('get', KEYS[1])", [D], [], ["NOPERM", "'" + D + "'"]),
    ('cmduser', 'cp', "return redis.call('set', KEYS[1], 'v')", [A], [], ["NOPERM", "User cmduser", "'set' command"]),
    ('cmduser', 'cp', "local r = redis.pcall('set', KEYS[1], 'v') return r['err']", [A], [],
     ["NOPERM", "User cmduser", "'set' command"]),
    ('cmduser', 'cp', "return redis.call('get', KEYS[1])", [A], [], None),
    ('chanuser', 'hp', "return redis.call('publish', 'okx', 'm')", [], [], None),
    ('chanuser', 'hp', "return redis.call('publish', 'other', 'm')", [], [], ["NOPERM", "user chanuser", "'other'"]),
]


def run_typed(c, args):
    """As run(), with the NOPERM code redis-py takes off the text put back."""
    try:
        return c.execute_command(*args)
    except redis.exceptions.NoPermissionError as e:
        return ('ERR', 'NOPERM ' + str(e))
    except redis.exceptions.ResponseError as e:
        return ('ERR', str(e))


def refusal_text(v):
    """The text of an error reply, or of pcall's err field; None otherwise."""
    if isinstance(v, tuple) and v[0] == 'ERR':
        return v[1]
    if isinstance(v, bytes) and v != b'OK':
        return v.decode(errors='replace')
    return None


def run_acl(sp, rd, failures):
    """Scripts of ACL users on both servers: allowed calls agree, denied ones
    are refused by both and change nothing."""
    admins = (sp.client(), rd.client())
    for c in admins:
        for name, rules in ACL_USERS:
            c.execute_command('ACL', 'SETUSER', name, 'reset', *rules)
        c.delete(A, D)
        c.set(D, 'before')
    passed = 0
    for user, pw, script, keys, args, want in ACL_CASES:
        name = 'ACL %s: EVAL %s %r %r' % (user, script, keys, args)
        a, b = [run_typed(redis.Redis(username=user, password=pw, socket_timeout=10, **srv.client_kw()),
                    args_of('EVAL', script, keys, args)) for srv in (sp, rd)]
        if want is None:
            passed += check(name, a, b, failures)
            continue
        ta, tb = refusal_text(a), refusal_text(b)
        ok = ta is not None and tb is not None and all(w in ta for w in want)
        ok = ok and ('NOPERM' in tb or "can't" in tb) and [c.get(D) for c in admins] == [b'before', b'before']
        passed += 1 if ok else check(name, a, ('refused by both, naming %s; %s unchanged' % (want, D), b), failures)
    for c in admins:
        for name, _ in ACL_USERS:
            c.execute_command('ACL', 'DELUSER', name)
    return passed


# ------------------------------------------------------------ spool only

def spool_only(spoold, tmp, failures):
    """Checks Redis cannot share: shards, BUSY, KILL, memory cap, LRU."""
    port_file = os.path.join(tmp, 'only.port')
    data = os.path.join(tmp, 'only-data')
    os.mkdir(data)
    proc = subprocess.Popen([spoold, '--port', '0', '--port-file', port_file, '--data-dir', data, '--shards', '2',
                             '--http-port', '0', '--busy-script-time', '300', '--script-memory', '4mb',
                             '--script-cache-size', '3'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []

    def ok(name, cond, detail=''):
        results.append(cond)
        if not cond:
            failures.append('spool: %s %s' % (name, detail))

    try:
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().endswith('\n'), 'spoold')
        port = int(open(port_file).read())

        def cl():
            return redis.Redis(port=port, socket_timeout=20)
        c = cl()
        # two keys, one on each shard
        keys = {}
        for i in range(100):
            k = 'k%d' % i
            sh = c.execute_command('EVAL', "return 1", 1, k)  # noqa: F841 (routes only)
            keys.setdefault(len(keys), k)
        a = 'k0'
        other = None
        for i in range(1, 100):
            k = 'k%d' % i
            try:
                c.execute_command('EVAL', "return redis.call('get', ARGV[1])", 1, a, k)
            except redis.exceptions.ResponseError as e:
                other = k
                ok('a key on another shard is named in the error', "'%s'" % k in str(e) and 'shard' in str(e), str(e))
                break
        ok('some key lives on the other shard', other is not None)
        try:
            c.execute_command('EVAL', 'return 1', 2, a, other)
            ok('KEYS on two shards: CROSSSLOT', False)
        except redis.exceptions.ResponseError as e:
            ok('KEYS on two shards: CROSSSLOT', str(e).startswith('CROSSSLOT'), str(e))

        # a script that loops forever: BUSY on its shard, the other shard works, SCRIPT KILL ends it
        out = {}

        def loop():
            try:
                cl().execute_command('EVAL', 'while true do end', 1, a)
                out['r'] = 'returned'
            except redis.exceptions.ResponseError as e:
                out['r'] = str(e)
        t = threading.Thread(target=loop)
        t.start()
        d = cl()
        busy = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # a GET sent before busy-script-time waits behind the script:
            # each try is a fresh connection that gives up after 0.2 s
            try:
                redis.Redis(port=port, socket_timeout=0.2).get(a)
            except redis.exceptions.TimeoutError:
                continue
            except redis.exceptions.ResponseError as e:
                busy = str(e)
                break
        ok('-BUSY on the looping shard', busy is not None and busy.startswith('BUSY'), repr(busy))
        t0 = time.monotonic()
        d.set(other, 'works')
        ok('the other shard answers while a script loops', d.get(other) == b'works' and time.monotonic() - t0 < 1)
        ok('SCRIPT KILL', d.execute_command('SCRIPT', 'KILL') in (b'OK', 'OK', True))
        t.join(10)
        ok('the killed script ends with an error', 'Script killed by user with SCRIPT KILL' in out.get('r', ''),
           repr(out))
        ok('the shard answers after the kill', d.set(a, 'after') and d.get(a) == b'after')
        try:
            d.execute_command('SCRIPT', 'KILL')
            ok('NOTBUSY', False)
        except redis.exceptions.ResponseError as e:
            ok('NOTBUSY', str(e).startswith('NOTBUSY'), str(e))
        # pcall cannot hold the kill off
        out.clear()

        def loop_pcall():
            try:
                cl().execute_command('EVAL', 'while true do pcall(function() while true do end end) end', 1, a)
            except redis.exceptions.ResponseError as e:
                out['r'] = str(e)
        t = threading.Thread(target=loop_pcall)
        t.start()
        deadline = time.monotonic() + 10
        killed = False
        while time.monotonic() < deadline and not killed:
            try:
                killed = d.execute_command('SCRIPT', 'KILL') in (b'OK', 'OK', True)
            except redis.exceptions.ResponseError:
                time.sleep(0.01)
        t.join(10)
        ok('a script inside pcall is killed too', not t.is_alive() and 'killed' in out.get('r', ''), repr(out))

        # the memory cap
        try:
            d.execute_command('EVAL', "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end", 1, a)
            ok('memory cap', False)
        except redis.exceptions.ResponseError as e:
            ok('memory cap ends the script', 'not enough memory' in str(e), str(e))
        ok('the shard still runs scripts after hitting the cap', d.execute_command('EVAL', 'return 7', 1, a) == 7)

        # the cache: EVAL keeps 3 (LRU), SCRIPT LOAD keeps its own
        import hashlib
        loaded = d.execute_command('SCRIPT', 'LOAD', 'return 0')
        shas = []
        for i in range(5):
            body = 'return %d' % (i + 1)
            d.execute_command('EVAL', body, 0)
            shas.append(hashlib.sha1(body.encode()).hexdigest())
        ex = d.execute_command('SCRIPT', 'EXISTS', loaded, *shas)
        ok('LRU: the 3 newest EVAL scripts and the loaded one stay', ex == [1, 0, 0, 1, 1, 1], repr(ex))

        # a script that wrote cannot be killed; kill -9 then loses none of what was committed
        d.set(a, 'before')
        t = threading.Thread(target=lambda: cl().execute_command(
            'EVAL', "redis.call('set', KEYS[1], 'during') while true do end", 1, a) if False else None)
        s = socket.create_connection(('127.0.0.1', port))
        body = b"redis.call('set', KEYS[1], 'during') while true do end"
        s.sendall(b'*4\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n1\r\n$%d\r\n%s\r\n' % (len(body), body, len(a), a.encode()))
        deadline = time.monotonic() + 10
        un = None
        while time.monotonic() < deadline:
            try:
                d.execute_command('SCRIPT', 'KILL')
            except redis.exceptions.ResponseError as e:
                if str(e).startswith('UNKILLABLE'):
                    un = str(e)
                    break
            time.sleep(0.01)
        ok('a script that wrote is UNKILLABLE', un is not None, repr(un))
        proc.kill()
        proc.wait()
        s.close()
        proc = subprocess.Popen([spoold, '--port', '0', '--port-file', port_file, '--data-dir', data, '--shards',
                                 '2', '--http-port', '0'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.unlink(port_file)
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().endswith('\n'), 'spoold again')
        port = int(open(port_file).read())
        ok('after kill -9 the value committed before the script is there, none of the script',
           cl().get(a) == b'before', repr(cl().get(a)))
    finally:
        proc.kill()
        proc.wait()
    return sum(results), len(results)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--spoold', required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='spool-scripts-')
    sp = rd = None
    failures = []
    passed = total = 0
    try:
        sp, rd = start_servers(args.spoold, tmp)
        p = Pair(sp, rd)
        for cl in (p.s, p.r):
            cl.execute_command('FLUSHALL')
        passed += run_cases(p, failures)
        passed += run_resp3(sp, rd, failures)
        passed += run_cache(p, failures)
        passed += run_acl(sp, rd, failures)
        total = len(CASES) + len(EVAL_RO) + len(CASES) + 20 + len(ACL_CASES)
        sp.stop()
        rd.stop()
        sp = rd = None
        a, n = spool_only(args.spoold, tmp, failures)
        passed += a
        total += n
    finally:
        for srv in (sp, rd):
            if srv:
                srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print('FAIL ' + f)
    print('%d passed, %d failed' % (passed, total - passed))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
