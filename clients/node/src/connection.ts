/*
 * connection.ts - where the broker is, and one helper to send a command.
 *
 * A Queue, Worker or QueueEvents takes `connection`: an ioredis instance
 * (shared: the caller closes it), an ioredis `Cluster` for a spoold cluster
 * (docs/cluster.md: it follows -MOVED and -ASK; job ids and receipts carry
 * their slot), ioredis options, or a URL
 * (`spool://[user:password@]host[:port]`, `redis://…`). Without one, the
 * SPOOL_URL environment variable, else spool://127.0.0.1:7379, as libspool.
 * Connections made here reconnect with exponential backoff (100 ms doubling
 * to 10 s, each delay drawn between half and all of it, so many workers do
 * not reconnect in lock-step).
 */
import { Redis } from 'ioredis';
import type { Cluster, RedisOptions } from 'ioredis';
import { SpoolArgumentError, UnsupportedFeatureError, isUnknownCommandOrOption, toSpoolError } from './errors.js';

/** What `connection` may be. */
export type ConnectionOptions = Redis | Cluster | RedisOptions | string;

export const DEFAULT_URL = 'spool://127.0.0.1:7379';

/** Reconnect delay for attempt n (1-based): 100 ms doubling to maxMs, drawn in [half, all]. */
export function reconnectDelay(attempt: number, minMs = 100, maxMs = 10000): number {
  const full = Math.min(maxMs, minMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(full / 2 + Math.random() * (full / 2));
}

function fromUrl(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url.replace(/^spool:\/\//, 'redis://'));
  } catch {
    throw new SpoolArgumentError(`connection URL '${url}' is malformed (expected spool://[user:password@]host[:port])`);
  }
  if (u.protocol !== 'redis:')
    throw new SpoolArgumentError(`connection URL '${url}' has scheme ${u.protocol}; use spool:// or redis://`);
  const o: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 7379,
  };
  if (u.username)
    o.username = decodeURIComponent(u.username);
  if (u.password)
    o.password = decodeURIComponent(u.password);
  return o;
}

/** True when `c` is an ioredis client or Cluster (ours or the caller's). */
export function isRedisInstance(c: unknown): c is Redis | Cluster {
  return !!c && typeof (c as Redis).call === 'function' && typeof (c as Redis).duplicate === 'function';
}

/** True when `c` is an ioredis Cluster. */
export function isCluster(c: unknown): c is Cluster {
  return isRedisInstance(c) && (c as unknown as Cluster).isCluster === true;
}

/**
 * A copy of `conn` with `extra` options. A Cluster keeps its nodes and
 * gives `extra` to the connection of each node. The copy is typed Redis:
 * the calls the SDK makes (call, pipeline, quit, duplicate) are the same.
 */
export function duplicateConnection(conn: Redis | Cluster, extra: RedisOptions): Redis {
  if (!isCluster(conn))
    return conn.duplicate(extra);
  const redisOptions = { ...(conn.options.redisOptions ?? {}), ...extra };
  delete redisOptions.retryStrategy; // a Cluster reconnects by clusterRetryStrategy
  return conn.duplicate([], {
    redisOptions,
    clusterRetryStrategy: (times: number) => reconnectDelay(times),
  }) as unknown as Redis;
}

/**
 * A new connection of our own for `connection` (an instance is duplicated).
 * `worker`: commands wait through reconnects and unanswered ones are sent
 * again (acks are safe to repeat: a repeat is refused as STALE). Otherwise
 * (producers) a command in flight when the connection breaks fails, as with
 * libspool: only the caller knows whether a duplicate push matters.
 */
export function createConnection(connection: ConnectionOptions | undefined, worker: boolean, name?: string): Redis {
  const extra: RedisOptions = {
    retryStrategy: (times: number) => reconnectDelay(times),
    maxRetriesPerRequest: worker ? null : 20,
    autoResendUnfulfilledCommands: worker,
    lazyConnect: false,
  };
  if (name)
    extra.connectionName = name;
  if (isRedisInstance(connection))
    return duplicateConnection(connection, extra);
  const base = typeof connection === 'string' ? fromUrl(connection)
    : connection ? { ...connection } : fromUrl(process.env.SPOOL_URL || DEFAULT_URL);
  if (base.port === undefined && !(base as { path?: string }).path)
    base.port = 7379;
  return new Redis({ ...base, ...extra });
}

/** The feature names of the commands and options newer than today's spoold, with the change each needs. */
export const FEATURES: Record<string, string> = {
  'JOB.PUSH GROUP': 'groups (spool issue 17)',
  'JOB.PUSH EXPIRES': 'expiring jobs (spool issue 17)',
  'QUEUE.RETRY ERROR': 'redrive by error text (spool issue 17)',
  'JOB.PUSH BATCH': 'batches (spool issue 18)',
  'SCHED.SET': 'schedules (spool issue 18)',
  'SCHED.DEL': 'schedules (spool issue 18)',
  'SCHED.LIST': 'schedules (spool issue 18)',
  'JOB.ACK RESULT': 'job results (spool issue 18)',
  'JOB.PROGRESS': 'job progress (spool issue 18)',
  'JOB.WAIT': 'JOB.WAIT (spool issue 18)',
};

/**
 * Sends one command and maps an error reply to its typed error. `feature`
 * names what the command needs beyond the base protocol: a refusal of an
 * unknown command or option becomes an UnsupportedFeatureError for it.
 */
export async function call(conn: Redis, args: (string | number | Buffer)[], feature?: string | string[]): Promise<unknown> {
  const [cmd, ...rest] = args;
  try {
    return await conn.call(String(cmd), ...rest.map((a) => (typeof a === 'number' ? String(a) : a)));
  } catch (err) {
    const name = String(cmd).toUpperCase();
    if (feature && feature.length && err instanceof Error && err.name === 'ReplyError' &&
        isUnknownCommandOrOption(err.message)) {
      const list = Array.isArray(feature) ? feature : [feature];
      const f = list.find((x) => err.message.includes(`'${x.split(' ').pop()}'`)) ?? list[0];
      throw new UnsupportedFeatureError(f, FEATURES[f] ?? 'a newer spoold', err.message, name);
    }
    throw toSpoolError(err, name);
  }
}

/** A RESP2 flat field/value array (or a RESP3 map that ioredis gave as an object) as an object. */
export function pairs(reply: unknown): Record<string, unknown> {
  if (reply && !Array.isArray(reply) && typeof reply === 'object')
    return reply as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const a = reply as unknown[];
  for (let i = 0; i + 1 < a.length; i += 2)
    out[String(a[i])] = a[i + 1];
  return out;
}
