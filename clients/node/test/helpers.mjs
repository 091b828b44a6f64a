// helpers.mjs - the SDK tests' helpers: a real spoold per test file and
// polling with deadlines come from the one module every Node suite shares
// (tests/support/spoold.mjs); here only what needs ioredis (a client of the
// server) and replies read as objects.
import { Redis } from 'ioredis';
import { startSpoold as start, waitFor, sleep } from '../../../tests/support/spoold.mjs';

export { waitFor, sleep };

/** A spoold (see tests/support/spoold.mjs) with url(), connection() and client() for the SDK. */
export async function startSpoold(opts = {}) {
  const s = await start(opts);
  s.url = () => `spool://127.0.0.1:${s.port}`;
  s.connection = () => ({ host: '127.0.0.1', port: s.port });
  s.client = () => {
    const c = new Redis({ host: '127.0.0.1', port: s.port, maxRetriesPerRequest: 3, lazyConnect: false });
    c.on('error', () => {});
    return c;
  };
  return s;
}

/** QUEUE.STATS as an object of numbers. */
export async function stats(client, queue) {
  const a = await client.call('QUEUE.STATS', queue);
  const o = {};
  for (let i = 0; i < a.length; i += 2)
    o[a[i]] = Number(a[i + 1]);
  return o;
}

/** JOB.GET as an object (null when gone). */
export async function jobGet(client, id) {
  const a = await client.call('JOB.GET', id);
  if (!a)
    return null;
  const o = {};
  for (let i = 0; i < a.length; i += 2)
    o[a[i]] = a[i + 1];
  return o;
}
