"""Leadership transfer in a replication group of three spoold, driven by
redis-py (docs/replication.md, "Planned restart").

Checks: REPLICA.TRANSFER under load from several clients loses no
acknowledged push and undoes no acknowledged ack; a named node takes over
(spool cluster transfer-leader GROUP NODE); a transfer to a silent node,
to a non-member, to the leader itself, through a follower, or in a group
with no other member is refused with a clear error and the leader keeps
serving. A node is silent once the leader has not heard from it for
longer than the election timeout: one SIGSTOPped that long is refused at
once, naming when it was last heard; one SIGSTOPped for less, and behind
the group, is live: it is accepted, catches up and leads. A leader
stopped with SIGTERM hands the leadership over first (its log says so)
and the write pause of such a planned restart is measured (p50/max),
beside the SIGKILL failover of failover.py. Ends with "N passed, N
failed".

  /usr/bin/python3 transfer.py --spoold PATH --spool PATH [--cluster] [--restarts N] [--transfers N] [--compare-kills N]
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import redis

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from failover import (ELECTION_MS, Group, Load, Suite, check_load, ended, failovers,  # noqa: E402
                      free_port, journals_equal, pct, run_loads, settle)


def replica_role(g, i):
    try:
        return g.client(i).info("replication").get("replica_role")
    except (redis.ConnectionError, redis.TimeoutError):
        return None


def transfers_under_load(suite, g, n, seconds):
    """REPLICA.TRANSFER on the leader, n times, while four clients push and consume."""
    done = []

    def body():
        for k in range(n):
            time.sleep(seconds)
            lead = g.leader()
            t0 = time.monotonic()
            rep = g.client(lead).execute_command("REPLICA.TRANSFER").decode()
            done.append((lead, rep, time.monotonic() - t0))
            print(f"# transfer {k + 1}: node {lead}: {rep} ({done[-1][2] * 1000:.0f} ms)")
        time.sleep(seconds)
    merged = run_loads(g, [Load(g, first=k * 1000000) for k in range(4)], body)
    moved = [d for d in done if d[1].startswith("node ") and f"node {d[0]} " not in d[1]]
    suite.check(f"REPLICA.TRANSFER under load hands the leadership to another node ({n} times)", len(moved) == n,
                f"{done}")
    check_load(suite, merged, " (transfers under load)")
    unknown = len(merged.unknown_push)
    print(f"# {unknown} push(es) with an unknown outcome across {n} transfers")
    journals_equal(suite, g, "after the transfers")


def named_transfer(suite, g, spool):
    """spool cluster transfer-leader GROUP NODE: the named follower leads."""
    lead = g.leader()
    target = next(i for i in sorted(g.procs) if i != lead)
    r = subprocess.run([spool, "cluster", "transfer-leader", f"127.0.0.1:{g.ports[lead]}", str(target)],
                       capture_output=True, text=True, timeout=60)
    print("# " + (r.stdout + r.stderr).strip().replace("\n", "\n# "))
    now = g.leader()
    suite.check(f"spool cluster transfer-leader GROUP {target}: node {target} leads", r.returncode == 0 and
                now == target and f"node {target} leads the group now" in r.stdout, f"rc {r.returncode}, leader {now}")
    # by client address, back to the first leader, through a follower's address
    r = subprocess.run([spool, "cluster", "transfer-leader", f"127.0.0.1:{g.ports[lead]}",
                        f"127.0.0.1:{g.ports[lead]}"], capture_output=True, text=True, timeout=60)
    now = g.leader()
    suite.check(f"spool cluster transfer-leader GROUP HOST:PORT: node {lead} leads again",
                r.returncode == 0 and now == lead, f"rc {r.returncode}, leader {now}: " +
                (r.stdout + r.stderr).strip().replace("\n", " | "))


def expect_error(suite, name, fn, want):
    try:
        rep = fn()
        suite.check(name, False, f"answered {rep!r}")
    except redis.ResponseError as e:
        suite.check(name, want in str(e), str(e))


def refusals(suite, g, spool):
    """Transfers that cannot be done are refused, naming why; the leader keeps serving."""
    settle(g)
    lead = g.leader()
    fol = [i for i in sorted(g.procs) if i != lead]
    c = g.client(lead)
    expect_error(suite, "REPLICA.TRANSFER through a follower names the leader",
                 lambda: g.client(fol[0]).execute_command("REPLICA.TRANSFER"),
                 f"does not lead its replication group: send REPLICA.TRANSFER to the leader (127.0.0.1:{g.ports[lead]})")
    expect_error(suite, "REPLICA.TRANSFER to a non-member is refused",
                 lambda: c.execute_command("REPLICA.TRANSFER", "9"), "node 9 is not a member of the group")
    expect_error(suite, "REPLICA.TRANSFER to the leader itself is refused",
                 lambda: c.execute_command("REPLICA.TRANSFER", str(lead)), f"node {lead} leads the group already")
    expect_error(suite, "REPLICA.TRANSFER with a bad id is refused",
                 lambda: c.execute_command("REPLICA.TRANSFER", "x"), "the node id must be a number from 1 to 255")
    stale = fol[1]
    g.procs[stale].send_signal(signal.SIGSTOP)
    try:
        for k in range(50):  # the group commits these without the stopped node
            c.execute_command("JOB.PUSH", "refq", '{"k":%d}' % k)
        # stopped for less than the election timeout a node counts as live (a
        # transfer to it would wait for it); once the leader has not heard from
        # it for longer, it is silent and refused
        ago = heard_until(g, lead, stale, ELECTION_MS * 2)
        expect_error(suite, f"REPLICA.TRANSFER to node {stale}, SIGSTOPped and not heard for {ago} ms (election "
                     f"timeout {ELECTION_MS} ms), is refused as silent, saying when it was last heard",
                     lambda: c.execute_command("REPLICA.TRANSFER", str(stale)),
                     f"node {stale} is silent (last heard by this leader ")
        r = subprocess.run([spool, "cluster", "transfer-leader", f"127.0.0.1:{g.ports[fol[0]]}", str(stale)],
                           capture_output=True, text=True, timeout=60)
        suite.check("spool cluster transfer-leader to a silent node: refused at once, exit 1, naming it and the fix",
                    r.returncode == 1 and f"node {stale} is silent" in r.stderr and "start or reconnect it" in r.stderr,
                    r.stderr.strip())
        r = subprocess.run([spool, "cluster", "replicas", f"127.0.0.1:{g.ports[lead]}"], capture_output=True,
                           text=True, timeout=60)
        line = next((x for x in r.stdout.splitlines() if f"node {stale} " in x), "")
        suite.check(f"spool cluster replicas shows when node {stale} was last heard", "last heard " in line, line)
        ok = c.execute_command("JOB.PUSH", "refq", '{"after":1}')
        suite.check("the leader still serves after a refused transfer", bool(ok) and g.leader() == lead,
                    f"leader now {g.leader()}")
    finally:
        g.procs[stale].send_signal(signal.SIGCONT)
    settle(g)


def heard_until(g, lead, i, ms, within=20.0):
    """Polls the leader's REPLICA.MEMBERS until it last heard from node i
    more than ms ago; returns that age in ms."""
    end = time.monotonic() + within
    while True:
        text = g.client(lead).execute_command("REPLICA.MEMBERS")
        text = text.decode() if isinstance(text, bytes) else text
        row = next((x.split() for x in text.splitlines() if x.split()[0] == str(i)), [])
        ago = int(row[6]) if len(row) > 6 and row[6] != "-" else None
        if (ago is not None and ago > ms) or time.monotonic() > end:
            return ago
        time.sleep(0.05)


def log_since(g, i, since):
    with open(os.path.join(g.root, f"node-{i}.log"), errors="replace") as fh:
        fh.seek(since)
        return fh.read()


def lagging_transfer(g, spool, lead, late):
    """SIGSTOPs node late, commits a few pushes without it, asks the CLI to
    hand it the leadership and resumes it once the leader took the request
    (its log says so). Returns (cli, its output, the leader's log line)."""
    logf = os.path.join(g.root, f"node-{lead}.log")
    since = os.path.getsize(logf)
    want = f"handing the leadership over to node {late} "
    g.procs[late].send_signal(signal.SIGSTOP)
    try:
        c = g.client(lead)
        for k in range(5):  # committed by the leader and the other follower
            c.execute_command("JOB.PUSH", "lateq", '{"k":%d}' % k)
        cli = subprocess.Popen([spool, "cluster", "transfer-leader", f"127.0.0.1:{g.ports[lead]}", str(late)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 20
        while want not in log_since(g, lead, since) and cli.poll() is None and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        g.procs[late].send_signal(signal.SIGCONT)
    out, err = cli.communicate(timeout=60)
    line = next((x for x in log_since(g, lead, since).splitlines() if want in x), "")
    return cli, out + err, line


def catch_up(suite, g, spool):
    """spool cluster transfer-leader to a live follower behind the group: the
    leader takes it, libraft sends it the rest of the log, then it leads."""
    settle(g)
    lead = g.leader()
    late = next(i for i in sorted(g.procs) if i != lead)
    for attempt in range(3):
        cli, text, line = lagging_transfer(g, spool, lead, late)
        if f"node {late} is silent" not in text:
            break
        # the leader did not hear from it within the election timeout before
        # the request came (a loaded machine): not the rule under test
        print(f"# attempt {attempt + 1}: node {late} went silent before the request reached the leader; again")
        settle(g)
    now = g.leader()
    nums = [int(x) for x in line.split("holds the log to ")[-1].replace(",", " ").replace(")", " ").split()
            if x.isdigit()][:2] if line else []
    behind = len(nums) == 2 and nums[0] < nums[1]
    held = f"held the log to {nums[0]} of {nums[1]}" if len(nums) == 2 else "no hand-over logged"
    suite.check(f"spool cluster transfer-leader to node {late}, live but behind when asked ({held}), "
                f"is accepted, catches up and leads", behind and cli.returncode == 0 and now == late and
                f"node {late} leads the group now" in text, f"rc {cli.returncode}, leader {now}: " +
                text.strip().replace("\n", " | "))
    settle(g)


def lone_node(suite, spoold, root):
    """A group of one member has no follower to hand over to."""
    p = free_port()
    d = os.path.join(root, "lone")
    os.makedirs(d)
    log = open(os.path.join(root, "lone.log"), "ab")
    proc = subprocess.Popen([spoold, "--port", str(p), "--http-port", "0", "--data-dir", d, "--replica-id", "1",
                             "--replica-peers", f"1=127.0.0.1:{p + 10000}/127.0.0.1:{p}"], stdout=log, stderr=log)
    log.close()
    try:
        c = redis.Redis(port=p, socket_timeout=10)
        end, role = time.monotonic() + 20, None
        while role != "leader" and time.monotonic() < end:
            try:
                role = c.info("replication").get("replica_role")
            except redis.ConnectionError:
                time.sleep(0.05)
        expect_error(suite, "REPLICA.TRANSFER in a group of one: no follower can take over",
                     lambda: c.execute_command("REPLICA.TRANSFER"), "no follower can take over")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        with open(os.path.join(root, "lone.log"), errors="replace") as fh:
            text = fh.read()
        suite.check("a lone leader stopped with SIGTERM stops anyway, saying why (logged)",
                    rc == 0 and "stopping without handing the leadership over" in text, f"rc {rc}")
    finally:
        if proc.poll() is None:
            proc.kill()


def planned_restarts(suite, g, restarts, seconds, max_pause):
    """SIGTERM of the leader under load, then its restart: the write pause
    (the longest gap between acknowledged pushes of one client from the
    SIGTERM until a push was acknowledged after the old leader exited)."""
    load = Load(g)
    pauses, handed = [], 0
    for k in range(restarts):
        settle(g)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            load.step()
        victim = g.leader()
        logf = os.path.join(g.root, f"node-{victim}.log")
        since = os.path.getsize(logf)
        p = g.procs.pop(victim)
        last = time.monotonic()
        p.send_signal(signal.SIGTERM)
        worst, give_up = 0.0, time.monotonic() + 60
        while time.monotonic() < give_up:
            ok = load.push()
            now = time.monotonic()
            if ok:
                worst, last = max(worst, now - last), now
                if p.poll() is not None:
                    break
        rc = p.wait(timeout=30)
        pauses.append(worst)
        with open(logf, errors="replace") as fh:
            fh.seek(since)
            tail = fh.read()  # what it logged since the SIGTERM
        over = "leads the group now" in tail and "stopping without handing" not in tail
        handed += over and rc == 0
        print(f"# planned restart {k + 1}: SIGTERM to leader {victim} (exit {rc}), "
              f"{'handed over' if over else 'NOT handed over'}; longest write pause {worst * 1000:.0f} ms")
        g.start(victim)
    check_load(suite, load, " (planned restarts)")
    print(f"# write pause at a planned restart (SIGTERM of the leader, hand-over): p50 {pct(pauses, .5) * 1000:.0f} ms, "
          f"p99 {pct(pauses, .99) * 1000:.0f} ms, max {max(pauses) * 1000:.0f} ms over {restarts} restarts "
          f"(election timeout {ELECTION_MS} ms)")
    suite.check(f"a leader stopped with SIGTERM hands the leadership over first ({restarts} times, logged)",
                handed == restarts, f"{handed} of {restarts}")
    suite.check(f"writes resume within {max_pause:g} s of a planned restart", max(pauses) < max_pause,
                f"max pause {max(pauses):.2f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spoold", required=True)
    ap.add_argument("--spool", required=True, help="the spool CLI (spool cluster transfer-leader)")
    ap.add_argument("--restarts", type=int, default=4, help="planned restarts (SIGTERM of the leader)")
    ap.add_argument("--transfers", type=int, default=4, help="REPLICA.TRANSFER under load")
    ap.add_argument("--seconds", type=float, default=1.0, help="load between transfers and restarts")
    ap.add_argument("--max-pause", type=float, default=1.0, help="the write pause allowed at a planned restart, s")
    ap.add_argument("--compare-kills", type=int, default=0,
                    help="then as many SIGKILLs of the leader (failover.py's measure), for a paired comparison")
    ap.add_argument("--cluster", action="store_true",
                    help="cluster mode (spoold --cluster yes, one group holding every slot, redis-py RedisCluster)")
    a = ap.parse_args()
    suite = Suite()
    root = tempfile.mkdtemp(prefix="spool-transfer-")
    g = Group(a.spoold, root, a.spool if a.cluster else None)
    error = None
    try:
        lone_node(suite, a.spoold, root)
        g.start_group()
        refusals(suite, g, a.spool)
        named_transfer(suite, g, a.spool)
        catch_up(suite, g, a.spool)
        transfers_under_load(suite, g, a.transfers, a.seconds)
        planned_restarts(suite, g, a.restarts, a.seconds, a.max_pause)
        journals_equal(suite, g, "after the planned restarts")
        if a.compare_kills:
            failovers(suite, g, a.compare_kills, a.seconds, 3.0)
    except Exception as e:  # a failed step fails the suite, with its reason
        error = e
    return ended(suite, g, root, error)


if __name__ == "__main__":
    sys.exit(main())
