// helpers.mjs - a real spoold per test file, and polling with deadlines.
//
// startSpoold() runs $SPOOLD on a free port (--port 0 --port-file) in a
// fresh temporary directory and waits for the port file; kill() sends
// SIGKILL (a crash), restart() starts it again on the same port and data
// directory, close() stops it and removes the directory. Servers still
// running when the test process exits are killed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const live = new Set();
process.on('exit', () => {
  for (const s of live) {
    try { s.proc.kill('SIGKILL'); } catch { /* gone */ }
    rmSync(s.dir, { recursive: true, force: true });
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value (returned) or the deadline passes. */
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
  const p = process.env.SPOOLD;
  if (!p || !existsSync(p))
    throw new Error(`set SPOOLD to the path of a built spoold (now: ${p ?? 'unset'})`);
  return p;
}

export async function startSpoold({ args = [] } = {}) {
  const s = { dir: mkdtempSync(join(tmpdir(), 'spool-node-eco-')), args: ['--shards', '2', ...args], port: 0, proc: null };
  await launch(s);
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
  s.log = () => { try { return readFileSync(join(s.dir, 'spoold.log'), 'utf8'); } catch { return ''; } };
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
  let exited = null;
  proc.on('exit', (code, sig) => { exited = code ?? sig; });
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited !== null)
      throw new Error(`spoold exited (${exited}) before listening; log:\n${s.log?.() ?? ''}`);
    try {
      const text = readFileSync(portFile, 'utf8');
      if (/^\d+\n$/.test(text)) {
        s.port = Number(text);
        return;
      }
    } catch { /* not yet */ }
    if (Date.now() > deadline)
      throw new Error('spoold did not write its port file within 15 s');
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
