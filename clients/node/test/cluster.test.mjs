// A spoold cluster of three nodes (scripts/cluster start 3, groups of one)
// through ioredis Cluster: raw JOB.PUSH / JOB.RESERVE / JOB.ACK routed by
// slot (ids and receipts carry their queue's slot), then the SDK's Queue and
// Worker on a Cluster connection, with queues on every node.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { Queue, QueueEvents, Worker } from '../dist/esm/index.js';
import { waitFor } from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
let dir, nodes, owners;

function cluster(cmd, ...args) {
  const spoold = process.env.SPOOLD;
  const env = { ...process.env, SPOOLD: spoold, SPOOL: join(dirname(dirname(spoold)), 'cli', 'spool') };
  return execFileSync(join(root, 'scripts', 'cluster'), [cmd, ...args], { env, encoding: 'utf8' });
}

/** The port of the node serving `key`'s slot. */
function ownerOf(key) {
  const slot = calculateSlot(key);
  return owners.find(([a, b]) => slot >= a && slot <= b)[2];
}

/** n queue names with prefix, spread so that every node has some. */
function spreadNames(prefix, n) {
  const out = [], per = new Map();
  for (let i = 0; out.length < n && i < 10000; i++) {
    const name = `${prefix}${i}`, port = ownerOf(name);
    if ((per.get(port) ?? 0) < Math.ceil(n / nodes.length)) {
      per.set(port, (per.get(port) ?? 0) + 1);
      out.push(name);
    }
  }
  assert.equal(new Set(out.map(ownerOf)).size, nodes.length, 'queues on every node');
  return out;
}

const newCluster = () => new Cluster([{ host: '127.0.0.1', port: nodes[0] }]);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'spool-node-cluster-'));
  cluster('start', '3', '--dir', dir);
  nodes = readFileSync(join(dir, 'nodes'), 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[1].split(':')[1]));
  const r = new Redis({ port: nodes[0] });
  owners = (await r.call('CLUSTER', 'SLOTS')).map((e) => [e[0], e[1], e[2][1]]);
  r.disconnect();
});

after(() => {
  cluster('stop', dir);
  rmSync(dir, { recursive: true, force: true });
});

describe('spoold cluster through ioredis Cluster', () => {
  test('push, reserve and ack on queues of all three nodes; ids and receipts route by their slot', async () => {
    const c = newCluster();
    for (const q of spreadNames('raw-', 6)) {
      const id = await c.call('JOB.PUSH', q, '{"n":1}');
      assert.equal(calculateSlot(id), calculateSlot(q), `id ${id} carries the slot of ${q}`);
      const [job] = await c.call('JOB.RESERVE', 'TIMEOUT', '1000', 'FROM', q);
      assert.equal(job[1], id);
      assert.equal(calculateSlot(job[3]), calculateSlot(q), `receipt ${job[3]}`);
      assert.equal(await c.call('JOB.ACK', job[3]), 1);
      const rec = await c.call('JOB.GET', id);
      assert.equal(rec[rec.indexOf('state') + 1], 'done');
      // the job lives on the node that owns its queue's slot, and only there
      const direct = new Redis({ port: ownerOf(q) });
      const stats = await direct.call('QUEUE.STATS', q);
      assert.equal(stats[stats.indexOf('done') + 1], 1);
      direct.disconnect();
      const other = new Redis({ port: nodes.find((p) => p !== ownerOf(q)), maxRetriesPerRequest: 0 });
      await assert.rejects(other.call('JOB.GET', id), /^ReplyError: MOVED \d+ 127\.0\.0\.1:\d+/);
      other.disconnect();
    }
    await assert.rejects(c.call('JOB.RESERVE', 'TIMEOUT', '10', 'FROM', 'raw-0', 'raw-1'), /CROSSSLOT/);
    c.disconnect();
  });

  test('QueueEvents on a Cluster connection hears the events of a queue on another node', async () => {
    const c = newCluster();
    const name = spreadNames('ev-', 6).find((n) => ownerOf(n) !== nodes[0]);
    const events = new QueueEvents(name, { connection: c });
    await events.waitUntilReady();
    const heard = new Promise((resolve) => events.once('added', (args) => resolve(args.jobId)));
    const q = new Queue(name, { connection: c });
    const job = await q.add({ n: 1 });
    assert.equal(await heard, job.id);
    await events.close();
    await q.close();
    c.disconnect();
  });

  test('QueueEvents follows its queue when the slot moves to another node', async () => {
    const c = newCluster();
    const name = spreadNames('mv-', 6).find((n) => ownerOf(n) === nodes[0]);
    const events = new QueueEvents(name, { connection: c, followMs: 200 });
    await events.waitUntilReady();
    const slot = calculateSlot(name);
    const spool = join(dirname(dirname(process.env.SPOOLD)), 'cli', 'spool');
    const groups = execFileSync(spool, ['cluster', 'info', `127.0.0.1:${nodes[0]}`], { encoding: 'utf8' });
    const from = groups.match(new RegExp(`group (\\S+): .*leader 127\\.0\\.0\\.1:${nodes[0]}\\b`))[1];
    const to = groups.match(new RegExp(`group (\\S+): .*leader 127\\.0\\.0\\.1:${nodes[1]}\\b`))[1];
    execFileSync(spool, ['cluster', 'move-slots', `127.0.0.1:${nodes[0]}`, '--from', from, '--to', to,
      '--range', `${slot}-${slot}`], { encoding: 'utf8' });
    const q = new Queue(name, { connection: c });
    // Events from the new node reach the QueueEvents made before the move
    // (pushes until one is heard: the resubscription takes up to followMs).
    const heard = new Set();
    events.on('added', (args) => heard.add(args.jobId));
    const ids = [];
    await waitFor(async () => {
      ids.push((await q.add({ n: ids.length })).id);
      return ids.some((id) => heard.has(id));
    }, { timeout: 15000, interval: 100, what: `an event of '${name}' after its slot ${slot} moved from ${from} to ${to}` });
    await events.close();
    await q.close();
    c.disconnect();
  });

  test('Queue and Worker on a Cluster connection: every job of queues on three nodes is handled once', async () => {
    const conn = newCluster();
    const names = spreadNames('sdk-', 6);
    const queues = names.map((n) => new Queue(n, { connection: conn }));
    const added = [];
    for (const q of queues)
      added.push(...(await q.addBulk([{ data: { q: q.name, i: 0 } }, { data: { q: q.name, i: 1 } }])));
    const seen = new Map();
    const workers = names.map((n) => new Worker(n, async (job) => {
      seen.set(job.id, (seen.get(job.id) ?? 0) + 1);
      return { ok: job.data.i };
    }, { connection: conn, log: () => {} }));
    await waitFor(() => seen.size === added.length, { timeout: 20000, what: `${added.length} jobs handled` });
    await Promise.all(workers.map((w) => w.close()));
    for (const j of added) {
      assert.equal(seen.get(j.id), 1, `job ${j.id} handled once`);
      const again = await queues.find((q) => q.name === j.queueName).getJob(j.id);
      assert.equal(await again.getState(), 'done');
    }
    await Promise.all(queues.map((q) => q.close()));
    conn.disconnect();
  });
});
