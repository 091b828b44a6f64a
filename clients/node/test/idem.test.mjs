// Pushes whose outcome is unknown: a proxy between the Queue and a real
// spoold loses the reply of a push the broker ran (it closes both sides when
// the reply comes). add/addBulk send the push again with the same
// idempotency key and the queue holds exactly one job per push.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Queue, outcomeUnknown, SpoolError } from '../dist/esm/index.js';
import { startSpoold, jobGet, stats } from './helpers.mjs';

let s, raw, proxy;

/** A TCP proxy to spoold; `drops` pushes lose their reply (both sides closed). */
function startProxy(port) {
  const p = { drops: 0, cut: 0, sockets: new Set() };
  p.server = net.createServer((c) => {
    const up = net.connect(port, '127.0.0.1');
    let armed = false;
    for (const x of [c, up]) {
      p.sockets.add(x);
      x.on('close', () => p.sockets.delete(x));
      x.on('error', () => {});
    }
    c.on('data', (d) => {
      up.write(d);
      if (!armed && p.drops > 0 && d.includes('JOB.PUSH')) {
        p.drops--;
        armed = true;
      }
    });
    up.on('data', (d) => {
      if (armed) {
        p.cut++;
        c.destroy();
        up.destroy();
        return;
      }
      c.write(d);
    });
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  return new Promise((resolve) => p.server.listen(0, '127.0.0.1', () => {
    p.port = p.server.address().port;
    resolve(p);
  }));
}

before(async () => {
  s = await startSpoold();
  raw = s.client();
  proxy = await startProxy(s.port);
});
after(async () => {
  for (const x of proxy.sockets)
    x.destroy();
  await new Promise((r) => proxy.server.close(r));
  raw.disconnect();
  await s.close();
});

/** Runs fn(queue) with a Queue through the proxy and one reply to lose; checks the proxy lost one. */
async function throughProxy(name, opts, fn) {
  const q = new Queue(name, { connection: { host: '127.0.0.1', port: proxy.port }, ...opts });
  await q.waitUntilReady();
  const cut = proxy.cut;
  proxy.drops = 1;
  try {
    await fn(q);
    assert.equal(proxy.cut, cut + 1, 'the proxy lost no reply');
  } finally {
    await q.close();
  }
}

test('a push whose reply was lost is sent again with its key and stored once', () => throughProxy('idem-one', {}, async (q) => {
  const job = await q.add({ n: 1 });
  assert.equal((await stats(raw, 'idem-one')).ready, 1, 'the resend made a second job');
  assert.match((await jobGet(raw, job.id)).unique, /^[0-9a-f]{32}$/);
  const other = await q.add({ n: 2 });
  assert.notEqual((await jobGet(raw, other.id)).unique, (await jobGet(raw, job.id)).unique, 'two adds, one key');
}));

test("the caller's own jobId is the key kept on resends", () => throughProxy('idem-own', {}, async (q) => {
  const job = await q.add({ n: 1 }, { jobId: 'order-991' });
  assert.equal((await stats(raw, 'idem-own')).ready, 1);
  assert.equal((await jobGet(raw, job.id)).unique, 'order-991');
}));

test('addBulk sends the items whose replies were lost again, each with its key', () => throughProxy('idem-bulk', {}, async (q) => {
  const jobs = await q.addBulk(Array.from({ length: 40 }, (_, n) => ({ data: { n } })));
  assert.equal(jobs.length, 40);
  assert.equal(new Set(jobs.map((j) => j.id)).size, 40);
  assert.equal((await stats(raw, 'idem-bulk')).ready, 40, 'resent items made extra jobs');
}));

test('pushRetry: false sends no key and reports the lost reply', () => throughProxy('idem-off', { pushRetry: false }, async (q) => {
  await assert.rejects(q.add({ n: 1 }), (err) => outcomeUnknown(err));
  const r = await raw.call('JOB.RESERVE', 'NOWAIT', 'FROM', 'idem-off');
  assert.equal(r.length, 1, 'the push ran on the broker');
  const id = r[0][r[0].indexOf('id') + 1];
  assert.equal((await jobGet(raw, id)).unique, null, 'a key was sent with pushRetry: false');
}));

test('many adds in flight at once watch the connection with one listener', async () => {
  const warnings = [];
  const onWarning = (w) => warnings.push(w.name);
  process.on('warning', onWarning);
  const q = new Queue('idem-many', { connection: s.connection() });
  await q.waitUntilReady();
  const jobs = await Promise.all(Array.from({ length: 50 }, (_, n) => q.add({ n })));
  assert.equal(new Set(jobs.map((j) => j.id)).size, 50);
  assert.ok(q.client.listenerCount('close') <= 2, `${q.client.listenerCount('close')} 'close' listeners`);
  await q.close();
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  assert.deepEqual(warnings.filter((w) => w === 'MaxListenersExceededWarning'), []);
});

test('outcomeUnknown: connection losses and CLUSTERDOWN/TRYAGAIN yes, refusals no', () => {
  assert.equal(outcomeUnknown(new Error('Connection is closed.')), true);
  assert.equal(outcomeUnknown(new SpoolError('CLUSTERDOWN outcome unknown: leadership was lost', 'CLUSTERDOWN')), true);
  assert.equal(outcomeUnknown(new SpoolError('TRYAGAIN slot 5 is being moved', 'TRYAGAIN')), true);
  assert.equal(outcomeUnknown(new SpoolError('FULL queue q has 10 unfinished jobs', 'FULL')), false);
  assert.equal(outcomeUnknown(new SpoolError('ERR Connection is closed in the text', 'ERR')), false);
});
