/*
 * job.ts - a job as a Queue or a Worker sees it.
 *
 * A Job comes from Queue.add (id and data), Queue.getJob (the whole record
 * of JOB.GET) or a Worker's reservation (id, receipt, data, attempt). The
 * receipt names one delivery: progress updates from a handler go with it,
 * so a worker that lost its lease cannot report on another worker's run.
 */
import type { Redis } from 'ioredis';
import { call, duplicateConnection, pairs } from './connection.js';
import { JobFailedError, SpoolArgumentError } from './errors.js';
import type { JobsOptions } from './options.js';

export type JobState = 'ready' | 'reserved' | 'delayed' | 'done' | 'dead' | 'expired' | 'unknown';

/** Payloads are JSON: parse them, and give a non-JSON payload (a `raw` queue) as its string. */
export function decodePayload(payload: unknown): unknown {
  if (payload === null || payload === undefined)
    return payload;
  const text = String(payload);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function num(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}

export class Job<DataType = unknown, ResultType = unknown> {
  /** The job id (16 hex digits; treat as opaque). */
  readonly id: string;
  readonly queueName: string;
  data: DataType;
  /** The options given to Queue.add (empty for jobs read back from the server). */
  opts: JobsOptions;
  /** The receipt of this delivery (jobs handed to a Worker's handler). */
  receipt?: string;
  /** spool's delivery count: 1 on the first run. */
  attempt = 0;
  /** Attempts that ended before this one (BullMQ's meaning while a handler runs). */
  attemptsMade = 0;
  /** Lease of this delivery in ms (worker jobs). */
  leaseMs = 0;
  state: JobState = 'unknown';
  /** BullMQ priority (lower first, 0 = none): minus spool's PRI. */
  priority = 0;
  retries = 0;
  /** created_at, Unix ms. */
  timestamp = 0;
  /** When a done or dead job finished (updated_at), Unix ms. */
  finishedOn?: number;
  failedReason?: string;
  returnvalue?: ResultType;
  progress: unknown = 0;
  unique?: string;
  /** True once a lease extension was refused: the job may be running elsewhere and its result is dropped. */
  leaseLost = false;
  /** The JOB.GET record as the server sent it (jobs from getJob). */
  raw?: Record<string, unknown>;

  /** @internal */ readonly conn: Redis;

  constructor(conn: Redis, queueName: string, id: string, data: DataType, opts: JobsOptions = {}) {
    Object.defineProperty(this, 'conn', { value: conn, enumerable: false });
    this.conn = conn;
    this.queueName = queueName;
    this.id = id;
    this.data = data;
    this.opts = opts;
  }

  /** @internal A job from a JOB.GET record. */
  static fromRecord<D, R>(conn: Redis, reply: unknown): Job<D, R> {
    const r = pairs(reply);
    const job = new Job<D, R>(conn, String(r.queue), String(r.id), decodePayload(r.payload) as D);
    job.raw = r;
    job.state = String(r.state) as JobState;
    job.attempt = num(r.attempt);
    job.attemptsMade = job.state === 'reserved' ? Math.max(0, job.attempt - 1) : job.attempt;
    job.priority = -num(r.priority);
    job.retries = num(r.retries);
    job.leaseMs = num(r.lease_ms);
    job.timestamp = num(r.created_at);
    if (job.state === 'done' || job.state === 'dead' || job.state === 'expired')
      job.finishedOn = num(r.updated_at);
    if (r.last_error !== null && r.last_error !== undefined)
      job.failedReason = String(r.last_error);
    if (r.unique !== null && r.unique !== undefined)
      job.unique = String(r.unique);
    if (r.result !== null && r.result !== undefined)
      job.returnvalue = decodePayload(r.result) as R;
    if (r.progress !== null && r.progress !== undefined)
      job.progress = decodePayload(r.progress);
    return job;
  }

  /**
   * Reports progress of a running job: `JOB.PROGRESS receipt value` (a
   * number 0-100 or a small JSON object; published as a `progress` event).
   * Only inside a Worker's handler. Needs a spoold with job progress
   * (issue 18): an older one refuses with UnsupportedFeatureError.
   */
  async updateProgress(progress: number | object): Promise<void> {
    if (!this.receipt)
      throw new SpoolArgumentError(`job ${this.id}: updateProgress works only on a job a Worker is running (it needs the delivery's receipt)`);
    if (typeof progress === 'number' && !(progress >= 0 && progress <= 100))
      throw new SpoolArgumentError(`job ${this.id}: progress ${progress} is not a number from 0 to 100 (or an object)`);
    const value = typeof progress === 'number' ? String(progress) : JSON.stringify(progress);
    await call(this.conn, ['JOB.PROGRESS', this.receipt, value], 'JOB.PROGRESS');
    this.progress = progress;
  }

  /**
   * Waits until the job is done (resolves with its result), or dead or
   * expired (rejects with JobFailedError): `JOB.WAIT id TIMEOUT ms` on a
   * connection of its own. `ttl` (ms, default: no limit) bounds the wait;
   * past it, rejects with an Error saying so. The first argument exists for
   * BullMQ compatibility (a QueueEvents) and is not needed. Needs a spoold
   * with JOB.WAIT (issue 18).
   */
  async waitUntilFinished(_queueEvents?: unknown, ttl?: number): Promise<ResultType> {
    const conn = duplicateConnection(this.conn, { maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false });
    conn.on('error', () => undefined); /* the wait's own rejection reports it */
    try {
      const args: (string | number)[] = ['JOB.WAIT', this.id];
      if (ttl !== undefined && ttl > 0)
        args.push('TIMEOUT', Math.ceil(ttl));
      const reply = await call(conn, args, 'JOB.WAIT');
      if (reply === null)
        throw new Error(`job ${this.id} in queue '${this.queueName}' did not finish within ${ttl} ms`);
      const { state, result, error } = parseWaitReply(reply);
      if (state !== 'done')
        throw new JobFailedError(this.id, state, error ?? '');
      this.returnvalue = decodePayload(result) as ResultType;
      return this.returnvalue;
    } finally {
      conn.disconnect();
    }
  }

  /** The job's current state (`JOB.GET`), 'unknown' when it is gone. */
  async getState(): Promise<JobState> {
    const r = await call(this.conn, ['JOB.GET', this.id]);
    return r === null ? 'unknown' : (String(pairs(r).state) as JobState);
  }

  /** Deletes the job in any state (`JOB.DEL`); true when it existed. */
  async remove(): Promise<boolean> {
    return Number(await call(this.conn, ['JOB.DEL', this.id])) > 0;
  }

  /** A dead or delayed job becomes ready now (`JOB.RETRY`). */
  async retry(): Promise<void> {
    await call(this.conn, ['JOB.RETRY', this.id]);
  }
}

/** JOB.WAIT's reply: a map or flat array with state/result/last_error, or a [state, result] pair. */
function parseWaitReply(reply: unknown): { state: string; result: unknown; error?: string } {
  if (Array.isArray(reply) && reply.length === 2 && !['state', 'result'].includes(String(reply[0])))
    return { state: String(reply[0]), result: reply[1] };
  const r = pairs(reply);
  const err = r.last_error ?? r.error;
  return { state: String(r.state), result: r.result, error: err === null || err === undefined ? undefined : String(err) };
}
