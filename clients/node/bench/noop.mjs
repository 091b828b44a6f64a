#!/usr/bin/env node
// noop.mjs - jobs per second of a spool-client Worker whose handler does
// nothing: the SDK's overhead plus the broker's JOB.RESERVE + JOB.ACK
// round trips. The Node counterpart of examples/noop-bench.
//
// usage: node bench/noop.mjs [--url spool://host:port] [--concurrency N] [--jobs N] [--queue NAME]
// Pushes --jobs jobs (1000 per round trip) to a fresh queue, then times a
// Worker with --concurrency from its start until every job is acked. Prints:
//   concurrency=50 jobs=20000 seconds=1.234 jobs_per_sec=16207
import { parseArgs } from 'node:util';
import { Queue, Worker } from '../dist/esm/index.js';

const { values: o } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.SPOOL_URL ?? 'spool://127.0.0.1:7379' },
    concurrency: { type: 'string', default: '50' },
    jobs: { type: 'string', default: '10000' },
    queue: { type: 'string', default: `noop-node-${process.pid}` },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  console.log('usage: node bench/noop.mjs [--url spool://host:port] [--concurrency N] [--jobs N] [--queue NAME]');
  process.exit(0);
}
const n = Number(o.jobs);
const concurrency = Number(o.concurrency);
const queue = new Queue(o.queue, { connection: o.url });
await queue.drain();
for (let i = 0; i < n; i += 1000)
  await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ data: { i: i + k } })));
const t0 = process.hrtime.bigint();
const done = new Promise((resolve) => {
  const worker = new Worker(o.queue, async () => undefined, { connection: o.url, concurrency });
  worker.on('completed', () => {
    if (worker.counters.done === n)
      resolve(worker);
  });
});
const worker = await done;
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
await worker.close();
await queue.close();
console.log(`concurrency=${concurrency} jobs=${n} seconds=${seconds.toFixed(3)} jobs_per_sec=${Math.round(n / seconds)}`);
