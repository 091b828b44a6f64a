// The seed's session store: express-session with connect-redis (ioredis),
// exactly the seed's options, against spoold: log in, the session survives
// a kill -9 and restart, logout destroys it, expiry is honoured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import session from 'express-session';
import RedisStore from 'connect-redis';
import Redis from 'ioredis';
import { startSpoold, waitFor } from './helpers.mjs';

let srv, redis, server, base;

function app(maxAge) {
  const a = express();
  a.use(session({
    store: new RedisStore({ client: redis }),
    secret: 'rahasia',
    resave: false,
    saveUninitialized: false,
    cookie: maxAge ? { maxAge } : {},
  }));
  a.get('/login', (req, res) => {
    req.session.user = { id: 123, role: 'admin' };
    res.send('ok');
  });
  a.get('/me', (req, res) => res.json(req.session.user ?? null));
  a.get('/logout', (req, res) => req.session.destroy(() => res.send('bye')));
  return a;
}

async function listen(a) {
  server = await new Promise((resolve) => { const s = a.listen(0, '127.0.0.1', () => resolve(s)); });
  base = `http://127.0.0.1:${server.address().port}`;
}

async function get(path, cookie) {
  const r = await fetch(base + path, { headers: cookie ? { cookie } : {} });
  return { body: await r.text(), cookie: (r.headers.get('set-cookie') ?? '').split(';')[0] };
}

before(async () => {
  srv = await startSpoold();
  redis = new Redis({ port: srv.port, maxRetriesPerRequest: 50, retryStrategy: () => 20 });
  redis.on('error', () => {});
});
after(async () => {
  server?.close();
  redis.disconnect();
  await srv.close();
});

test('log in; the session survives kill -9 and a restart; logout destroys it', async () => {
  await listen(app());
  const login = await get('/login');
  assert.match(login.cookie, /^connect\.sid=/);
  assert.deepEqual(JSON.parse((await get('/me', login.cookie)).body), { id: 123, role: 'admin' });
  const keys = await redis.keys('sess:*');
  assert.equal(keys.length, 1);
  await srv.kill();
  await srv.restart();
  await waitFor(async () => (await redis.ping()) === 'PONG', { what: 'ioredis to reconnect' });
  assert.deepEqual(JSON.parse((await get('/me', login.cookie)).body), { id: 123, role: 'admin' },
    'the session is still there after kill -9');
  assert.equal((await get('/logout', login.cookie)).body, 'bye');
  assert.equal(JSON.parse((await get('/me', login.cookie)).body), null);
  assert.equal(await redis.exists(keys[0]), 0, 'logout deleted the key');
  server.close();
});

test('expiry: a session older than cookie.maxAge is gone', async () => {
  await listen(app(1000));
  const login = await get('/login');
  assert.deepEqual(JSON.parse((await get('/me', login.cookie)).body), { id: 123, role: 'admin' });
  const [key] = await redis.keys('sess:*');
  const ttl = await redis.pttl(key);
  assert.ok(ttl > 0 && ttl <= 1000, `pttl ${ttl}`);
  await waitFor(async () => (await redis.exists(key)) === 0, { what: 'the session key to expire' });
  assert.equal(JSON.parse((await get('/me', login.cookie)).body), null);
  server.close();
});
