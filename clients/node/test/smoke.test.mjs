import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker } from '../dist/esm/index.js';
import { startSpoold, waitFor } from './helpers.mjs';

test('smoke', async () => {
  const s = await startSpoold();
  const q = new Queue('smoke', { connection: s.url() });
  const job = await q.add({ a: 1 });
  const seen = [];
  const w = new Worker('smoke', async (j) => { seen.push(j.data); return { ok: true }; }, { connection: s.url() });
  await waitFor(() => seen.length === 1);
  await waitFor(async () => (await q.getJobCounts()).done === 1);
  await w.close();
  await q.close();
  await s.close();
  assert.deepEqual(seen, [{ a: 1 }]);
  assert.ok(job.id);
});
