// Queue against a real spoold: every add option as it lands on the server
// (JOB.GET shows it), bulk adds, reads, counts, pause, retry, clean,
// settings, and the typed errors of refusals.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Queue, SpoolArgumentError, QueueFullError, PayloadTooBigError, NoJobError, StaleReceiptError, BadJsonError,
  AuthError, SpoolError, toSpoolError,
} from '../dist/esm/index.js';
import { startSpoold, jobGet, stats } from './helpers.mjs';

let s, q, raw;
const QN = 'q-queue';

before(async () => {
  s = await startSpoold();
  q = new Queue(QN, { connection: s.connection() });
  raw = s.client();
});
after(async () => {
  await q.close();
  raw.disconnect();
  await s.close();
});

async function reserveAll(queue, n) {
  const r = await raw.call('JOB.RESERVE', 'COUNT', String(n), 'NOWAIT', 'FROM', queue);
  return (r ?? []).map((a) => Object.fromEntries(Array.from({ length: a.length / 2 }, (_, i) => [a[2 * i], a[2 * i + 1]])));
}

describe('Queue.add', () => {
  test('stores the data as JSON and returns the job id', async () => {
    const job = await q.add({ to: 'a@example.com', n: 1 });
    assert.match(job.id, /^[0-9a-f]{16}$/);
    assert.equal(job.queueName, QN);
    const rec = await jobGet(raw, job.id);
    assert.equal(rec.state, 'ready');
    assert.deepEqual(JSON.parse(rec.payload), { to: 'a@example.com', n: 1 });
    await q.drain();
  });

  test('delay starts the job delayed until then', async () => {
    const t0 = Date.now();
    const job = await q.add({}, { delay: 60000 });
    const rec = await jobGet(raw, job.id);
    assert.equal(rec.state, 'delayed');
    assert.ok(Number(rec.run_at) >= t0 + 60000 && Number(rec.run_at) <= Date.now() + 60000, `run_at ${rec.run_at}`);
    await job.remove();
  });

  test('attempts counts every run: attempts 3 is RETRIES 2', async () => {
    const job = await q.add({}, { attempts: 3 });
    assert.equal(Number((await jobGet(raw, job.id)).retries), 2);
    const one = await q.add({}, { attempts: 1 });
    assert.equal(Number((await jobGet(raw, one.id)).retries), 0);
    await q.drain();
  });

  test('priority as in BullMQ: none first, then 1, then 2', async () => {
    const p2 = await q.add({ p: 2 }, { priority: 2 });
    const p1 = await q.add({ p: 1 }, { priority: 1 });
    const p0 = await q.add({ p: 0 });
    assert.equal(Number((await jobGet(raw, p1.id)).priority), -1);
    const got = await reserveAll(QN, 3);
    assert.deepEqual(got.map((j) => j.id), [p0.id, p1.id, p2.id]);
    await raw.call('JOB.ACK', ...got.map((j) => j.receipt));
  });

  test('lease sets the delivery lease', async () => {
    const job = await q.add({}, { lease: 4321 });
    assert.equal(Number((await jobGet(raw, job.id)).lease_ms), 4321);
    await q.drain();
  });

  test('jobId (UNIQUE) returns the first job while it is unfinished', async () => {
    const a = await q.add({ n: 1 }, { jobId: 'welcome-42' });
    const b = await q.add({ n: 2 }, { jobId: 'welcome-42' });
    assert.equal(a.id, b.id);
    assert.equal((await jobGet(raw, a.id)).unique, 'welcome-42');
    assert.equal((await q.getJobCounts()).ready, 1);
    await q.drain();
  });

  test('defaultJobOptions apply under each add', async () => {
    const q2 = new Queue(QN, { connection: s.connection(), defaultJobOptions: { attempts: 5, lease: 7000 } });
    const job = await q2.add({}, { lease: 8000 });
    const rec = await jobGet(raw, job.id);
    assert.equal(Number(rec.retries), 4);
    assert.equal(Number(rec.lease_ms), 8000);
    await q2.close();
    await q.drain();
  });

  test('refuses unknown and per-queue options with the call to use instead', async () => {
    await assert.rejects(q.add({}, { backoff: { type: 'exponential', delay: 1000 } }), (e) =>
      e instanceof SpoolArgumentError && /setConfig\(\{ backoff/.test(e.message));
    await assert.rejects(q.add({}, { removeOnComplete: true }), (e) => e instanceof SpoolArgumentError && /retention/.test(e.message));
    await assert.rejects(q.add({}, { colour: 'red' }), (e) => e instanceof SpoolArgumentError && /unknown job option 'colour'/.test(e.message));
    await assert.rejects(q.add({}, { attempts: 0 }), (e) => e instanceof SpoolArgumentError && /attempts/.test(e.message));
    await assert.rejects(q.add({}, { priority: 1001 }), (e) => e instanceof SpoolArgumentError && /priority/.test(e.message));
    await assert.rejects(q.add(undefined), (e) => e instanceof SpoolArgumentError && /JSON/.test(e.message));
    assert.equal((await q.getJobCounts()).ready, 0, 'nothing was pushed');
  });
});

describe('Queue reads and admin', () => {
  test('addBulk pushes many in one round trip, in order', async () => {
    const jobs = await q.addBulk(Array.from({ length: 50 }, (_, i) => ({ data: { i }, opts: i === 0 ? { delay: 60000 } : {} })));
    assert.equal(jobs.length, 50);
    assert.equal(new Set(jobs.map((j) => j.id)).size, 50);
    const c = await q.getJobCounts();
    assert.equal(c.ready, 49);
    assert.equal(c.delayed, 1);
    const got = await reserveAll(QN, 49);
    assert.deepEqual(got.map((j) => JSON.parse(j.payload).i), Array.from({ length: 49 }, (_, i) => i + 1));
    await raw.call('JOB.ACK', ...got.map((j) => j.receipt));
    await q.drain();
  });

  test('addBulk reports refused items and adds the rest', async () => {
    await q.setConfig({ maxlen: 2 });
    try {
      await assert.rejects(q.addBulk([{ data: 1 }, { data: 2 }, { data: 3 }]), (e) => {
        assert.ok(e instanceof SpoolError);
        assert.equal(e.results.length, 3);
        assert.ok(e.results[2] instanceof QueueFullError, String(e.results[2]));
        assert.match(e.message, /1 of 3 jobs were refused/);
        return true;
      });
      assert.equal((await q.getJobCounts()).ready, 2);
    } finally {
      await q.setConfig({ maxlen: 0 });
      await q.drain();
    }
  });

  test('getJob gives the record, undefined for an unknown id', async () => {
    const job = await q.add({ x: [1, 2] }, { priority: 3, attempts: 2, jobId: 'k1' });
    const got = await q.getJob(job.id);
    assert.deepEqual(got.data, { x: [1, 2] });
    assert.equal(got.state, 'ready');
    assert.equal(got.priority, 3);
    assert.equal(got.retries, 1);
    assert.equal(got.unique, 'k1');
    assert.ok(got.timestamp > Date.now() - 60000);
    assert.equal(await got.getState(), 'ready');
    assert.equal(await q.getJob('00000000000000ff'), undefined);
    assert.equal(await got.remove(), true);
    assert.equal(await got.getState(), 'unknown');
  });

  test('getJobCounts in spool and BullMQ names, and only the asked ones', async () => {
    await q.add({});
    await q.add({}, { delay: 60000 });
    const c = await q.getJobCounts();
    assert.equal(c.ready, 1);
    assert.equal(c.waiting, 1);
    assert.equal(c.delayed, 1);
    assert.deepEqual(await q.getJobCounts('waiting', 'failed'), { waiting: 1, failed: 0 });
    await assert.rejects(q.getJobCounts('sleeping'), SpoolArgumentError);
    await q.drain();
  });

  test('pause stops deliveries, resume restarts them', async () => {
    await q.add({});
    await q.pause();
    assert.equal(await q.isPaused(), true);
    assert.deepEqual(await reserveAll(QN, 1), []);
    await q.resume();
    assert.equal(await q.isPaused(), false);
    const got = await reserveAll(QN, 1);
    assert.equal(got.length, 1);
    await raw.call('JOB.ACK', got[0].receipt);
  });

  test('retryJobs makes dead jobs ready, and delayed ones ready now', async () => {
    const a = await q.add({ n: 'a' }, { attempts: 1 });
    const [r] = await reserveAll(QN, 1);
    assert.equal(await raw.call('JOB.NACK', r.receipt, 'ERROR', 'broken'), 'dead');
    assert.equal((await q.getJobCounts()).failed, 1);
    assert.equal(await q.retryJobs(), 1);
    assert.equal((await jobGet(raw, a.id)).state, 'ready');
    await q.drain();
    const d = await q.add({}, { delay: 600000 });
    assert.equal(await q.retryJobs({ state: 'delayed' }), 1);
    assert.equal((await jobGet(raw, d.id)).state, 'ready');
    await assert.rejects(q.retryJobs({ state: 'completed' }), SpoolArgumentError);
    await q.drain();
  });

  test('clean deletes the jobs of a state older than the grace, up to the limit', async () => {
    const added = await q.addBulk(Array.from({ length: 5 }, (_, i) => ({ data: { i } })));
    const got = await reserveAll(QN, 5);
    await raw.call('JOB.ACK', ...got.map((j) => j.receipt));
    assert.deepEqual(await q.clean(60000, 0, 'completed'), [], 'none older than a minute');
    const two = await q.clean(0, 2, 'completed');
    assert.equal(two.length, 2);
    const rest = await q.clean(0, 0, 'completed');
    assert.deepEqual(new Set([...two, ...rest]), new Set(added.map((j) => j.id)));
    assert.equal((await q.getJobCounts()).done, 0);
  });

  test('getJobs pages through a state', async () => {
    await q.addBulk(Array.from({ length: 30 }, (_, i) => ({ data: { i } })));
    const jobs = await q.getJobs('waiting', 25);
    assert.equal(jobs.length, 25);
    assert.deepEqual(jobs.map((j) => j.data.i), Array.from({ length: 25 }, (_, i) => i));
    await q.drain();
  });

  test('setConfig and getConfig round-trip queue settings', async () => {
    await q.setConfig({ retries: 7, backoff: 2500, backoffMax: 60000, lease: 45000 });
    const c = await q.getConfig();
    assert.equal(c.retries, 7);
    assert.equal(c.backoff, 2500);
    assert.equal(c.backoffMax, 60000);
    assert.equal(c.lease, 45000);
    await assert.rejects(q.setConfig({ colour: 1 }), (e) => e instanceof SpoolError && /colour/.test(e.message));
    await q.setConfig({ retries: 25, backoff: 15000, backoffMax: 3600000, lease: 30000 });
  });
});

describe('typed errors', () => {
  test('FULL -> QueueFullError naming the queue', async () => {
    await q.setConfig({ maxlen: 1 });
    try {
      await q.add({});
      await assert.rejects(q.add({}), (e) => e instanceof QueueFullError && e.code === 'FULL' && e.command === 'JOB.PUSH' && e.message.includes(QN));
    } finally {
      await q.setConfig({ maxlen: 0 });
      await q.drain();
    }
  });

  test('TOOBIG -> PayloadTooBigError', async () => {
    await assert.rejects(q.add({ big: 'x'.repeat(1100000) }), (e) => e instanceof PayloadTooBigError && /max-payload/.test(e.message));
  });

  test('NOJOB -> NoJobError', async () => {
    const job = await q.add({});
    await job.remove();
    await assert.rejects(job.retry(), NoJobError);
  });

  test('each server prefix maps to its class', () => {
    const reply = (m) => Object.assign(new Error(m), { name: 'ReplyError' });
    assert.ok(toSpoolError(reply('STALE receipt x-1 is for delivery 1')) instanceof StaleReceiptError);
    assert.ok(toSpoolError(reply('BADJSON payload is not valid JSON at byte 1')) instanceof BadJsonError);
    assert.ok(toSpoolError(reply('NOAUTH Authentication required.')) instanceof AuthError);
    assert.ok(toSpoolError(reply('WRONGPASS invalid username-password pair')) instanceof AuthError);
    const other = toSpoolError(reply('ERR something'));
    assert.ok(other instanceof SpoolError && other.code === 'ERR');
    const io = new Error('Connection is closed.');
    assert.equal(toSpoolError(io), io, 'not a reply: passed through');
  });
});
