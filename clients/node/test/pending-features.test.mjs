// Calls that need broker features still being built: groups and expiring
// jobs (spool issue 17), batches, schedules, results, progress and JOB.WAIT
// (spool issue 18). Each is sent in its exact command form; today's spoold
// refuses it and the SDK surfaces that as an UnsupportedFeatureError naming
// the feature and the issue. When a feature lands these tests fail on
// purpose: replace each with a test of the feature itself.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker, UnsupportedFeatureError } from '../dist/esm/index.js';
import { startSpoold, waitFor, jobGet } from './helpers.mjs';

let s, q, raw;
before(async () => {
  s = await startSpoold();
  q = new Queue('pending', { connection: s.connection() });
  raw = s.client();
});
after(async () => {
  await q.close();
  raw.disconnect();
  await s.close();
});

const unsupported = (feature, issue) => (e) => {
  assert.ok(e instanceof UnsupportedFeatureError, `${e?.name}: ${e?.message}`);
  assert.equal(e.feature, feature);
  assert.match(e.requires, new RegExp(`issue ${issue}`));
  assert.match(e.message, new RegExp(`^${feature.replace('.', '\\.')} is not supported by this spoold`));
  return true;
};

describe('pending on issue 17', () => {
  test('add({ group }) -> JOB.PUSH … GROUP key: refused today, nothing pushed', async () => {
    await assert.rejects(q.add({}, { group: 'tenant-1' }), unsupported('JOB.PUSH GROUP', 17));
    assert.equal((await q.getJobCounts()).ready, 0);
  });

  test('add({ expires }) -> JOB.PUSH … EXPIRES ms: refused today', async () => {
    await assert.rejects(q.add({}, { expires: 600000 }), unsupported('JOB.PUSH EXPIRES', 17));
  });

  test('add with group and expires names the option the server refused first', async () => {
    await assert.rejects(q.add({}, { expires: 5, group: 'g' }), (e) => e instanceof UnsupportedFeatureError && /^JOB\.PUSH (GROUP|EXPIRES)$/.test(e.feature));
  });

  test('retryJobs({ error }) -> QUEUE.RETRY queue ERROR pattern: refused today', async () => {
    await assert.rejects(q.retryJobs({ error: '550*' }), unsupported('QUEUE.RETRY ERROR', 17));
  });
});

describe('pending on issue 18', () => {
  test('add({ batch }) -> JOB.PUSH … BATCH id: refused today', async () => {
    await assert.rejects(q.add({}, { batch: 'b1' }), unsupported('JOB.PUSH BATCH', 18));
  });

  test('schedule() -> SCHED.SET name queue spec payload …: refused today', async () => {
    await assert.rejects(q.schedule('nightly', '0 3 * * *', { report: true }, { tz: 'UTC', catchup: 'one' }), unsupported('SCHED.SET', 18));
    await assert.rejects(q.schedule('tick', { every: 1000 }, {}), unsupported('SCHED.SET', 18));
    await assert.rejects(q.removeSchedule('tick'), unsupported('SCHED.DEL', 18));
  });

  test('job.updateProgress() -> JOB.PROGRESS receipt value: refused today, the job still completes', async () => {
    const job = await q.add({});
    const errors = [];
    const w = new Worker('pending', async (j) => {
      for (const p of [50, { step: 'upload' }]) {
        try {
          await j.updateProgress(p);
        } catch (e) {
          errors.push(e);
        }
      }
      return undefined;
    }, { connection: s.connection(), log: () => {} });
    await waitFor(async () => (await jobGet(raw, job.id)).state === 'done', { what: 'done' });
    await w.close();
    assert.equal(errors.length, 2);
    for (const e of errors)
      unsupported('JOB.PROGRESS', 18)(e);
  });

  test('job.waitUntilFinished() -> JOB.WAIT id TIMEOUT ms: refused today', async () => {
    const job = await q.add({});
    await assert.rejects(job.waitUntilFinished(null, 1000), unsupported('JOB.WAIT', 18));
    await q.drain();
  });

  test('a result -> JOB.ACK receipt RESULT value: refused today, so the worker acks plainly (see worker.test.mjs)', async () => {
    const job = await q.add({ n: 2 });
    const logs = [];
    const w = new Worker('pending', async (j) => j.data.n * 21, { connection: s.connection(), log: (l, m) => logs.push(m) });
    await waitFor(async () => (await jobGet(raw, job.id)).state === 'done', { what: 'done' });
    await w.close();
    assert.equal(logs.filter((m) => /JOB\.ACK … RESULT.*issue 18/.test(m)).length, 1, logs.join('\n'));
  });
});
