// Rate limiting the way Node applications do it against Redis, unchanged,
// against spoold: rate-limiter-flexible's RateLimiterRedis (its Lua script
// through ioredis's EVALSHA) and express-rate-limit with rate-limit-redis
// (SCRIPT LOAD + EVALSHA). The N+1th request in a window is refused, the
// window resets, and the counts survive a kill -9 and restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { startSpoold, waitFor } from './helpers.mjs';

let srv, redis;

before(async () => {
  srv = await startSpoold();
  redis = new Redis({ port: srv.port, maxRetriesPerRequest: 50, retryStrategy: () => 20 });
  redis.on('error', () => {});
});
after(async () => {
  redis.disconnect();
  await srv.close();
});

async function consumed(limiter, key) {
  try {
    const r = await limiter.consume(key);
    return { ok: true, r };
  } catch (r) {
    if (r instanceof Error)
      throw r;
    return { ok: false, r };
  }
}

async function reconnect() {
  await waitFor(async () => (await redis.ping()) === 'PONG', { what: 'ioredis to reconnect' });
}

test('rate-limiter-flexible RateLimiterRedis: 3 points per window', async () => {
  const limiter = new RateLimiterRedis({ storeClient: redis, keyPrefix: 'rlflx', points: 3, duration: 2 });
  for (let i = 1; i <= 3; i++) {
    const { ok, r } = await consumed(limiter, 'ip:1.2.3.4');
    assert.ok(ok, `request ${i} allowed`);
    assert.equal(r.remainingPoints, 3 - i);
  }
  const fourth = await consumed(limiter, 'ip:1.2.3.4');
  assert.equal(fourth.ok, false, 'the 4th request in the window is refused');
  assert.ok(fourth.r.msBeforeNext > 0 && fourth.r.msBeforeNext <= 2000, `msBeforeNext ${fourth.r.msBeforeNext}`);
  const other = await consumed(limiter, 'ip:5.6.7.8');
  assert.ok(other.ok, 'another key has its own budget');
  // the script ran through ioredis's defineCommand (EVALSHA, EVAL on NOSCRIPT): it is cached
  const script = redis.scriptsSet.rlflxIncr;
  assert.ok(script && /^[0-9a-f]{40}$/.test(script.sha));
  assert.deepEqual(await redis.script('EXISTS', script.sha), [1]);
  // the window resets
  const again = await waitFor(async () => {
    const c = await consumed(limiter, 'ip:1.2.3.4');
    return c.ok ? c : null;
  }, { timeout: 5000, interval: 100, what: 'the window to reset' });
  assert.equal(again.r.remainingPoints, 2);
});

test('rate-limiter-flexible: the count survives kill -9 and a restart', async () => {
  const limiter = new RateLimiterRedis({ storeClient: redis, keyPrefix: 'rlflx2', points: 2, duration: 60 });
  assert.ok((await consumed(limiter, 'u1')).ok);
  assert.ok((await consumed(limiter, 'u1')).ok);
  await srv.kill();
  await srv.restart();
  await reconnect();
  const after = await consumed(limiter, 'u1');
  assert.equal(after.ok, false, 'still refused after the restart');
  assert.ok(after.r.msBeforeNext > 50000, `msBeforeNext ${after.r.msBeforeNext}`);
});

function limitedApp(prefix, windowMs, limit) {
  const app = express();
  app.use(rateLimit({
    windowMs,
    limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    store: new RedisStore({ sendCommand: (...args) => redis.call(...args), prefix }),
  }));
  app.get('/', (req, res) => res.send('hello'));
  return app;
}

async function serve(app) {
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

test('express-rate-limit with rate-limit-redis: 3 per window, then 429, then the window resets', async () => {
  const { server, url } = await serve(limitedApp('rl1:', 2000, 3));
  const codes = [];
  for (let i = 0; i < 4; i++)
    codes.push((await fetch(url)).status);
  assert.deepEqual(codes, [200, 200, 200, 429]);
  await waitFor(async () => (await fetch(url)).status === 200, { timeout: 5000, interval: 100, what: 'the window to reset' });
  server.close();
});

test('express-rate-limit: the limit survives kill -9 and a restart (the script is loaded again)', async () => {
  const { server, url } = await serve(limitedApp('rl2:', 60000, 2));
  assert.equal((await fetch(url)).status, 200);
  assert.equal((await fetch(url)).status, 200);
  assert.equal((await fetch(url)).status, 429);
  await srv.kill();
  await srv.restart();
  await reconnect();
  assert.equal((await fetch(url)).status, 429, 'still limited after the restart');
  server.close();
});
