// Worker against a real spoold: exactly-once over 1,000 jobs at concurrency
// 10, retries then dead with the handler's error text, UnrecoverableError,
// a lease kept alive for 3x its length, a lost lease, events, graceful and
// forced close. (Results: pending-features.test.mjs.)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker, QueueEvents, UnrecoverableError } from '../dist/esm/index.js';
import { startSpoold, waitFor, sleep, jobGet, stats } from './helpers.mjs';

let s, raw;
before(async () => {
  s = await startSpoold();
  raw = s.client();
});
after(async () => {
  raw.disconnect();
  await s.close();
});

const quiet = { log: () => {} };

describe('Worker', () => {
  test('1,000 jobs through concurrency 10: each handled exactly once, never more than 10 at a time', async () => {
    const q = new Queue('w-1000', { connection: s.connection() });
    const jobs = await q.addBulk(Array.from({ length: 1000 }, (_, i) => ({ data: { i } })));
    const seen = new Map();
    let running = 0, maxRunning = 0;
    const w = new Worker('w-1000', async (job) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      seen.set(job.data.i, (seen.get(job.data.i) ?? 0) + 1);
      await sleep(2);
      running--;
      return undefined;
    }, { connection: s.connection(), concurrency: 10, ...quiet });
    let completed = 0;
    w.on('completed', () => completed++);
    await waitFor(async () => (await q.getJobCounts()).done === 1000, { timeout: 60000, what: '1,000 done' });
    await w.close();
    assert.equal(seen.size, 1000);
    for (const [i, n] of seen)
      assert.equal(n, 1, `job ${i} ran ${n} times`);
    assert.equal(completed, 1000);
    assert.ok(maxRunning <= 10, `max concurrent ${maxRunning}`);
    assert.ok(maxRunning > 1, `jobs ran one at a time (max ${maxRunning})`);
    const c = await q.getJobCounts();
    assert.deepEqual([c.ready, c.reserved, c.delayed, c.dead], [0, 0, 0, 0]);
    assert.equal(w.counters.done, 1000);
    assert.equal(jobs.length, 1000);
    await q.close();
  });

  test('a throwing handler is retried, then dead with its error text', async () => {
    const q = new Queue('w-throw', { connection: s.connection() });
    const job = await q.add({ to: 'x' }, { attempts: 3 });
    const runs = [];
    const failed = [];
    const w = new Worker('w-throw', async (j) => {
      runs.push(j.attempt);
      throw new Error(`smtp said no (attempt ${j.attempt})`);
    }, { connection: s.connection(), backoff: 10, ...quiet });
    w.on('failed', (j, err, state) => failed.push([j.attempt, err.message, state]));
    await waitFor(async () => (await jobGet(raw, job.id)).state === 'dead', { timeout: 15000, what: 'dead' });
    await w.close();
    const rec = await jobGet(raw, job.id);
    assert.equal(rec.last_error, 'smtp said no (attempt 3)');
    assert.equal(Number(rec.attempt), 3);
    assert.deepEqual(runs, [1, 2, 3]);
    assert.deepEqual(failed, [
      [1, 'smtp said no (attempt 1)', 'delayed'],
      [2, 'smtp said no (attempt 2)', 'delayed'],
      [3, 'smtp said no (attempt 3)', 'dead'],
    ]);
    assert.equal(w.counters.retried, 2);
    assert.equal(w.counters.failed, 1);
    await q.close();
  });

  test('UnrecoverableError sends the job dead at once (JOB.NACK … DEAD)', async () => {
    const q = new Queue('w-unrec', { connection: s.connection() });
    const job = await q.add({}, { attempts: 10 });
    let runs = 0;
    const w = new Worker('w-unrec', async () => {
      runs++;
      throw new UnrecoverableError('550 no such user');
    }, { connection: s.connection(), ...quiet });
    await waitFor(async () => (await jobGet(raw, job.id)).state === 'dead', { what: 'dead' });
    await w.close();
    assert.equal(runs, 1);
    assert.equal((await jobGet(raw, job.id)).last_error, '550 no such user');
    await q.close();
  });

  test('a lease is kept alive for a job running 3x its lease', async () => {
    const q = new Queue('w-lease', { connection: s.connection() });
    await q.setConfig({ backoff: 1 });
    const job = await q.add({ slow: true });
    const LEASE = 400;
    let started = 0;
    const w = new Worker('w-lease', async () => {
      started = Date.now();
      await sleep(3 * LEASE + 200);
      return 'ok';
    }, { connection: s.connection(), lease: LEASE, ...quiet });
    await waitFor(() => started > 0, { what: 'start' });
    // A second worker would get the job if its lease ran out.
    const stolen = [];
    const rival = new Worker('w-lease', async (j) => { stolen.push(j.id); }, { connection: s.connection(), ...quiet });
    await waitFor(async () => (await jobGet(raw, job.id)).state === 'done', { timeout: 10000, what: 'done' });
    const ran = Date.now() - started;
    await w.close();
    await rival.close();
    assert.ok(ran >= 3 * LEASE, `ran ${ran} ms`);
    assert.deepEqual(stolen, []);
    const rec = await jobGet(raw, job.id);
    assert.equal(Number(rec.attempt), 1, 'delivered once');
    assert.ok(w.counters.touches >= 3, `touches ${w.counters.touches}`);
    const st = await stats(raw, 'w-lease');
    assert.equal(st.lease_expired ?? st.expired, 0, 'no lease expired');
    await q.close();
  });

  test('a lost lease drops the result: the next delivery owns the job', async () => {
    const q = new Queue('w-lost', { connection: s.connection() });
    await q.setConfig({ backoff: 1 });
    const job = await q.add({});
    const completed = [];
    const w = new Worker('w-lost', async (j) => {
      if (j.attempt === 1) {
        const end = Date.now() + 600;
        while (Date.now() < end) { /* blocks the event loop: no lease extension can go out */ }
      }
      return `run ${j.attempt}`;
    }, { connection: s.connection(), lease: 150, ...quiet });
    w.on('completed', (j, r) => completed.push([j.attempt, r]));
    await waitFor(async () => (await jobGet(raw, job.id)).state === 'done', { timeout: 10000, what: 'done' });
    await w.close();
    assert.equal(w.counters.lost, 1);
    assert.deepEqual(completed, [[2, 'run 2']]);
    assert.equal(Number((await jobGet(raw, job.id)).attempt), 2);
    await q.close();
  });

  test('events: active, completed, failed, drained; QueueEvents in spool and BullMQ names', async () => {
    const q = new Queue('w-events', { connection: s.connection() });
    const qe = new QueueEvents('w-events', { connection: s.connection() });
    await qe.waitUntilReady();
    const got = [];
    for (const name of ['added', 'active', 'completed', 'failed', 'pushed', 'acked', 'dead'])
      qe.on(name, (ev) => got.push([name, ev.jobId ?? ev.id, ev.failedReason ?? ev.error]));
    const ok = await q.add({ ok: true });
    const bad = await q.add({ ok: false }, { attempts: 1 });
    const seen = [];
    const w = new Worker('w-events', async (j) => {
      if (!j.data.ok)
        throw new Error('nope');
      return 1;
    }, { connection: s.connection(), ...quiet });
    for (const e of ['active', 'completed', 'failed'])
      w.on(e, (j) => seen.push([e, j.id]));
    const drained = new Promise((r) => w.once('drained', r));
    await waitFor(() => got.filter(([n]) => n === 'completed' || n === 'failed').length === 2, { what: 'events' });
    await drained;
    await w.close();
    await qe.close();
    const has = (x) => got.some((g) => JSON.stringify(g) === JSON.stringify(x));
    assert.ok(has(['added', ok.id, undefined]), JSON.stringify(got));
    assert.ok(has(['pushed', ok.id, undefined]));
    assert.ok(has(['active', ok.id, undefined]));
    assert.ok(has(['completed', ok.id, undefined]));
    assert.ok(has(['acked', ok.id, undefined]));
    assert.ok(has(['failed', bad.id, 'nope']));
    assert.ok(has(['dead', bad.id, 'nope']));
    assert.deepEqual(seen.filter(([e]) => e !== 'active').sort(), [['completed', ok.id], ['failed', bad.id]].sort());
    assert.equal(seen.filter(([e]) => e === 'active').length, 2);
    await q.close();
  });

  test('close() lets running jobs finish and sends their acks', async () => {
    const q = new Queue('w-close', { connection: s.connection() });
    await q.addBulk(Array.from({ length: 10 }, (_, i) => ({ data: i })));
    let started = 0, finished = 0;
    const w = new Worker('w-close', async () => {
      started++;
      await sleep(300);
      finished++;
    }, { connection: s.connection(), concurrency: 3, ...quiet });
    await waitFor(() => started === 3, { what: '3 running' });
    await w.close();
    assert.equal(finished, started);
    const c = await q.getJobCounts();
    assert.equal(c.reserved, 0);
    assert.equal(c.done, finished);
    assert.equal(c.ready, 10 - finished);
    await q.drain();
    await q.close();
  });

  test('close(true) hands running jobs back at once', async () => {
    const q = new Queue('w-force', { connection: s.connection() });
    const job = await q.add({}, { attempts: 5 });
    let started = false;
    const w = new Worker('w-force', async () => {
      started = true;
      await sleep(1500);
      return 'late';
    }, { connection: s.connection(), ...quiet });
    await waitFor(() => started, { what: 'start' });
    const closing = w.close(true);
    await waitFor(async () => (await jobGet(raw, job.id)).state === 'ready', { timeout: 1000, what: 'handed back' });
    await closing;
    assert.equal(w.counters.handedBack, 1);
    assert.equal((await jobGet(raw, job.id)).state, 'ready', 'the late result was dropped');
    await q.drain();
    await q.close();
  });
});
