// A replicated group of three (scripts/cluster start 3 --replicas 2) through
// ioredis Cluster while its Raft leader is killed with SIGKILL, again and
// again (docs/cluster.md, "Failure semantics"). A producer pushes with the
// SDK's Queue on a Cluster connection (each push carries its idempotency key
// and is sent again while its outcome is unknown); a consumer reserves and
// acks through a second Cluster. Checks: no acknowledged push lost, every
// acknowledged job delivered, no acknowledged ack undone, nothing delivered
// that was never pushed, and no push stored twice (one job id per pushed
// number). Prints the write pause at each kill.
//
// The consumer holds off from each kill until writes resume: a resent push
// finds its first copy only while that copy is unfinished, so a consumer
// that acked the first copy in between would make the resend a second job
// (the guarantee's stated limit); with it held off, a second job is a bug.
//
// SPOOL_FAILOVER_KILLS (default 3) and SPOOL_FAILOVER_SECONDS (load between
// kills, default 1.5) bound the run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { Queue } from '../dist/esm/index.js';
import { sleep, waitFor } from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const KILLS = Number(process.env.SPOOL_FAILOVER_KILLS ?? 3);
const SECONDS = Number(process.env.SPOOL_FAILOVER_SECONDS ?? 1.5);
const LEASE_MS = 3000;
let dir, nodes; // nodes: [{ i, port, pid }]

function scriptsCluster(cmd, ...args) {
  const spoold = process.env.SPOOLD;
  const env = {
    ...process.env, SPOOLD: spoold, SPOOL: join(dirname(dirname(spoold)), 'cli', 'spool'),
    SPOOL_CLUSTER_EXTRA: '--replica-election-ms 400',
  };
  return execFileSync(join(root, 'scripts', 'cluster'), [cmd, ...args], { env, encoding: 'utf8' });
}

function writeNodes() {
  writeFileSync(join(dir, 'nodes'), nodes.map((n) => `${n.i} 127.0.0.1:${n.port} ${n.pid}\n`).join(''));
}

/** The node that accepts a write now (a follower answers -MOVED, an electing node -CLUSTERDOWN). */
async function leader() {
  return waitFor(async () => {
    for (const n of nodes) {
      const r = new Redis({ port: n.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
      r.on('error', () => {});
      try {
        await r.connect();
        await r.call('JOB.PUSH', 'probe', '{}');
        return n;
      } catch {
        // not the leader, or down
      } finally {
        r.disconnect();
      }
    }
    return null;
  }, { timeout: 15000, what: 'a leader that accepts a write' });
}

/** SIGKILL of node n, then the same spoold command line started again on its data. */
async function killAndRestart(n) {
  const argv = readFileSync(`/proc/${n.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  process.kill(n.pid, 'SIGKILL');
  await waitFor(() => { try { process.kill(n.pid, 0); return false; } catch { return true; } }, { timeout: 10000, what: `node ${n.i} gone` });
  return () => {
    const p = spawn(argv[0], argv.slice(1), { detached: true, stdio: 'ignore' });
    p.unref();
    n.pid = p.pid;
    writeNodes();
  };
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'spool-node-failover-'));
  scriptsCluster('start', '3', '--dir', dir, '--replicas', '2');
  nodes = readFileSync(join(dir, 'nodes'), 'utf8').trim().split('\n').map((l) => {
    const [i, addr, pid] = l.split(' ');
    return { i: Number(i), port: Number(addr.split(':')[1]), pid: Number(pid) };
  });
});

after(() => {
  try {
    scriptsCluster('stop', dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function newCluster() {
  const c = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), {
    clusterRetryStrategy: () => 100, retryDelayOnClusterDown: 100, retryDelayOnFailover: 100,
    retryDelayOnTryAgain: 100, slotsRefreshTimeout: 1000, redisOptions: { connectTimeout: 1000 },
  });
  c.on('error', () => {});
  return c;
}

function fields(a) {
  if (!Array.isArray(a))
    return a;
  const o = {};
  for (let i = 0; i + 1 < a.length; i += 2)
    o[a[i]] = a[i + 1];
  return o;
}

test(`ioredis Cluster with the SDK: ${KILLS} leader kills lose no acknowledged push and store none twice`, { timeout: 240000 }, async () => {
  await leader();
  const pc = newCluster(), cc = newCluster();
  const q = new Queue('jq', { connection: pc });
  const acked = new Map(), unknown = new Set(), delivered = [], ackedAck = new Map();
  let n = 0, running = true, hold = false, lastAck = Date.now();
  const producer = (async () => {
    while (running) {
      const k = ++n;
      try {
        const job = await q.add({ n: k });
        acked.set(k, job.id);
        lastAck = Date.now();
      } catch {
        unknown.add(k);
      }
    }
  })();
  const consumeOnce = async () => {
    const r = await cc.call('JOB.RESERVE', 'NOWAIT', 'COUNT', '10', 'LEASE', String(LEASE_MS), 'FROM', 'jq');
    for (const j of (r ?? []).map(fields)) {
      delivered.push({ n: JSON.parse(j.payload).n, id: j.id, t: Date.now() });
      try {
        await cc.call('JOB.ACK', j.receipt);
        if (!ackedAck.has(j.id))
          ackedAck.set(j.id, Date.now());
      } catch {
        // unknown or STALE: not acknowledged
      }
    }
    return (r ?? []).length;
  };
  const consumer = (async () => {
    while (running) {
      if (hold) {
        await sleep(20);
        continue;
      }
      try {
        if (!(await consumeOnce()))
          await sleep(10);
      } catch {
        await sleep(50);
      }
    }
  })();
  const pauses = [];
  for (let k = 0; k < KILLS; k++) {
    await sleep(SECONDS * 1000);
    const victim = await leader();
    hold = true;
    const t0 = Date.now();
    const restart = await killAndRestart(victim);
    const pushedAtKill = acked.size;
    await waitFor(() => acked.size > pushedAtKill + 1, { timeout: 20000, what: `writes to resume after kill ${k + 1}` });
    pauses.push(lastAck - t0);
    hold = false;
    console.log(`# failover ${k + 1}: killed node ${victim.i}, writes resumed after ${pauses.at(-1)} ms`);
    restart();
  }
  running = false;
  await producer;
  await consumer;
  let quietSince = Date.now();
  while (Date.now() - quietSince < LEASE_MS + 1000) { // drain, past every lease
    let got = 0;
    try {
      got = await consumeOnce();
    } catch {
      await sleep(50);
    }
    if (got)
      quietSince = Date.now();
    else
      await sleep(50);
  }
  pc.disconnect();
  cc.disconnect();
  const seen = new Set(delivered.map((d) => d.n));
  const lost = [...acked.keys()].filter((k) => !seen.has(k));
  const undone = delivered.filter((d) => ackedAck.has(d.id) && d.t > ackedAck.get(d.id)).map((d) => d.n);
  const phantom = [...seen].filter((k) => !acked.has(k) && !unknown.has(k));
  const ids = new Map();
  for (const d of delivered)
    ids.set(d.n, (ids.get(d.n) ?? new Set()).add(d.id));
  const twice = [...ids].filter(([, s]) => s.size > 1).map(([k]) => k);
  const sorted = [...pauses].sort((a, b) => a - b);
  console.log(`# ${n} pushes (${acked.size} acknowledged, ${unknown.size} failed after their resends), ` +
    `${delivered.length} deliveries, ${ackedAck.size} acks acknowledged; write pause p50 ` +
    `${sorted[Math.floor((sorted.length - 1) / 2)]} ms, max ${sorted.at(-1)} ms`);
  assert.deepEqual(lost, [], 'acknowledged pushes never delivered');
  assert.deepEqual(undone, [], 'jobs delivered again after their ack was acknowledged');
  assert.deepEqual(phantom, [], 'delivered but never pushed');
  assert.deepEqual(twice, [], 'pushes stored as two jobs (a resend did not find its first copy)');
  assert.ok(Math.max(...pauses) < 10000, `writes resumed within the push retry window (max ${Math.max(...pauses)} ms)`);
});
