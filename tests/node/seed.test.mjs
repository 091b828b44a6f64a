// The seed's snippets, unchanged, through ioredis and node-redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { startSpoold, waitFor } from './helpers.mjs';

let srv;
before(async () => { srv = await startSpoold(); });
after(async () => { await srv.close(); });

const userData = { id: 123, name: 'Bos', role: 'admin' };

test('ioredis: cache SET … EX 60', async () => {
  const redis = new Redis({ port: srv.port });
  await redis.set('user:123', JSON.stringify(userData), 'EX', 60); // expire 60 detik
  assert.deepEqual(JSON.parse(await redis.get('user:123')), userData);
  const ttl = await redis.ttl('user:123');
  assert.ok(ttl > 55 && ttl <= 60, `ttl ${ttl}`);
  redis.disconnect();
});

test('ioredis: lpush emailQueue', async () => {
  const redis = new Redis({ port: srv.port });
  await redis.lpush('emailQueue', JSON.stringify({ to: 'bos@example.com' }));
  assert.equal(await redis.llen('emailQueue'), 1);
  assert.deepEqual(JSON.parse(await redis.rpop('emailQueue')), { to: 'bos@example.com' });
  redis.disconnect();
});

test('ioredis: leaderboard zadd / zrevrange top 10', async () => {
  const redis = new Redis({ port: srv.port });
  await redis.zadd('game:leaderboard', 1000, 'user123');
  for (let i = 0; i < 12; i++)
    await redis.zadd('game:leaderboard', 10 * i, `p${i}`);
  const top = await redis.zrevrange('game:leaderboard', 0, 9); // Top 10
  assert.equal(top.length, 10);
  assert.equal(top[0], 'user123');
  assert.equal(top[1], 'p11');
  redis.disconnect();
});

test('ioredis: publish / subscribe chat', async () => {
  const redis = new Redis({ port: srv.port });
  const pub = new Redis({ port: srv.port });
  const got = [];
  // Subscriber
  redis.subscribe('chat');
  redis.on('message', (channel, message) => {
    got.push(`[${channel}] ${message}`);
  });
  // Publisher (until the subscription is in place)
  await waitFor(async () => {
    await pub.publish('chat', 'Pesan baru dari user123');
    return got.length > 0;
  }, { what: 'the chat message' });
  assert.equal(got[0], '[chat] Pesan baru dari user123');
  redis.disconnect();
  pub.disconnect();
});

test('node-redis: the same snippets', async () => {
  const redis = createClient({ url: `redis://127.0.0.1:${srv.port}` });
  await redis.connect();
  await redis.set('user:124', JSON.stringify(userData), { EX: 60 });
  assert.deepEqual(JSON.parse(await redis.get('user:124')), userData);
  await redis.lPush('emailQueue', JSON.stringify({ to: 'bos@example.com' }));
  assert.equal(await redis.lLen('emailQueue'), 1);
  await redis.zAdd('game:leaderboard2', { score: 1000, value: 'user123' });
  await redis.zAdd('game:leaderboard2', { score: 5, value: 'low' });
  assert.deepEqual(await redis.zRange('game:leaderboard2', 0, 9, { REV: true }), ['user123', 'low']);
  const sub = redis.duplicate();
  await sub.connect();
  const got = [];
  await sub.subscribe('chat', (message, channel) => got.push(`[${channel}] ${message}`));
  await waitFor(async () => {
    await redis.publish('chat', 'Pesan baru dari user123');
    return got.length > 0;
  }, { what: 'the chat message' });
  assert.equal(got[0], '[chat] Pesan baru dari user123');
  await sub.quit();
  await redis.quit();
});

test('OTP: SET otp:… NX EX, verify with GETDEL (ioredis and node-redis)', async () => {
  const redis = new Redis({ port: srv.port });
  assert.equal(await redis.set('otp:user123', '482913', 'EX', 300, 'NX'), 'OK');
  assert.equal(await redis.set('otp:user123', '000000', 'EX', 300, 'NX'), null, 'a second code is refused while one is live');
  const ttl = await redis.ttl('otp:user123');
  assert.ok(ttl > 290 && ttl <= 300);
  assert.equal(await redis.getdel('otp:user123'), '482913');
  assert.equal(await redis.getdel('otp:user123'), null, 'a code verifies once');
  const nr = createClient({ url: `redis://127.0.0.1:${srv.port}` });
  await nr.connect();
  assert.equal(await nr.set('otp:user9', '111222', { NX: true, EX: 1 }), 'OK');
  assert.equal(await nr.get('otp:user9'), '111222');
  await waitFor(async () => (await nr.get('otp:user9')) === null, { what: 'the OTP to expire' });
  assert.equal(await nr.getDel('otp:user9'), null, 'an expired code does not verify');
  await nr.quit();
  redis.disconnect();
});
