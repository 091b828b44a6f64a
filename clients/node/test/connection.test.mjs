// Where the broker is: URLs (spool://, redis://, with a password), ioredis
// options or instance, SPOOL_URL; a wrong password surfaces as AuthError.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Queue, Worker, AuthError, SpoolArgumentError } from '../dist/esm/index.js';
import { startSpoold, waitFor } from './helpers.mjs';

let s;
before(async () => {
  s = await startSpoold({ args: ['--requirepass', 's3cr:t@x'] });
});
after(async () => {
  await s.close();
});

describe('connection', () => {
  test('a spool:// URL with a percent-encoded password logs in', async () => {
    const q = new Queue('c-url', { connection: `spool://:${encodeURIComponent('s3cr:t@x')}@127.0.0.1:${s.port}` });
    const job = await q.add({ a: 1 });
    assert.equal((await q.getJob(job.id)).data.a, 1);
    await q.drain();
    await q.close();
  });

  test('redis:// URLs, ioredis options and SPOOL_URL work the same', async () => {
    const pw = encodeURIComponent('s3cr:t@x');
    const a = new Queue('c-url', { connection: `redis://default:${pw}@127.0.0.1:${s.port}` });
    const b = new Queue('c-url', { connection: { host: '127.0.0.1', port: s.port, password: 's3cr:t@x' } });
    process.env.SPOOL_URL = `spool://:${pw}@127.0.0.1:${s.port}`;
    const c = new Queue('c-url');
    delete process.env.SPOOL_URL;
    for (const q of [a, b, c])
      await q.add({});
    assert.equal((await a.getJobCounts()).ready, 3);
    await a.drain();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  test('an ioredis instance is used as it is by a Queue and duplicated by a Worker', async () => {
    const conn = new Redis({ host: '127.0.0.1', port: s.port, password: 's3cr:t@x' });
    const q = new Queue('c-inst', { connection: conn });
    await q.add({ n: 1 });
    let got = null;
    const w = new Worker('c-inst', async (job) => { got = job.data.n; }, { connection: conn, log: () => {} });
    await waitFor(() => got === 1, { what: 'job handled' });
    await w.close();
    await q.close();
    assert.equal(await conn.ping(), 'PONG', 'closing the Queue and Worker left the caller\'s connection open');
    conn.disconnect();
  });

  test('a wrong password is an AuthError; a malformed URL a SpoolArgumentError', async () => {
    const q = new Queue('c-url', { connection: `spool://:wrong@127.0.0.1:${s.port}` });
    await assert.rejects(q.add({}), (e) => e instanceof AuthError && /WRONGPASS|NOAUTH/.test(e.message));
    q.client.disconnect();
    assert.throws(() => new Queue('x', { connection: 'http://127.0.0.1:1' }), (e) => e instanceof SpoolArgumentError && /scheme http:/.test(e.message));
    assert.throws(() => new Queue('x', { connection: 'spool://[::1' }), SpoolArgumentError);
  });
});
