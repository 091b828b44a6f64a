// The seed document's Redis snippets, unchanged, through ioredis against
// spoold: cache SET ... 'EX', 60; queue lpush; leaderboard zadd/zrevrange;
// INCR/EXPIRE counters; OTP SET NX EX; a hash session.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const Redis = require('ioredis');
const { startSpoold } = require('./spoold');

let srv;
let redis;

test.before(async () => {
  srv = await startSpoold();
  redis = new Redis({ port: srv.port, lazyConnect: false, maxRetriesPerRequest: 1 });
});

test.after(async () => {
  redis.disconnect();
  await srv.stop();
});

test('cache: SET user:123 JSON EX 60', async () => {
  const userData = { id: 123, name: 'Budi' };
  assert.equal(await redis.set('user:123', JSON.stringify(userData), 'EX', 60), 'OK'); // expire 60 detik
  assert.deepEqual(JSON.parse(await redis.get('user:123')), userData);
  const ttl = await redis.ttl('user:123');
  assert.ok(ttl > 55 && ttl <= 60, `ttl ${ttl}`);
});

test('cache: a key with PX expires and reads as missing', async () => {
  await redis.set('flash', 'x', 'PX', 50);
  const deadline = Date.now() + 5000;
  while ((await redis.get('flash')) !== null) {
    assert.ok(Date.now() < deadline, 'flash never expired');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await redis.exists('flash'), 0);
});

test('queue: lpush emailQueue', async () => {
  assert.equal(await redis.lpush('emailQueue', JSON.stringify({ to: 'bos@example.com' })), 1);
  assert.equal(await redis.llen('emailQueue'), 1);
  await assert.rejects(redis.get('emailQueue'), /WRONGTYPE/);
});

test('leaderboard: zadd and zrevrange top 10', async () => {
  await redis.zadd('game:leaderboard', 1000, 'user123');
  await redis.zadd('game:leaderboard', 1500, 'user7', 900, 'user9');
  assert.deepEqual(await redis.zrevrange('game:leaderboard', 0, 9), ['user7', 'user123', 'user9']); // Top 10
  assert.deepEqual(await redis.zrevrange('game:leaderboard', 0, 0, 'WITHSCORES'), ['user7', '1500']);
  assert.equal(await redis.zscore('game:leaderboard', 'user123'), '1000');
});

test('rate limit: INCR then EXPIRE', async () => {
  const key = 'rate:1.2.3.4';
  assert.equal(await redis.incr(key), 1);
  assert.equal(await redis.expire(key, 60), 1);
  assert.equal(await redis.incr(key), 2);
  const ttl = await redis.ttl(key);
  assert.ok(ttl > 55 && ttl <= 60, `ttl ${ttl} after INCR keeps the expiry`);
});

test('OTP: SET NX EX once', async () => {
  assert.equal(await redis.set('otp:42', '913554', 'NX', 'EX', 300), 'OK');
  assert.equal(await redis.set('otp:42', '111111', 'NX', 'EX', 300), null);
  assert.equal(await redis.get('otp:42'), '913554');
});

test('session: a hash with a TTL', async () => {
  await redis.hset('sess:abc', { user: '42', role: 'admin' });
  await redis.expire('sess:abc', 3600);
  assert.deepEqual(await redis.hgetall('sess:abc'), { user: '42', role: 'admin' });
  assert.equal(await redis.hincrby('sess:abc', 'views', 2), 2);
});
