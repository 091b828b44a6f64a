// spoold.mjs - a real spoold per test file, and polling with deadlines,
// for every Node suite: clients/node/test (the SDK), tests/node (the seed's
// application) and tests/node-kv (through import() from CommonJS).
// Node's own modules only, so it needs no package.json or node_modules of
// its own; a suite's extras (an ioredis client, JOB.GET as an object) stay
// in the suite's own helpers.
//
// startSpoold() runs $SPOOLD (default: build-test/broker/spoold of this
// checkout) on a free port (--port 0 --port-file) in a fresh temporary
// directory and waits for the port file; stop() sends SIGTERM and waits,
// kill() sends SIGKILL (a crash), restart() starts it again on the same
// port and data directory, close() stops it and removes the directory.
// Every server still running when the test process exits is killed, and
// its directory removed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const live = new Set();
process.on('exit', () => {
  for (const s of live) {
    try { s.proc.kill('SIGKILL'); } catch { /* gone */ }
    rmSync(s.dir, { recursive: true, force: true });
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value (returned) or the deadline passes (throws with what). */
export async function waitFor(fn, { timeout = 10000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last)
        return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(interval);
  }
}

function spoold() {
  const built = fileURLToPath(new URL('../../build-test/broker/spoold', import.meta.url));
  const p = process.env.SPOOLD || built;
  if (!existsSync(p))
    throw new Error(`no spoold at ${p}: build it (meson setup build-test && ninja -C build-test) or set SPOOLD to the path of a built spoold`);
  return p;
}

/**
 * Starts a spoold. args: extra arguments (e.g. ['--shards', '2']); dir: a
 * data directory to reuse (default: a new one named prefix + random);
 * port: 0 for a free one.
 */
export async function startSpoold({ args = [], dir, port = 0, prefix = 'spool-node-' } = {}) {
  const s = { dir: dir ?? mkdtempSync(join(tmpdir(), prefix)), args, port, proc: null };
  s.log = () => { try { return readFileSync(join(s.dir, 'spoold.log'), 'utf8'); } catch { return ''; } };
  await launch(s);
  s.stop = async () => stopProc(s, 'SIGTERM');
  s.kill = async () => stopProc(s, 'SIGKILL');
  s.restart = async () => {
    await stopProc(s, 'SIGTERM');
    await launch(s);
  };
  s.close = async () => {
    await stopProc(s, 'SIGTERM');
    rmSync(s.dir, { recursive: true, force: true });
    live.delete(s);
  };
  live.add(s);
  return s;
}

async function launch(s) {
  const portFile = join(s.dir, 'port');
  if (existsSync(portFile))
    unlinkSync(portFile);
  const argv = ['--port', String(s.port), '--bind', '127.0.0.1', '--port-file', portFile, '--data-dir', join(s.dir, 'data'),
    '--http-port', '0', '--loglevel', 'warn', '--logfile', join(s.dir, 'spoold.log'), ...s.args];
  const proc = spawn(spoold(), argv, { stdio: 'ignore' });
  s.proc = proc;
  live.add(s);
  let exited = null;
  proc.on('exit', (code, sig) => { exited = code ?? sig; });
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited !== null)
      throw new Error(`spoold exited (${exited}) before listening; log:\n${s.log()}`);
    try {
      const text = readFileSync(portFile, 'utf8');
      if (/^\d+\n$/.test(text)) {
        s.port = Number(text);
        return;
      }
    } catch { /* not yet */ }
    if (Date.now() > deadline)
      throw new Error(`spoold did not write its port file within 15 s; log:\n${s.log()}`);
    await sleep(5);
  }
}

function stopProc(s, sig) {
  const p = s.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null)
    return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill(sig);
  });
}
