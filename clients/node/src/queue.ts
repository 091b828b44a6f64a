/*
 * queue.ts - the producer and admin side: Queue.
 *
 * Every call is one or a few commands on the Queue's connection: add ->
 * JOB.PUSH, addBulk -> pipelined JOB.PUSH, getJob -> JOB.GET,
 * getJobCounts -> QUEUE.STATS, pause/resume -> QUEUE.PAUSE/RESUME,
 * retryJobs -> QUEUE.RETRY (or JOB.RETRY per delayed job), clean ->
 * QUEUE.PEEK + JOB.DEL, schedule -> SCHED.SET, setConfig/getConfig ->
 * QUEUE.CONFIG. The connection made here does not resend a command that was
 * in flight when it broke; pushes are sent again by add/addBulk themselves,
 * with the idempotency key each carries (idem.ts, docs/node.md "Pushes whose
 * outcome is unknown").
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { call, createConnection, isRedisInstance, pairs } from './connection.js';
import type { ConnectionOptions } from './connection.js';
import { SpoolArgumentError, SpoolError, toSpoolError } from './errors.js';
import { Job } from './job.js';
import { everySpec, pushArgs, scheduleArgs } from './options.js';
import { idempotencyKey, outcomeUnknown, pushRetryMs, pushWithRetry, unlessClosed } from './idem.js';
import type { JobsOptions, RepeatSpec, ScheduleOptions } from './options.js';

export interface QueueOptions {
  /** An ioredis instance (shared, not closed by close()), ioredis options, or a spool:// URL. Default: SPOOL_URL, else spool://127.0.0.1:7379. */
  connection?: ConnectionOptions;
  /** Options merged under every add's own. */
  defaultJobOptions?: JobsOptions;
  /**
   * How long (ms) a push whose outcome is unknown (connection lost with it in
   * flight, -CLUSTERDOWN, -TRYAGAIN) is sent again with its idempotency key.
   * Default 10000. 0 or false: never, and pushes without jobId carry no key.
   */
  pushRetry?: number | false;
}

/** Counts per state (spool's names, and BullMQ's names for the same counts). */
export interface JobCounts {
  ready: number; reserved: number; delayed: number; done: number; dead: number;
  waiting: number; active: number; completed: number; failed: number;
  [state: string]: number;
}

/** A queue's settings (QUEUE.CONFIG), in camelCase. */
export interface QueueConfig {
  retries?: number;
  backoff?: number;
  backoffMax?: number;
  lease?: number;
  maxlen?: number;
  payload?: 'json' | 'raw';
  retention?: number;
  retentionMax?: number;
  [name: string]: number | string | undefined;
}

const STATE_ALIASES: Record<string, string> = {
  ready: 'ready', waiting: 'ready', wait: 'ready',
  reserved: 'reserved', active: 'reserved',
  delayed: 'delayed',
  done: 'done', completed: 'done',
  dead: 'dead', failed: 'dead',
  expired: 'expired',
};

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export function spoolState(state: string): string {
  const s = STATE_ALIASES[state];
  if (!s)
    throw new SpoolArgumentError(`unknown job state '${state}' (ready|waiting, reserved|active, delayed, done|completed, dead|failed, expired)`);
  return s;
}

export class Queue<DataType = unknown, ResultType = unknown> extends EventEmitter {
  readonly name: string;
  readonly opts: QueueOptions;
  /** The connection commands go on. */
  readonly client: Redis;
  private readonly ownsClient: boolean;

  constructor(name: string, opts: QueueOptions = {}) {
    super();
    if (typeof name !== 'string' || name.length === 0)
      throw new SpoolArgumentError('a Queue needs a name (a non-empty string)');
    this.name = name;
    this.opts = opts;
    this.ownsClient = !isRedisInstance(opts.connection);
    this.client = this.ownsClient ? createConnection(opts.connection, false) : (opts.connection as Redis);
    // Connection errors reach the calls that were refused; 'error' listeners see them too.
    if (this.ownsClient)
      this.client.on('error', (err: Error) => {
        if (this.listenerCount('error') > 0)
          this.emit('error', err);
      });
  }

  /** Resolves once the connection is up. */
  async waitUntilReady(): Promise<void> {
    if (this.client.status !== 'ready')
      await call(this.client, ['PING']);
  }

  private merged(opts?: JobsOptions): JobsOptions {
    return { ...(this.opts.defaultJobOptions ?? {}), ...(opts ?? {}) };
  }

  private get retryMs(): number {
    return pushRetryMs(this.opts.pushRetry);
  }

  /** The JOB.PUSH arguments of one job, with its idempotency key (the caller's, else a new one unless retries are off). */
  private prepare(data: DataType, opts?: JobsOptions) {
    const o = this.merged(opts);
    const { args, features } = pushArgs(o);
    let key = o.jobId ?? o.unique;
    if (key === undefined && this.retryMs > 0) {
      key = idempotencyKey();
      args.push('UNIQUE', key);
    }
    return { data, o, features, key, argv: ['JOB.PUSH', this.name, encode(data), ...args.map(String)] };
  }

  private made(p: { data: DataType; o: JobsOptions }, id: unknown): Job<DataType, ResultType> {
    const job = new Job<DataType, ResultType>(this.client, this.name, String(id), p.data, p.o);
    job.state = p.o.delay || p.o.at ? 'delayed' : 'ready';
    return job;
  }

  /** One push, sent again with its key while its outcome is unknown (up to pushRetry ms). */
  private push(p: ReturnType<Queue<DataType, ResultType>['prepare']>, retryMs = this.retryMs): Promise<unknown> {
    return pushWithRetry(retryMs, `push to queue '${this.name}'`, p.key,
      () => unlessClosed(this.client, this.client.status === 'ready', call(this.client, p.argv, p.features)));
  }

  /** Adds a job (JOB.PUSH). Its payload is JSON.stringify(data). */
  async add(data: DataType, opts?: JobsOptions): Promise<Job<DataType, ResultType>> {
    const p = this.prepare(data, opts);
    return this.made(p, await this.push(p));
  }

  /**
   * Adds many jobs in one round trip (pipelined JOB.PUSH). Not atomic: when
   * some are refused, the others are stored and the error thrown is a
   * SpoolError whose `results` holds a Job or an Error per item, in order.
   */
  async addBulk(jobs: { data: DataType; opts?: JobsOptions; name?: string }[]): Promise<Job<DataType, ResultType>[]> {
    const started = Date.now();
    const prepared = jobs.map((j) => this.prepare(j.data, j.opts));
    const pipe = this.client.pipeline();
    for (const p of prepared)
      pipe.call(...(p.argv as [string, ...string[]]));
    let replies: [Error | null, unknown][];
    try {
      replies = (await unlessClosed(this.client, this.client.status === 'ready', pipe.exec())) ?? [];
    } catch (err) { // the whole pipeline failed: every item's outcome is the same
      replies = prepared.map(() => [err as Error, null]);
    }
    const results: (Job<DataType, ResultType> | Error)[] = [];
    for (let i = 0; i < prepared.length; i++) { // items whose outcome is unknown: sent again alone, with their keys
      let [err, id] = replies[i] ?? [new Error('Connection is closed.'), null];
      if (err && prepared[i].key && this.retryMs > 0 && outcomeUnknown(toSpoolError(err, 'JOB.PUSH'))) {
        try {
          [err, id] = [null, await this.push(prepared[i], Math.max(0, this.retryMs - (Date.now() - started)) || 1)];
        } catch (e) {
          err = e as Error;
        }
      }
      results.push(err ? toSpoolError(err, 'JOB.PUSH') : this.made(prepared[i], id));
    }
    const failed = results.filter((r): r is Error => r instanceof Error);
    if (failed.length) {
      const e = new SpoolError(`addBulk: ${failed.length} of ${jobs.length} jobs were refused for queue '${this.name}' ` +
        `(the others were added; see .results); first: ${failed[0].message}`, 'BULK', 'JOB.PUSH');
      (e as SpoolError & { results: unknown }).results = results;
      throw e;
    }
    return results as Job<DataType, ResultType>[];
  }

  /** The job with this id (JOB.GET), or undefined when there is none (any more). */
  async getJob(id: string): Promise<Job<DataType, ResultType> | undefined> {
    const r = await call(this.client, ['JOB.GET', id]);
    return r === null ? undefined : Job.fromRecord<DataType, ResultType>(this.client, r);
  }

  /** Jobs in one state, oldest first (QUEUE.PEEK), at most `count` (paged through when over 1000). */
  async getJobs(state: string, count = 100): Promise<Job<DataType, ResultType>[]> {
    const s = spoolState(state);
    const out: Job<DataType, ResultType>[] = [];
    let after: string | undefined;
    while (out.length < count) {
      const n = Math.min(1000, count - out.length);
      const args = ['QUEUE.PEEK', this.name, 'STATE', s, 'COUNT', n, ...(after ? ['AFTER', after] : [])];
      const page = (await call(this.client, args)) as unknown[] | null;
      if (!page || page.length === 0)
        break;
      for (const r of page)
        out.push(Job.fromRecord<DataType, ResultType>(this.client, r));
      if (page.length < n)
        break;
      after = out[out.length - 1].id;
    }
    return out;
  }

  /** Counts per state (QUEUE.STATS); with types, only those (either naming). */
  async getJobCounts(...types: string[]): Promise<JobCounts> {
    const r = pairs(await call(this.client, ['QUEUE.STATS', this.name]));
    const all: JobCounts = {
      ready: Number(r.ready ?? 0), reserved: Number(r.reserved ?? 0), delayed: Number(r.delayed ?? 0),
      done: Number(r.done ?? 0), dead: Number(r.dead ?? 0),
      waiting: Number(r.ready ?? 0), active: Number(r.reserved ?? 0), completed: Number(r.done ?? 0), failed: Number(r.dead ?? 0),
    };
    // Since spool issue 17, `expired` counts jobs in the expired state and
    // lease expiries are `lease_expired`; before, `expired` counted lease expiries.
    if (r.lease_expired !== undefined)
      all.expired = Number(r.expired ?? 0);
    if (types.length === 0)
      return all;
    const some = {} as JobCounts;
    for (const t of types) {
      spoolState(t);
      some[t] = all[t] ?? 0;
    }
    return some;
  }

  /** The whole QUEUE.STATS reply (counters since start, oldest ready age, waiters, paused). */
  async getStats(): Promise<Record<string, number>> {
    const r = pairs(await call(this.client, ['QUEUE.STATS', this.name]));
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)]));
  }

  /** Stops deliveries (QUEUE.PAUSE); pushes are still accepted. */
  async pause(): Promise<void> {
    await call(this.client, ['QUEUE.PAUSE', this.name]);
  }

  async resume(): Promise<void> {
    await call(this.client, ['QUEUE.RESUME', this.name]);
  }

  async isPaused(): Promise<boolean> {
    return Number(pairs(await call(this.client, ['QUEUE.STATS', this.name])).paused) === 1;
  }

  /**
   * Makes failed (dead) jobs ready again (QUEUE.RETRY), only those whose
   * error matches `error` when given (QUEUE.RETRY … ERROR pattern, spool
   * issue 17), or delayed jobs ready now (`state: 'delayed'`, JOB.RETRY each).
   * Returns how many.
   */
  async retryJobs(opts: { state?: 'failed' | 'dead' | 'delayed'; error?: string } = {}): Promise<number> {
    const s = spoolState(opts.state ?? 'failed');
    if (s === 'delayed') {
      if (opts.error !== undefined)
        throw new SpoolArgumentError("retryJobs: error works with state 'failed' only");
      const jobs = await this.getJobs('delayed', 1e6);
      let n = 0;
      for (const j of jobs) {
        try {
          await call(this.client, ['JOB.RETRY', j.id]);
          n++;
        } catch (e) {
          if (!(e instanceof SpoolError))
            throw e; /* gone or changed state meanwhile: not counted */
        }
      }
      return n;
    }
    if (s !== 'dead')
      throw new SpoolArgumentError(`retryJobs: state '${opts.state}' cannot be retried (failed or delayed)`);
    if (opts.error !== undefined)
      return Number(await call(this.client, ['QUEUE.RETRY', this.name, 'ERROR', opts.error], 'QUEUE.RETRY ERROR'));
    return Number(await call(this.client, ['QUEUE.RETRY', this.name]));
  }

  /**
   * Deletes up to `limit` (0 = all) jobs of one state that last changed more
   * than `grace` ms ago (QUEUE.PEEK, then JOB.DEL); returns their ids. As
   * BullMQ's clean(grace, limit, type); type defaults to 'completed'.
   */
  async clean(grace: number, limit = 0, type = 'completed'): Promise<string[]> {
    const s = spoolState(type);
    const cutoff = Date.now() - Math.max(0, grace);
    const jobs = await this.getJobs(s, 1e7);
    const ids: string[] = [];
    for (const j of jobs) {
      if (limit > 0 && ids.length >= limit)
        break;
      if (Number(j.raw?.updated_at ?? 0) <= cutoff)
        ids.push(j.id);
    }
    const deleted: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const pipe = this.client.pipeline();
      for (const id of chunk)
        pipe.call('JOB.DEL', id);
      const replies = (await pipe.exec()) ?? [];
      replies.forEach(([err, n], k) => {
        if (!err && Number(n) > 0)
          deleted.push(chunk[k]);
      });
    }
    return deleted;
  }

  /** Deletes every job of the queue but the reserved ones (QUEUE.PURGE); returns how many. */
  async drain(): Promise<number> {
    return Number(await call(this.client, ['QUEUE.PURGE', this.name]));
  }

  /**
   * A durable schedule that adds `data` to this queue on every tick
   * (`SCHED.SET name queue spec payload …`, spool issue 18). `spec`: a cron
   * expression (5 fields, or 6 with seconds first), '@hourly', '@every 15m',
   * or BullMQ's { pattern, tz } / { every: ms }.
   */
  async schedule(name: string, spec: RepeatSpec, data: DataType, opts: ScheduleOptions = {}): Promise<void> {
    let s: string;
    const o = { ...opts };
    if (typeof spec === 'string')
      s = spec;
    else if ('every' in spec)
      s = everySpec(spec.every);
    else {
      s = spec.pattern;
      if (spec.tz && o.tz === undefined)
        o.tz = spec.tz;
    }
    if (!name || !s)
      throw new SpoolArgumentError('schedule needs a name and a spec (cron, @every duration, { every: ms })');
    await call(this.client, ['SCHED.SET', name, this.name, s, encode(data), ...scheduleArgs(o)], 'SCHED.SET');
  }

  /** Removes a schedule (SCHED.DEL); true when it existed. */
  async removeSchedule(name: string): Promise<boolean> {
    return Number(await call(this.client, ['SCHED.DEL', name], 'SCHED.DEL')) > 0;
  }

  /** The schedules of this queue (SCHED.LIST queue), as the server describes them. */
  async getSchedules(): Promise<Record<string, unknown>[]> {
    const r = (await call(this.client, ['SCHED.LIST', this.name], 'SCHED.LIST')) as unknown[] | null;
    return (r ?? []).map((x) => (Array.isArray(x) ? pairs(x) : { name: x }));
  }

  /** The queue's settings (QUEUE.CONFIG GET). */
  async getConfig(): Promise<QueueConfig> {
    const r = pairs(await call(this.client, ['QUEUE.CONFIG', this.name, 'GET']));
    const out: QueueConfig = {};
    for (const [k, v] of Object.entries(r))
      out[camel(k)] = /^-?\d+$/.test(String(v)) ? Number(v) : String(v);
    return out;
  }

  /** Changes settings (QUEUE.CONFIG SET), e.g. { retries: 10, backoff: 30000, lease: 60000 }. */
  async setConfig(config: QueueConfig): Promise<void> {
    const args: (string | number)[] = [];
    for (const [k, v] of Object.entries(config))
      if (v !== undefined)
        args.push(kebab(k), v);
    if (args.length === 0)
      throw new SpoolArgumentError('setConfig needs at least one setting');
    await call(this.client, ['QUEUE.CONFIG', this.name, 'SET', ...args]);
  }

  /** Closes the connection it made (not one you passed in). */
  async close(): Promise<void> {
    if (!this.ownsClient)
      return;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}

/** A job's payload: JSON text of data. */
export function encode(data: unknown): string {
  const s = JSON.stringify(data);
  if (s === undefined)
    throw new SpoolArgumentError(`job data ${String(data)} cannot be JSON-encoded (give an object, array, string, number, boolean or null)`);
  return s;
}
