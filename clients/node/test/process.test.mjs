// A worker process under signals, and a broker restart under a worker:
// SIGTERM finishes running jobs and loses none; SIGKILL leaves the running
// jobs to be delivered again after their leases; a spoold restart mid-run
// is survived with every job done.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, Worker } from '../dist/esm/index.js';
import { startSpoold, waitFor, sleep, jobGet } from './helpers.mjs';

const FIXTURE = new URL('./fixtures/worker-proc.mjs', import.meta.url).pathname;
let s, raw;
before(async () => {
  s = await startSpoold();
  raw = s.client();
});
after(async () => {
  raw.disconnect();
  await s.close();
});

function startWorker(queue, trace, { concurrency = 4, lease, jobMs }) {
  const env = { ...process.env, SPOOL_URL: s.url(), QUEUE: queue, CONCURRENCY: String(concurrency), JOB_MS: String(jobMs), TRACE: trace };
  if (lease)
    env.LEASE = String(lease);
  const p = spawn(process.execPath, [FIXTURE], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderrText = '';
  p.stderr.on('data', (d) => { p.stderrText += d; });
  p.exited = new Promise((r) => p.on('exit', (code, sig) => r({ code, sig })));
  return p;
}

function readTrace(file) {
  if (!existsSync(file))
    return [];
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => {
    const [what, id, attempt, ms] = l.split(' ');
    return { what, id, attempt: Number(attempt), ms: Number(ms) };
  });
}

async function states(ids) {
  const pipe = raw.pipeline();
  for (const id of ids)
    pipe.call('JOB.GET', id);
  const out = {};
  for (const [err, a] of await pipe.exec()) {
    assert.ifError(err);
    const st = a[a.indexOf('state') + 1];
    out[st] = (out[st] ?? 0) + 1;
  }
  return out;
}

describe('worker process', () => {
  test('SIGTERM mid-run finishes the running jobs and loses none', async () => {
    const q = new Queue('p-term', { connection: s.connection() });
    const jobs = await q.addBulk(Array.from({ length: 40 }, (_, i) => ({ data: { i } })));
    const trace = join(s.dir, 'term.trace');
    const p = startWorker('p-term', trace, { concurrency: 4, jobMs: 400 });
    await waitFor(() => readTrace(trace).filter((t) => t.what === 'S').length >= 6, { timeout: 15000, what: '6 started' });
    p.kill('SIGTERM');
    const { code } = await p.exited;
    assert.equal(code, 0, p.stderrText);
    const t = readTrace(trace);
    const started = t.filter((x) => x.what === 'S').map((x) => x.id);
    const finished = t.filter((x) => x.what === 'F').map((x) => x.id);
    assert.deepEqual(finished.sort(), started.sort(), 'every started job finished');
    assert.ok(started.length < 40, 'stopped mid-run');
    const st = await states(jobs.map((j) => j.id));
    assert.deepEqual(st, { done: started.length, ready: 40 - started.length }, 'acked what ran; the rest waits');
    // A second worker takes the rest: each job ran exactly once.
    const p2 = startWorker('p-term', trace, { concurrency: 8, jobMs: 5 });
    await waitFor(async () => (await q.getJobCounts()).done === 40, { timeout: 20000, what: 'all done' });
    p2.kill('SIGTERM');
    assert.equal((await p2.exited).code, 0, p2.stderrText);
    const all = readTrace(trace).filter((x) => x.what === 'S').map((x) => x.id);
    assert.equal(all.length, 40);
    assert.equal(new Set(all).size, 40);
    await q.close();
  });

  test('SIGKILL mid-run: the unfinished jobs are delivered again after their leases', async () => {
    const q = new Queue('p-kill', { connection: s.connection() });
    await q.setConfig({ backoff: 1 });
    const jobs = await q.addBulk(Array.from({ length: 12 }, (_, i) => ({ data: { i } })));
    const trace = join(s.dir, 'kill.trace');
    const LEASE = 1000;
    const p = startWorker('p-kill', trace, { concurrency: 4, lease: LEASE, jobMs: 60000 });
    await waitFor(() => readTrace(trace).filter((t) => t.what === 'S').length === 4, { timeout: 15000, what: '4 started' });
    p.kill('SIGKILL');
    await p.exited;
    const killedAt = Date.now();
    const running = readTrace(trace).map((x) => x.id);
    assert.equal((await q.getJobCounts()).reserved, 4, 'still leased to the dead worker');
    const seen = [];
    const w = new Worker('p-kill', async (job) => { seen.push({ id: job.id, attempt: job.attempt, at: Date.now() }); },
      { connection: s.connection(), concurrency: 4, log: () => {} });
    await waitFor(async () => (await q.getJobCounts()).done === 12, { timeout: 20000, what: 'all done' });
    await w.close();
    for (const id of running) {
      const again = seen.filter((x) => x.id === id);
      assert.equal(again.length, 1, `job ${id} delivered again once`);
      assert.equal(again[0].attempt, 2);
      assert.equal(Number((await jobGet(raw, id)).attempt), 2);
    }
    const lateEnough = seen.filter((x) => running.includes(x.id)).every((x) => x.at >= killedAt + 100);
    assert.ok(lateEnough, 'redelivered only after the lease ran out');
    assert.equal(seen.length, 12);
    assert.equal(new Set(seen.map((x) => x.id)).size, 12);
    assert.equal(jobs.length, 12);
    await q.close();
  });

  test('a spoold restart mid-run is survived: every job done', async () => {
    const q = new Queue('p-restart', { connection: s.connection() });
    const jobs = await q.addBulk(Array.from({ length: 300 }, (_, i) => ({ data: { i } })));
    const ids = jobs.map((j) => j.id);
    const handled = new Map();
    const w = new Worker('p-restart', async (job) => {
      handled.set(job.id, (handled.get(job.id) ?? 0) + 1);
      await sleep(10);
    }, { connection: s.connection(), concurrency: 10, log: () => {} });
    await waitFor(() => handled.size >= 60, { timeout: 20000, what: '60 handled' });
    await s.restart();
    const afterRestart = handled.size;
    assert.ok(afterRestart < 300, 'restarted mid-run');
    await waitFor(async () => (await states(ids)).done === 300, { timeout: 60000, interval: 200, what: 'all 300 done' });
    await w.close();
    assert.equal(handled.size, 300);
    assert.ok(w.counters.reconnects >= 1, `reconnects ${w.counters.reconnects}`);
    assert.deepEqual(await states(ids), { done: 300 });
    await q.close();
  });
});
