/*
 * idem.ts - pushes whose outcome is unknown, sent again safely.
 *
 * Every push carries an idempotency key: the caller's own (`jobId` /
 * `unique`), else one made here, 128 random bits as 32 hex digits, once per
 * add() call and per addBulk() item. JOB.PUSH ... UNIQUE key answers a push
 * whose key an unfinished job of the queue holds with that job's id and
 * stores nothing, so a push can be sent again when its outcome is unknown:
 * the connection broke with it in flight, a replicated cluster answered
 * -CLUSTERDOWN (its leader was lost) or -TRYAGAIN (its slot is moving), or
 * the node is -LOADING. Resends wait 50 ms doubling to 1 s, for at most
 * `pushRetry` ms (default 10 s) from the first attempt. ioredis follows
 * -MOVED itself (a Cluster refreshes its map).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SpoolError } from './errors.js';

/** How long a push whose outcome is unknown is sent again, by default (ms). */
export const DEFAULT_PUSH_RETRY_MS = 10000;
const FIRST_DELAY_MS = 50;
const MAX_DELAY_MS = 1000;

/** A new idempotency key: 128 random bits as 32 lowercase hex digits. */
export function idempotencyKey(): string {
  return randomBytes(16).toString('hex');
}

const UNKNOWN_REPLY = /^(CLUSTERDOWN|TRYAGAIN|LOADING)\b/;
const UNKNOWN_CONNECTION = new RegExp([
  'Connection is closed', "Stream isn't writeable", 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT',
  'max retries per request', 'Command timed out', 'refresh slots cache', 'None of startup nodes',
  "Cluster isn't ready", 'All nodes failed', 'Too many Cluster redirections',
].map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'i');

/** True when a failed push may or may not have been stored (a resend with its key is safe). */
export function outcomeUnknown(err: unknown): boolean {
  if (!(err instanceof Error))
    return false;
  if (UNKNOWN_REPLY.test(err.message))
    return true;
  if (err.name === 'ReplyError' || err instanceof SpoolError)
    return false; // the server answered: an outcome
  return UNKNOWN_CONNECTION.test(err.message) || err.name === 'MaxRetriesPerRequestError' ||
    err.name === 'ClusterAllFailedError';
}

/** The pushRetry option as ms: a number >= 0 (0: no resends and no automatic key), default 10 s. */
export function pushRetryMs(v: number | false | undefined): number {
  if (v === undefined)
    return DEFAULT_PUSH_RETRY_MS;
  return v === false ? 0 : v;
}

/**
 * `sent`, or a rejection with ioredis's 'Connection is closed.' when the
 * connection `conn` (a single node's, ready when the command was written)
 * closes first. ioredis forgets the commands in flight at a reconnect when
 * autoResendUnfulfilledCommands is off (their promises never settle); a push
 * must learn that its outcome is unknown, to send it again with its key.
 */
const inFlight = new WeakMap<Redis, Set<() => void>>();

export function unlessClosed<T>(conn: Redis, wasReady: boolean, sent: Promise<T>): Promise<T> {
  if (!wasReady || (conn as unknown as { isCluster?: boolean }).isCluster)
    return sent;
  let waiting = inFlight.get(conn);
  if (!waiting) { // one 'close' listener per connection, however many pushes are in flight
    const set = new Set<() => void>();
    conn.on('close', () => {
      for (const fail of [...set])
        fail();
    });
    inFlight.set(conn, set);
    waiting = set;
  }
  const pending = waiting;
  return new Promise<T>((resolve, reject) => {
    const closed = () => {
      pending.delete(closed);
      reject(new Error('Connection is closed.'));
    };
    pending.add(closed);
    sent.then((v) => {
      pending.delete(closed);
      resolve(v);
    }, (e) => {
      pending.delete(closed);
      reject(e);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `push` and, while it fails with an unknown outcome and `limitMs` has
 * not passed, runs it again (it must send the same key). The error that ends
 * it says how often it was sent and which key it carried.
 */
export async function pushWithRetry<T>(limitMs: number, what: string, key: string | undefined,
  push: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + limitMs;
  let delay = FIRST_DELAY_MS;
  for (let tries = 1; ; tries++) {
    try {
      return await push();
    } catch (err) {
      const left = deadline - Date.now();
      if (!key || limitMs <= 0 || !outcomeUnknown(err))
        throw err;
      if (left <= 0) {
        (err as Error).message += ` (${what} sent ${tries} times in ${limitMs} ms with UNIQUE key ${key}; ` +
          'outcome unknown: getJob or a push with that key will tell; raise the pushRetry option to wait longer)';
        throw err;
      }
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
}
