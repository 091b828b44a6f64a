/*
 * options.ts - the options of Queue.add and Queue.schedule, and how they
 * become JOB.PUSH / SCHED.SET arguments.
 *
 * Names and meanings follow BullMQ where BullMQ has them:
 *   attempts n   -> RETRIES n-1   (attempts counts every run)
 *   priority p   -> PRI -p        (BullMQ: 1 is the highest, 0 = none and
 *                                   first; spool: higher PRI first, default 0)
 *   delay ms     -> DELAY ms
 *   jobId key    -> UNIQUE key    (a second add while the first is unfinished
 *                                   returns the first job's id)
 * and spool's own: lease, unique, group, expires, batch, at.
 * Options BullMQ has and spool keeps per queue (backoff, removeOnComplete,
 * removeOnFail) are refused with the call that does it instead, so nothing
 * is silently ignored.
 */
import { SpoolArgumentError } from './errors.js';

export interface JobsOptions {
  /** Start the job delayed by this many ms (DELAY). */
  delay?: number;
  /** Start the job at this time (AT): a Date or Unix ms. */
  at?: Date | number;
  /** BullMQ priority: 1 is served first, then 2, …, up to 1000; 0 or none = before all prioritised jobs (PRI -priority). */
  priority?: number;
  /** Runs in all, first one included (RETRIES attempts-1); 1 = never retried. Default: the queue's retries + 1. */
  attempts?: number;
  /** Lease of each delivery in ms (LEASE). Default: the queue's (30 s). */
  lease?: number;
  /** BullMQ's custom id: while a job added with this key is unfinished, adding again returns it (UNIQUE key). */
  jobId?: string;
  /** The same as jobId (spool's name). */
  unique?: string;
  /** Fair-queue group (GROUP key; spool issue 17). */
  group?: string;
  /** Drop the job if not started within this many ms (EXPIRES ms; spool issue 17). */
  expires?: number;
  /** Add the job to an open batch (BATCH id; spool issue 18). */
  batch?: string;
}

/** Options of Queue.schedule (SCHED.SET). */
export interface ScheduleOptions {
  /** Time zone of a cron spec (TZ), e.g. 'Europe/Berlin'. */
  tz?: string;
  /** As in JobsOptions. */
  priority?: number;
  /** As in JobsOptions. */
  attempts?: number;
  /** Do not enqueue a tick while the previous tick's job is unfinished (UNIQUE). */
  unique?: boolean;
  /** Missed ticks after downtime: skip them, run one, or run all (CATCHUP). */
  catchup?: 'none' | 'one' | 'all';
}

/** A cron expression, '@every 15m', '@hourly', …, or BullMQ's { pattern } / { every: ms }. */
export type RepeatSpec = string | { pattern: string; tz?: string } | { every: number };

const JOB_OPTION_NAMES = ['delay', 'at', 'priority', 'attempts', 'lease', 'jobId', 'unique', 'group', 'expires', 'batch'];

const REFUSED: Record<string, string> = {
  backoff: 'spool keeps the backoff per queue: call queue.setConfig({ backoff: ms, backoffMax: ms }) once, or give the Worker a backoff option',
  removeOnComplete: "spool keeps done jobs for the queue's retention: queue.setConfig({ retention: ms, retentionMax: n })",
  removeOnFail: 'spool keeps dead jobs until retried or cleaned: queue.clean(grace, limit, "failed")',
  lifo: 'spool serves FIFO within a priority; use priority instead',
  repeat: 'use queue.schedule(name, spec, data)',
  parent: 'use batches (batch option) for jobs that must finish together',
};

function whole(name: string, v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new SpoolArgumentError(`option ${name}: ${String(v)} is not ${what}`);
  return v;
}

/**
 * The JOB.PUSH arguments after the payload for `opts`, and the server
 * features they need (for a clear error from an older spoold).
 */
export function pushArgs(opts: JobsOptions | undefined): { args: (string | number)[]; features: string[] } {
  const args: (string | number)[] = [];
  const features: string[] = [];
  if (!opts)
    return { args, features };
  for (const k of Object.keys(opts)) {
    if ((opts as Record<string, unknown>)[k] === undefined)
      continue;
    if (REFUSED[k])
      throw new SpoolArgumentError(`option ${k} is not a per-job option in spool: ${REFUSED[k]}`);
    if (!JOB_OPTION_NAMES.includes(k))
      throw new SpoolArgumentError(`unknown job option '${k}' (options: ${JOB_OPTION_NAMES.join(', ')})`);
  }
  if (opts.delay !== undefined && opts.at !== undefined)
    throw new SpoolArgumentError('options delay and at both set: give one');
  if (opts.delay !== undefined)
    args.push('DELAY', whole('delay', opts.delay, 0, 86400000 * 3650, 'milliseconds from 0 to 10 years'));
  if (opts.at !== undefined)
    args.push('AT', whole('at', opts.at instanceof Date ? opts.at.getTime() : opts.at, 0, Number.MAX_SAFE_INTEGER, 'a Date or Unix milliseconds'));
  if (opts.priority !== undefined && opts.priority !== 0)
    args.push('PRI', -whole('priority', opts.priority, 0, 1000, 'a whole number from 0 to 1000 (1 is served first)'));
  if (opts.attempts !== undefined)
    args.push('RETRIES', whole('attempts', opts.attempts, 1, 1001, 'a whole number from 1 to 1001 (runs in all)') - 1);
  if (opts.lease !== undefined)
    args.push('LEASE', whole('lease', opts.lease, 1, 86400000 * 7, 'milliseconds from 1 to 7 days'));
  if (opts.jobId !== undefined && opts.unique !== undefined && opts.jobId !== opts.unique)
    throw new SpoolArgumentError('options jobId and unique name the same thing and differ: give one');
  const unique = opts.jobId ?? opts.unique;
  if (unique !== undefined) {
    if (typeof unique !== 'string' || unique.length === 0 || Buffer.byteLength(unique) > 1024 || unique.includes('\0'))
      throw new SpoolArgumentError(`option jobId/unique: '${String(unique).slice(0, 64)}' is not a key of 1 to 1024 bytes without NUL`);
    args.push('UNIQUE', unique);
  }
  if (opts.group !== undefined) {
    if (typeof opts.group !== 'string' || opts.group.length === 0)
      throw new SpoolArgumentError('option group: give a non-empty string');
    args.push('GROUP', opts.group);
    features.push('JOB.PUSH GROUP');
  }
  if (opts.expires !== undefined) {
    args.push('EXPIRES', whole('expires', opts.expires, 1, 86400000 * 3650, 'milliseconds from 1 to 10 years'));
    features.push('JOB.PUSH EXPIRES');
  }
  if (opts.batch !== undefined) {
    if (typeof opts.batch !== 'string' || opts.batch.length === 0)
      throw new SpoolArgumentError('option batch: give the id BATCH.NEW returned');
    args.push('BATCH', opts.batch);
    features.push('JOB.PUSH BATCH');
  }
  return { args, features };
}

/** '@every 90s' etc. for BullMQ's { every: ms }. */
export function everySpec(ms: number): string {
  whole('every', ms, 1, 86400000 * 3650, 'milliseconds from 1 to 10 years');
  if (ms % 3600000 === 0)
    return `@every ${ms / 3600000}h`;
  if (ms % 60000 === 0)
    return `@every ${ms / 60000}m`;
  if (ms % 1000 === 0)
    return `@every ${ms / 1000}s`;
  return `@every ${ms}ms`;
}

/** The SCHED.SET arguments after the payload. */
export function scheduleArgs(opts: ScheduleOptions | undefined): (string | number)[] {
  const args: (string | number)[] = [];
  if (!opts)
    return args;
  if (opts.tz !== undefined)
    args.push('TZ', opts.tz);
  if (opts.priority !== undefined && opts.priority !== 0)
    args.push('PRI', -whole('priority', opts.priority, 0, 1000, 'a whole number from 0 to 1000 (1 is served first)'));
  if (opts.attempts !== undefined)
    args.push('RETRIES', whole('attempts', opts.attempts, 1, 1001, 'a whole number from 1 to 1001 (runs in all)') - 1);
  if (opts.unique)
    args.push('UNIQUE');
  if (opts.catchup !== undefined) {
    if (!['none', 'one', 'all'].includes(opts.catchup))
      throw new SpoolArgumentError(`option catchup: '${opts.catchup}' is not none, one or all`);
    args.push('CATCHUP', opts.catchup);
  }
  return args;
}
