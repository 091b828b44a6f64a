// The seed's session store, unchanged: express-session with connect-redis
// on an ioredis client against spoold. Two requests with the cookie see
// the same session; the session lives in spool as a string with a TTL.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const express = require('express');
const session = require('express-session');
const RedisStore = require('connect-redis').default;
const Redis = require('ioredis');
const { startSpoold } = require('./spoold');

let srv;
let redis;
let web;
let port;

test.before(async () => {
  srv = await startSpoold();
  redis = new Redis({ port: srv.port, maxRetriesPerRequest: 1 });
  const app = express();
  app.use(session({
    store: new RedisStore({ client: redis }),
    secret: 'rahasia',
    resave: false,
    saveUninitialized: false
  }));
  app.get('/visit', (req, res) => {
    req.session.visits = (req.session.visits || 0) + 1;
    res.json({ visits: req.session.visits, id: req.sessionID });
  });
  web = app.listen(0, '127.0.0.1');
  await new Promise((r) => web.once('listening', r));
  port = web.address().port;
});

test.after(async () => {
  await new Promise((r) => web.close(r));
  redis.disconnect();
  await srv.stop();
});

function get(path, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ body: JSON.parse(body), cookie: (res.headers['set-cookie'] || [])[0] }));
    });
    req.on('error', reject);
  });
}

test('express-session with connect-redis keeps the session in spool', async () => {
  const first = await get('/visit');
  assert.equal(first.body.visits, 1);
  assert.ok(first.cookie, 'no session cookie');
  const cookie = first.cookie.split(';')[0];
  const second = await get('/visit', cookie);
  assert.equal(second.body.visits, 2);
  assert.equal(second.body.id, first.body.id);
  const stored = JSON.parse(await redis.get('sess:' + first.body.id));
  assert.equal(stored.visits, 2);
  const ttl = await redis.ttl('sess:' + first.body.id);
  assert.ok(ttl > 0, `the session has no TTL (${ttl})`);
});
