// helpers.mjs - a real spoold per test file, and polling with deadlines.
//
// startSpoold() runs $SPOOLD on a free port (--port 0 --port-file) in a
// fresh temporary directory and waits for the port file; stop() sends
// SIGTERM and waits, kill() sends SIGKILL, restart() starts it again on the
// same port and data directory. Every server still running when the test
// process exits is killed, and its directory removed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

const live = new Set();
process.on('exit', () => {
  for (const s of live) {
    try { s.proc.kill('SIGKILL'); } catch { /* gone */ }
    rmSync(s.dir, { recursive: true, force: true });
  }
});

export function now() {
  return Date.now();
}

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
  const p = process.env.SPOOLD;
  if (!p || !existsSync(p))
    throw new Error(`set SPOOLD to the path of a built spoold (now: ${p ?? 'unset'}); e.g. SPOOLD=build-test/broker/spoold`);
  return p;
}

export async function startSpoold({ args = [], dir, port = 0 } = {}) {
  const s = { dir: dir ?? mkdtempSync(join(tmpdir(), 'spool-node-')), args, port, proc: null };
  await launch(s);
  s.url = () => `spool://127.0.0.1:${s.port}`;
  s.connection = () => ({ host: '127.0.0.1', port: s.port });
  s.client = () => {
    const c = new Redis({ host: '127.0.0.1', port: s.port, maxRetriesPerRequest: 3, lazyConnect: false });
    c.on('error', () => {});
    return c;
  };
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

/** QUEUE.STATS as an object of numbers. */
export async function stats(client, queue) {
  const a = await client.call('QUEUE.STATS', queue);
  const o = {};
  for (let i = 0; i < a.length; i += 2)
    o[a[i]] = Number(a[i + 1]);
  return o;
}

/** JOB.GET as an object (null when gone). */
export async function jobGet(client, id) {
  const a = await client.call('JOB.GET', id);
  if (!a)
    return null;
  const o = {};
  for (let i = 0; i < a.length; i += 2)
    o[a[i]] = a[i + 1];
  return o;
}
