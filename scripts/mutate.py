"""Runs the mutants of tests/mutants.txt (see scripts/mutate and docs/testing.md).

Each mutant names a file, an optional anchor (`after:`, unique text that
comes before the line), the exact text to replace (`from:`, unique in the
file, or the first occurrence after the anchor) and its replacement (`to:`).
When the named file no longer holds the text (the function moved), the
text is looked for in every C file under broker/ proto/ worker-sdk/ cli/; a
mutant found nowhere, or in more than one place, is "not applied", which
counts as a failure so that the list is kept current.

The sources are copied once per slot (at most two slots work at once) into
/tmp/spool-mutate.XXXX/slot-N; a mutant is written into its slot's copy,
only the targets its tests need are rebuilt (ninja rebuilds the one changed
file and relinks), its tests run with SPOOLD and SPOOL_CLI pointing at the
slot's binaries, and the file is restored before the slot takes the next
mutant. A test binary that fails (or times out) kills the mutant.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LIST = os.path.join(ROOT, "tests", "mutants.txt")
SEARCH_DIRS = ["broker", "proto", "worker-sdk", "cli"]
TIMEOUT = int(os.environ.get("SPOOL_MUTATE_TIMEOUT", "240"))
JOBS = max(1, min(2, int(os.environ.get("SPOOL_MUTATE_JOBS", "2"))))


def parse_list(path):
    mutants, cur = [], {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                if cur:
                    mutants.append(cur)
                cur = {}
                continue
            m = re.match(r"^([a-z]+):\s?(.*)$", line)
            if not m:
                sys.exit(f"{path}:{n}: expected 'key: value', got {line!r}")
            key, val = m.group(1), m.group(2)
            if key not in ("id", "file", "after", "from", "to", "tests", "quick", "why"):
                sys.exit(f"{path}:{n}: unknown key '{key}' (id, file, after, from, to, tests, quick, why)")
            cur[key] = val
            cur.setdefault("line", n)
    if cur:
        mutants.append(cur)
    seen = set()
    for m in mutants:
        for k in ("id", "file", "from", "to", "tests"):
            if k not in m:
                sys.exit(f"{path}:{m['line']}: mutant {m.get('id', '?')} has no '{k}:'")
        if m["id"] in seen:
            sys.exit(f"{path}:{m['line']}: mutant id {m['id']} is used twice")
        if "," in m["tests"]:
            sys.exit(f"{path}:{m['line']}: mutant {m['id']}: separate its tests with spaces, not commas "
                     f"(a comma becomes part of the filter, which then matches no test): {m['tests']}")
        seen.add(m["id"])
    return mutants


def locate_in(text, m):
    """Offset of the text to replace in text, or None (absent or not unique)."""
    frm, after = m["from"], m.get("after")
    if after:
        a = text.find(after)
        if a < 0 or text.find(after, a + 1) >= 0:
            return None
        pos = text.find(frm, a)
        # the anchor leads to the first occurrence after it, within 60 lines
        if pos < 0 or text.count("\n", a, pos) > 60:
            return None
        return pos
    pos = text.find(frm)
    if pos < 0 or text.find(frm, pos + 1) >= 0:
        return None
    return pos


def locate(src, m):
    """(relative file, offset) or (None, reason)."""
    def read(rel):
        try:
            with open(os.path.join(src, rel)) as f:
                return f.read()
        except OSError:
            return None
    text = read(m["file"])
    if text is not None:
        pos = locate_in(text, m)
        if pos is not None:
            return m["file"], pos
    hits = []
    for d in SEARCH_DIRS:
        for dirpath, _, files in os.walk(os.path.join(src, d)):
            for fn in files:
                if fn.endswith((".c", ".h")):
                    rel = os.path.relpath(os.path.join(dirpath, fn), src)
                    t = read(rel)
                    if t is not None and locate_in(t, m) is not None:
                        hits.append(rel)
    if len(hits) == 1:
        text = read(hits[0])
        return hits[0], locate_in(text, m)
    what = "nowhere" if not hits else "in " + ", ".join(hits)
    return None, f"text found {what}"


def test_binaries():
    """test binary name -> its build directory relative to the build root."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, "tests")):
        if "meson.build" in files:
            with open(os.path.join(dirpath, "meson.build")) as f:
                for name in re.findall(r"executable\('([A-Za-z0-9_]+)'", f.read()):
                    out[name] = os.path.relpath(dirpath, ROOT)
    return out


def copy_sources(dst):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    for rel in files:
        if not rel:
            continue
        rel = rel.decode()
        s = os.path.join(ROOT, rel)
        if not os.path.isfile(s):
            continue
        d = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d)


class Slot:
    def __init__(self, base, k):
        self.dir = os.path.join(base, f"slot-{k}")
        self.src = os.path.join(self.dir, "src")
        self.build = os.path.join(self.dir, "build")
        self.log = os.path.join(self.dir, "log")
        self.ready = False

    def setup(self):
        copy_sources(self.src)
        r = subprocess.run(["meson", "setup", self.build, self.src], capture_output=True, text=True)
        if r.returncode:
            return "meson setup failed: " + r.stdout[-2000:] + r.stderr[-2000:]
        self.ready = True
        return None


def parse_tests(spec, binaries):
    out = []
    for t in spec.split():
        b, _, flt = t.partition(":")
        if b not in binaries:
            return None, f"no test binary '{b}' (known: {', '.join(sorted(binaries))})"
        out.append((b, flt))
    return out, None


def run_tests(slot, tests, binaries, label):
    """First failing test spec, or None when all pass."""
    env = dict(os.environ,
               SPOOLD=os.path.join(slot.build, "broker", "spoold"),
               SPOOL_CLI=os.path.join(slot.build, "cli", "spool"))
    for b, flt in tests:
        exe = os.path.join(slot.build, binaries[b], b)
        args = ["timeout", str(TIMEOUT), exe, "--jobs", "1", "--short-filename"]
        if flt:
            args += ["--filter", flt]
        with open(os.path.join(slot.dir, f"{label}-{b}.log"), "w") as log:
            r = subprocess.run(args, cwd=slot.build, env=env, stdout=log, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            return f"{b}:{flt}" if flt else b
    return None


def run_mutant(slot, m, binaries, baseline):
    tests, err = parse_tests(m["tests"], binaries)
    if err:
        return "not applied", err, 0
    rel, pos = locate(slot.src, m)
    if rel is None:
        return "not applied", pos, 0
    if rel != m["file"]:
        m["found"] = rel  # the table shows where the text is now
    path = os.path.join(slot.src, rel)
    with open(path) as f:
        orig = f.read()
    targets = ["broker/spoold", "cli/spool"] + [f"{binaries[b]}/{b}" for b, _ in tests]
    if any(b == "test_bench_smoke" for b, _ in tests):
        targets.append("bench/spool-bench")  # bench/compare runs it
    t0 = time.time()
    try:
        if baseline:
            r = subprocess.run(["ninja", "-C", slot.build] + targets, capture_output=True, text=True)
            if r.returncode:
                return "error", "the unmutated build failed: " + r.stdout[-1500:], time.time() - t0
            bad = run_tests(slot, tests, binaries, m["id"] + "-baseline")
            if bad:
                return "error", f"{bad} fails without the mutant", time.time() - t0
        mutated = orig[:pos] + m["to"] + orig[pos + len(m["from"]):]
        with open(path, "w") as f:
            f.write(mutated)
        r = subprocess.run(["ninja", "-C", slot.build] + targets, capture_output=True, text=True)
        if r.returncode:
            with open(os.path.join(slot.dir, m["id"] + "-build.log"), "w") as f:
                f.write(r.stdout + r.stderr)
            return "error", f"the mutant does not build ({rel})", time.time() - t0
        bad = run_tests(slot, tests, binaries, m["id"])
        return ("killed", bad, time.time() - t0) if bad else ("survived", "", time.time() - t0)
    finally:
        with open(path, "w") as f:
            f.write(orig)


def main(argv):
    quick = baseline = False
    ids = []
    for a in argv:
        if a == "--quick":
            quick = True
        elif a == "--baseline":
            baseline = True
        elif a in ("-h", "--help"):
            print(open(os.path.join(ROOT, "scripts", "mutate")).read().split("set -uo")[0])
            return 0
        elif a.startswith("-"):
            print(f"mutate: unknown option {a} (--quick, --baseline, ids)", file=sys.stderr)
            return 2
        else:
            ids.append(a)
    mutants = parse_list(LIST)
    known = {m["id"] for m in mutants}
    for i in ids:
        if i not in known:
            print(f"mutate: no mutant '{i}' in tests/mutants.txt", file=sys.stderr)
            return 2
    if ids:
        mutants = [m for m in mutants if m["id"] in ids]
    elif quick:
        mutants = [m for m in mutants if m.get("quick") == "yes"]
    binaries = test_binaries()
    base = tempfile.mkdtemp(prefix="spool-mutate.")
    slots = [Slot(base, k) for k in range(min(JOBS, len(mutants)))]
    results = {}
    lock = threading.Lock()
    todo = list(mutants)
    t_start = time.time()

    def worker(slot):
        err = slot.setup()
        while True:
            with lock:
                if not todo:
                    return
                m = todo.pop(0)
            if err:
                res = ("error", err, 0)
            else:
                res = run_mutant(slot, m, binaries, baseline)
            with lock:
                results[m["id"]] = res
                print(f"  {m['id']}: {res[0]} {res[1]} ({res[2]:.0f} s)", flush=True)

    print(f"mutate: {len(mutants)} mutant(s), {len(slots)} at a time, work in {base}", flush=True)
    threads = [threading.Thread(target=worker, args=(s,)) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wid = max([len(m["id"]) for m in mutants] + [2])
    for m in mutants:
        if "found" in m:
            m["shown"] = f"{m['found']} (listed as {m['file']})"
    wfile = max([len(m.get("shown", m["file"])) for m in mutants] + [4])
    print()
    print(f"{'id':<{wid}}  {'file':<{wfile}}  {'result':<11}  killed by / reason")
    killed = 0
    for m in mutants:
        st, why, _ = results.get(m["id"], ("error", "not run", 0))
        killed += st == "killed"
        print(f"{m['id']:<{wid}}  {m.get('shown', m['file']):<{wfile}}  {st:<11}  {why}")
    n = len(mutants)
    score = 100.0 * killed / n if n else 100.0
    print(f"score: {killed} of {n} killed ({score:.0f} %) in {time.time() - t_start:.0f} s")
    print(f"{killed} passed, {n - killed} failed")
    if killed == n:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"logs: {base}")
    return 0 if killed == n else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
