// MULTI/EXEC through ioredis and node-redis commits all or nothing: a job
// and its idempotency key together; an error at queue time (unknown
// command, keys on two shards) applies nothing; errors of single commands
// inside EXEC are reported per command; WATCH aborts with nil.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const Redis = require('ioredis');
const { createClient } = require('redis');
const { startSpoold, keysOnTwoShards } = require('./spoold');

let srv;
let io;
let other;
let nr;

test.before(async () => {
  srv = await startSpoold();
  io = new Redis({ port: srv.port, maxRetriesPerRequest: 1 });
  other = new Redis({ port: srv.port, maxRetriesPerRequest: 1 });
  nr = createClient({ socket: { port: srv.port, host: '127.0.0.1' } });
  await nr.connect();
});

test.after(async () => {
  io.disconnect();
  other.disconnect();
  await nr.quit();
  await srv.stop();
});

test('ioredis multi: job and idempotency key commit together', async () => {
  const res = await io.multi()
    .lpush('{mail:1}', JSON.stringify({ to: 'a@example.com' }))
    .set('{mail:1}:sent', '1', 'NX', 'EX', 60)
    .exec();
  assert.deepEqual(res, [[null, 1], [null, 'OK']]);
  assert.equal(await io.llen('{mail:1}'), 1);
  assert.equal(await io.get('{mail:1}:sent'), '1');
});

test('ioredis multi: a command error inside EXEC is reported for that command only', async () => {
  await io.set('{t}s', 'text');
  const res = await io.multi().incr('{t}s').set('{t}ok', 'v').exec();
  assert.match(res[0][0].message, /not an integer/);
  assert.deepEqual(res[1], [null, 'OK']);
});

test('ioredis multi: an unknown command aborts and the LPUSH before it is not applied', async () => {
  const m = io.multi().lpush('{half}', '{}');
  m.call('NOSUCHCOMMAND', 'x');
  await assert.rejects(m.exec(), /EXECABORT/);
  assert.equal(await io.llen('{half}'), 0);
});

test('ioredis multi: keys on two shards get CROSSSLOT and nothing is applied', async () => {
  const [a, b] = keysOnTwoShards('xq');
  await assert.rejects(io.multi().lpush(a, '{}').set(b, '1').exec(), /EXECABORT|CROSSSLOT/);
  assert.equal(await io.llen(a), 0);
  assert.equal(await io.exists(b), 0);
});

test('ioredis watch: a change by another client makes EXEC return null', async () => {
  await io.set('{w}k', '1');
  await io.watch('{w}k');
  await other.set('{w}k', '2');
  const res = await io.multi().set('{w}k', '3').exec();
  assert.equal(res, null);
  assert.equal(await io.get('{w}k'), '2');
  await io.watch('{w}k');
  assert.deepEqual(await io.multi().set('{w}k', '4').exec(), [[null, 'OK']]);
});

test('node-redis multi: job and key together; JOB.PUSH inside', async () => {
  const res = await nr.multi()
    .lPush('{nr:1}', JSON.stringify({ n: 1 }))
    .addCommand(['JOB.PUSH', '{nr:1}', '{"n":2}'])
    .set('{nr:1}:idem', '1', { NX: true, EX: 60 })
    .exec();
  assert.equal(res[0], 1);
  assert.match(String(res[1]), /^[0-9a-f]{16}$/);
  assert.equal(res[2], 'OK');
  assert.equal(await nr.lLen('{nr:1}'), 2);
});

test('node-redis multi: keys on two shards are refused, nothing applied', async () => {
  const [a, b] = keysOnTwoShards('nq');
  await assert.rejects(nr.multi().lPush(a, '{}').set(b, '1').exec());
  assert.equal(await nr.lLen(a), 0);
  assert.equal(await nr.exists(b), 0);
});

test('node-redis multi: a bad payload is an error for that element, the rest applies', async () => {
  let err;
  try {
    await nr.multi().lPush('{bad}', 'not json').set('{bad}:k', 'v').exec();
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'EXEC with a refused element did not report it');
  assert.deepEqual(err.errorIndexes, [0]);
  assert.match(String(err.replies[0]), /BADJSON/);
  assert.equal(err.replies[1], 'OK');
  assert.equal(await nr.get('{bad}:k'), 'v');
  assert.equal(await nr.lLen('{bad}'), 0);
});
