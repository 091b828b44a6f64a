/*
 * worker.ts - Worker: runs a handler over a queue's jobs, at least once.
 *
 * One blocking connection reserves (`JOB.RESERVE TIMEOUT t COUNT free
 * [LEASE ms] FROM queue`, COUNT = free slots of `concurrency`); a second
 * connection carries acks, nacks and lease extensions, so they never wait
 * behind a blocked reserve. For each job:
 *   - the handler runs; while it runs a lease keeper sends `JOB.TOUCH
 *     receipt [LEASE ms]` every third of the delivery's lease;
 *   - returned value -> `JOB.ACK receipt RESULT json` (or a plain
 *     `JOB.ACK receipt` when it returned undefined, or when this spoold has
 *     no results: detected on the first refusal, logged once, then plain
 *     acks: the job is done, its result dropped);
 *   - thrown error -> `JOB.NACK receipt [DELAY backoff] ERROR message`, an
 *     UnrecoverableError adds DEAD;
 *   - a refused touch (STALE/NOJOB: the lease ran out and the job went to
 *     someone else) sets job.leaseLost, and the result is dropped, counted
 *     as `lost`.
 * Both connections reconnect with backoff and re-send what was unanswered:
 * an ack repeated after a broker restart lands once (a repeat is STALE).
 * close() stops reserving, lets running handlers finish and their results
 * be sent, then closes the connections; close(true) hands running jobs
 * back at once (`JOB.NACK receipt DELAY 0`) and drops their results.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { call, createConnection, pairs, reconnectDelay } from './connection.js';
import type { ConnectionOptions } from './connection.js';
import { NoJobError, SpoolArgumentError, SpoolError, StaleReceiptError, UnrecoverableError, UnsupportedFeatureError } from './errors.js';
import { Job, decodePayload } from './job.js';

export type Processor<DataType = unknown, ResultType = unknown> = (job: Job<DataType, ResultType>) => Promise<ResultType> | ResultType;

export type BackoffOption =
  | number
  | { type: 'fixed' | 'exponential'; delay: number; maxDelay?: number }
  | ((attempt: number, err: unknown, job: Job) => number);

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface WorkerOptions {
  /** As for Queue. The Worker makes two connections of its own from it (an instance is duplicated). */
  connection?: ConnectionOptions;
  /** Jobs run at once (default 1). */
  concurrency?: number;
  /** Lease of each delivery, ms (JOB.RESERVE … LEASE; default: the job's, else the queue's, 30 s). */
  lease?: number;
  /** Start at once (default true); otherwise call run(). */
  autorun?: boolean;
  /** How long one reserve blocks, ms (default 1000): also the longest close() waits for it. */
  reserveTimeout?: number;
  /**
   * Delay before a failed job's next attempt (JOB.NACK … DELAY): ms, a
   * BullMQ-style { type, delay }, or a function of the attempt (1-based),
   * the error and the job. Default: the queue's backoff (exponential with
   * jitter, QUEUE.CONFIG backoff/backoff-max).
   */
  backoff?: BackoffOption;
  /** Connection name (CLIENT LIST): `<name>-reserve`, `<name>-ack`. */
  name?: string;
  /** Where log lines go (default: warnings and errors to stderr). */
  log?: (level: LogLevel, message: string) => void;
}

export interface WorkerCounters {
  done: number; retried: number; failed: number; lost: number; handedBack: number; touches: number; reconnects: number;
}

interface Running<D, R> {
  job: Job<D, R>;
  keeper: NodeJS.Timeout;
  task: Promise<void>;
  handedBack: boolean;
}

const MAX_ERROR_TEXT = 4000;

function errorText(err: unknown): string {
  let s: string;
  if (err instanceof Error)
    s = err.message || err.name || 'Error';
  else
    s = typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  return s.length > MAX_ERROR_TEXT ? `${s.slice(0, MAX_ERROR_TEXT)}…` : s;
}

export function backoffDelay(b: BackoffOption, attempt: number, err: unknown, job: Job): number {
  if (typeof b === 'function')
    return Math.max(0, Math.round(b(attempt, err, job)));
  if (typeof b === 'number')
    return Math.max(0, Math.round(b));
  const d = b.type === 'exponential' ? b.delay * 2 ** Math.max(0, attempt - 1) : b.delay;
  return Math.max(0, Math.round(Math.min(d, b.maxDelay ?? 3600000)));
}

export class Worker<DataType = unknown, ResultType = unknown> extends EventEmitter {
  readonly name: string;
  readonly opts: WorkerOptions;
  readonly counters: WorkerCounters = { done: 0, retried: 0, failed: 0, lost: 0, handedBack: 0, touches: 0, reconnects: 0 };
  private readonly processor: Processor<DataType, ResultType>;
  private readonly blocking: Redis;
  private readonly cmd: Redis;
  private readonly running = new Map<string, Running<DataType, ResultType>>();
  private concurrencyN: number;
  private loop?: Promise<void>;
  private closing?: Promise<void>;
  private paused = false;
  private wake?: () => void;
  /** undefined: not known yet; false: this spoold refuses JOB.ACK … RESULT. */
  private resultSupported?: boolean;
  private down = false;
  private forced = false;
  private forcing?: Promise<void>;

  constructor(name: string, processor: Processor<DataType, ResultType>, opts: WorkerOptions = {}) {
    super();
    if (typeof name !== 'string' || name.length === 0)
      throw new SpoolArgumentError('a Worker needs a queue name (a non-empty string)');
    if (typeof processor !== 'function')
      throw new SpoolArgumentError(`Worker for queue '${name}': the handler must be a function (async (job) => result)`);
    const c = opts.concurrency ?? 1;
    if (!Number.isInteger(c) || c < 1 || c > 1000)
      throw new SpoolArgumentError(`Worker for queue '${name}': concurrency ${c} is not a whole number from 1 to 1000`);
    if (opts.lease !== undefined && !(Number.isInteger(opts.lease) && opts.lease >= 1))
      throw new SpoolArgumentError(`Worker for queue '${name}': lease ${opts.lease} is not a whole number of ms >= 1`);
    this.name = name;
    this.opts = opts;
    this.processor = processor;
    this.concurrencyN = c;
    const cname = opts.name ? `${opts.name}-` : '';
    this.blocking = createConnection(opts.connection, true, cname ? `${cname}reserve` : undefined);
    this.cmd = createConnection(opts.connection, true, cname ? `${cname}ack` : undefined);
    for (const conn of [this.blocking, this.cmd])
      this.watch(conn);
    this.blocking.on('ready', () => this.emit('ready'));
    if (opts.autorun !== false)
      void this.run();
  }

  get concurrency(): number {
    return this.concurrencyN;
  }

  set concurrency(n: number) {
    if (!Number.isInteger(n) || n < 1 || n > 1000)
      throw new SpoolArgumentError(`concurrency ${n} is not a whole number from 1 to 1000`);
    this.concurrencyN = n;
    this.kick();
  }

  private log(level: LogLevel, message: string): void {
    if (this.opts.log)
      this.opts.log(level, message);
    else if (level === 'warn' || level === 'error')
      process.stderr.write(`spool-client worker '${this.name}': ${level}: ${message}\n`);
  }

  /** Connection trouble is logged once per outage, not once per retry. */
  private watch(conn: Redis): void {
    conn.on('error', (err: Error) => {
      if (!this.down && !this.closing) {
        this.down = true;
        this.log('warn', `connection to spoold lost (${err.message}); reconnecting with backoff`);
      }
    });
    conn.on('reconnecting', () => {
      if (conn === this.blocking)
        this.counters.reconnects++;
    });
    conn.on('ready', () => {
      if (this.down) {
        this.down = false;
        this.log('info', 'reconnected to spoold');
      }
    });
  }

  /** Emits 'error' to listeners; without any, logs it (an EventEmitter would throw). */
  private report(err: unknown): void {
    if (this.listenerCount('error') > 0)
      this.emit('error', err);
    else
      this.log('error', errorText(err));
  }

  private kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }

  private waitKick(): Promise<void> {
    return new Promise((resolve) => { this.wake = resolve; });
  }

  /** Starts the loop (once); resolves when the worker has closed. */
  run(): Promise<void> {
    if (!this.loop)
      this.loop = this.reserveLoop();
    return this.loop;
  }

  isRunning(): boolean {
    return !!this.loop && !this.closing;
  }

  /** Stops taking new jobs; running ones go on. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  private async reserveLoop(): Promise<void> {
    let drained = false;
    let failures = 0;
    const timeout = this.opts.reserveTimeout ?? 1000;
    while (!this.closing) {
      if (this.paused || this.running.size >= this.concurrencyN) {
        await this.waitKick();
        continue;
      }
      const args: (string | number)[] = ['JOB.RESERVE', 'TIMEOUT', timeout, 'COUNT', this.concurrencyN - this.running.size];
      if (this.opts.lease)
        args.push('LEASE', this.opts.lease);
      args.push('FROM', this.name);
      let reply: unknown;
      try {
        reply = await call(this.blocking, args);
        failures = 0;
      } catch (err) {
        if (this.closing)
          break;
        this.report(err);
        await this.sleep(reconnectDelay(++failures));
        continue;
      }
      if (!Array.isArray(reply) || reply.length === 0) {
        if (!drained && this.running.size === 0) {
          drained = true;
          this.emit('drained');
        }
        continue;
      }
      drained = false;
      for (const r of reply)
        this.start(r);
    }
  }

  private start(reply: unknown): void {
    const r = pairs(reply);
    const job = new Job<DataType, ResultType>(this.cmd, String(r.queue ?? this.name), String(r.id), decodePayload(r.payload) as DataType);
    job.receipt = String(r.receipt);
    job.attempt = Number(r.attempt ?? 1);
    job.attemptsMade = job.attempt - 1;
    job.leaseMs = Number(r.lease_ms ?? this.opts.lease ?? 30000);
    job.state = 'reserved';
    const entry = { job, handedBack: false } as Running<DataType, ResultType>;
    entry.keeper = this.keepLease(entry);
    this.running.set(job.receipt, entry);
    entry.task = this.execute(entry).finally(() => {
      clearInterval(entry.keeper);
      this.running.delete(job.receipt!);
      this.kick();
    });
  }

  private keepLease(entry: Running<DataType, ResultType>): NodeJS.Timeout {
    const job = entry.job;
    let inFlight = false;
    const args: (string | number)[] = ['JOB.TOUCH', job.receipt!];
    if (this.opts.lease)
      args.push('LEASE', this.opts.lease);
    const t = setInterval(() => {
      if (inFlight || job.leaseLost || entry.handedBack)
        return;
      inFlight = true;
      call(this.cmd, args).then(() => {
        this.counters.touches++;
      }, (err) => {
        if (err instanceof StaleReceiptError || err instanceof NoJobError) {
          job.leaseLost = true;
          clearInterval(t);
          this.log('warn', `job ${job.id}: lease lost (${err.message}); its result will be dropped`);
        }
      }).finally(() => { inFlight = false; });
    }, Math.max(20, Math.floor(job.leaseMs / 3)));
    t.unref();
    return t;
  }

  private async execute(entry: Running<DataType, ResultType>): Promise<void> {
    const job = entry.job;
    this.emit('active', job);
    let result: ResultType;
    try {
      result = await this.processor(job);
    } catch (err) {
      if (entry.handedBack)
        return;
      if (job.leaseLost) {
        this.counters.lost++;
        return;
      }
      await this.settle(job, () => this.nack(job, err));
      return;
    }
    if (entry.handedBack)
      return;
    if (job.leaseLost) {
      this.counters.lost++;
      return;
    }
    await this.settle(job, () => this.ack(job, result));
  }

  /** Runs an ack or nack; a STALE/NOJOB refusal means another delivery owns the job: lost. */
  private async settle(job: Job, send: () => Promise<void>): Promise<void> {
    try {
      await send();
    } catch (err) {
      if (err instanceof StaleReceiptError || err instanceof NoJobError) {
        this.counters.lost++;
        this.log('warn', `job ${job.id}: ${err.message}`);
      } else {
        this.report(err);
      }
    }
  }

  private async ack(job: Job<DataType, ResultType>, result: ResultType): Promise<void> {
    const encoded = result === undefined ? undefined : JSON.stringify(result);
    let acked = false;
    if (encoded !== undefined && this.resultSupported !== false) {
      try {
        await call(this.cmd, ['JOB.ACK', job.receipt!, 'RESULT', encoded], 'JOB.ACK RESULT');
        this.resultSupported = true;
        acked = true;
      } catch (err) {
        if (err instanceof UnsupportedFeatureError) {
          if ((this.resultSupported as boolean | undefined) !== false)
            this.log('warn', `this spoold refuses JOB.ACK … RESULT (it needs ${err.requires}): jobs are acked without their results from now on`);
          this.resultSupported = false;
        } else if (err instanceof SpoolError && !(err instanceof StaleReceiptError) && !(err instanceof NoJobError)) {
          this.log('warn', `job ${job.id}: result refused (${err.message}); acked without it`);
        } else {
          throw err;
        }
      }
    }
    if (!acked)
      await call(this.cmd, ['JOB.ACK', job.receipt!]);
    job.returnvalue = result;
    job.state = 'done';
    job.finishedOn = Date.now();
    this.counters.done++;
    this.emit('completed', job, result);
  }

  private async nack(job: Job<DataType, ResultType>, err: unknown): Promise<void> {
    const dead = err instanceof UnrecoverableError || (err instanceof Error && err.name === 'UnrecoverableError');
    const text = errorText(err);
    const args: (string | number)[] = ['JOB.NACK', job.receipt!];
    if (!dead && this.opts.backoff !== undefined)
      args.push('DELAY', backoffDelay(this.opts.backoff, job.attempt, err, job as Job));
    args.push('ERROR', text);
    if (dead)
      args.push('DEAD');
    const reply = String(await call(this.cmd, args));
    job.failedReason = text;
    job.attemptsMade = job.attempt;
    job.state = reply === 'dead' ? 'dead' : 'delayed';
    if (job.state === 'dead')
      this.counters.failed++;
    else
      this.counters.retried++;
    this.emit('failed', job, err instanceof Error ? err : new Error(text), job.state);
  }

  /**
   * Stops: no new reserves; running handlers finish and their results are
   * sent (graceful), then the connections close. With force, running jobs
   * are handed back at once (`JOB.NACK receipt DELAY 0`) and their later
   * results dropped.
   */
  close(force = false): Promise<void> {
    if (force && !this.forced) {
      this.forced = true;
      this.blocking.disconnect();
      this.forcing = Promise.all([...this.running.values()].map((e) => this.handBack(e))).then(() => undefined);
    }
    if (this.closing)
      return this.closing;
    this.closing = (async () => {
      this.emit('closing');
      this.kick();
      await this.forcing;
      await this.loop?.catch(() => undefined);
      await Promise.all([...this.running.values()].map((e) => e.task));
      for (const conn of [this.blocking, this.cmd]) {
        try {
          await conn.quit();
        } catch {
          conn.disconnect();
        }
      }
      this.emit('closed');
    })();
    if (!this.loop)
      this.loop = Promise.resolve();
    return this.closing;
  }

  private async handBack(e: Running<DataType, ResultType>): Promise<void> {
    e.handedBack = true;
    clearInterval(e.keeper);
    try {
      await call(this.cmd, ['JOB.NACK', e.job.receipt!, 'DELAY', 0, 'ERROR', 'worker closed before the job finished']);
      this.counters.handedBack++;
    } catch (err) {
      this.log('warn', `job ${e.job.id}: could not hand it back (${errorText(err)}); it returns after its lease`);
    }
  }
}

/**
 * Closes the given workers (or queues, or QueueEvents) on SIGTERM and
 * SIGINT: running jobs finish, then the process exits with code 0 (a second
 * signal forces: running jobs are handed back, exit code 1). Returns a
 * function that removes the handlers.
 */
export function closeOnSignals(
  closeables: { close(force?: boolean): Promise<unknown> } | { close(force?: boolean): Promise<unknown> }[],
  opts: { signals?: NodeJS.Signals[]; exit?: boolean } = {},
): () => void {
  const list = Array.isArray(closeables) ? closeables : [closeables];
  const signals = opts.signals ?? ['SIGTERM', 'SIGINT'];
  let count = 0;
  const handler = () => {
    count++;
    const force = count > 1;
    void Promise.all(list.map((c) => c.close(force))).catch(() => undefined).then(() => {
      if (opts.exit !== false)
        process.exit(force ? 1 : 0);
    });
  };
  for (const s of signals)
    process.on(s, handler);
  return () => {
    for (const s of signals)
      process.off(s, handler);
  };
}
