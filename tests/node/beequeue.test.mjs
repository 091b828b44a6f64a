// Bee-Queue against spoold. Its producer side works (ready() loads its Lua
// scripts; save() runs addJob.lua: INCR, HEXISTS, HSET, LPUSH atomically),
// with prefix '{bq}' so that all of a queue's keys share one slot, as Bee-Queue
// recommends for Redis Cluster. Its worker side needs commands that are out
// of scope (docs/protocol.md, "Scripting", "Bee-Queue"): Redis sets
// (SMEMBERS in checkStalledJobs.lua), LREM and BRPOPLPUSH. These tests pin
// both halves, so that the day those commands come the test says so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Queue from 'bee-queue';
import Redis from 'ioredis';
import { startSpoold, waitFor } from './helpers.mjs';

let srv, redis;
before(async () => {
  srv = await startSpoold();
  redis = new Redis({ port: srv.port });
});
after(async () => {
  redis.disconnect();
  await srv.close();
});

test('Bee-Queue producer: ready() and createJob().save() through its Lua scripts', async () => {
  const q = new Queue('mail', { prefix: '{bq}', redis: { port: srv.port }, isWorker: false, getEvents: false });
  await q.ready();
  const job = await q.createJob({ to: 'bos@example.com' }).save();
  assert.equal(job.id, '1');
  const stored = JSON.parse(await redis.hget('{bq}:mail:jobs', '1'));
  assert.deepEqual(stored.data, { to: 'bos@example.com' });
  assert.equal(await redis.llen('{bq}:mail:waiting'), 1);
  const second = await q.createJob({ to: 'b@example.com' }).save();
  assert.equal(second.id, '2');
  await q.close();
});

test('Bee-Queue worker: stops at SMEMBERS (Redis sets are out of scope); BRPOPLPUSH is not a command', async () => {
  const q = new Queue('mail', { prefix: '{bq}', redis: { port: srv.port }, isWorker: true, activateDelayedJobs: false });
  const errors = [];
  q.on('error', (e) => errors.push(e.message));
  await q.ready();
  q.process(async () => 'sent');
  await waitFor(() => errors.length > 0, { what: "Bee-Queue's error event" });
  assert.match(errors[0], /Unknown Redis command called from script .* on @user_script:26\./);
  await assert.rejects(redis.brpoplpush('{bq}:mail:waiting', '{bq}:mail:active', 1), /unknown command 'brpoplpush'/);
  await q.close(1000).catch(() => {});
});
