/*
 * events.ts - QueueEvents: a queue's job lifecycle from pub/sub.
 *
 * spoold publishes JSON on `spool:events:<queue>` while someone listens:
 * {"event":"acked","queue":"q","id":"…","attempt":1,"time":…,"error":…}.
 * QueueEvents subscribes on a connection of its own (re-subscribed after a
 * reconnect) and emits each message twice: under spool's event name
 * (`pushed`, `reserved`, `acked`, `retried`, `expired`, `lease-expired`,
 * `dead`, `progress`, … with the parsed message), and, where BullMQ has the
 * same event, under BullMQ's name with BullMQ's argument shape:
 *   pushed -> added, reserved -> active, acked -> completed { jobId, returnvalue },
 *   dead -> failed { jobId, failedReason }, progress -> progress { jobId, data }.
 * (A retry has no BullMQ event of its own: listen to spool's `retried`.)
 * Every message is also emitted as 'event'. Events published while nobody
 * listened are not kept (pub/sub). On a spoold cluster (an ioredis Cluster
 * as the connection) a queue's events are published by the node that
 * serves it: QueueEvents asks the cluster which node that is and
 * subscribes there, and follows the queue when that changes (a slot move, a
 * new leader of a replicated group): it asks again every `followMs` and
 * whenever the Cluster refreshes its slot map, and when the node differs it
 * subscribes on the new node and then leaves the old one. Events published
 * between the change and the new subscription are missed (pub/sub keeps
 * nothing).
 */
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Cluster } from 'ioredis';
import { createConnection, isCluster } from './connection.js';
import type { ConnectionOptions } from './connection.js';
import { SpoolArgumentError } from './errors.js';
import { decodePayload } from './job.js';

export interface SpoolEvent {
  event: string;
  queue: string;
  id: string;
  attempt?: number;
  time?: number;
  error?: string;
  [field: string]: unknown;
}

export interface QueueEventsOptions {
  connection?: ConnectionOptions;
  /** Subscribe at once (default true); otherwise call run(). */
  autorun?: boolean;
  /** On a cluster: how often (ms) to check that the queue's node is still the one subscribed to (default 1000; 0: only at a slot map refresh). */
  followMs?: number;
}

const BULL_NAMES: Record<string, string> = {
  pushed: 'added',
  reserved: 'active',
  acked: 'completed',
  dead: 'failed',
  progress: 'progress',
};

export class QueueEvents extends EventEmitter {
  readonly name: string;
  readonly channel: string;
  private sub: Redis;
  private readonly cluster?: Cluster;
  private subscribed?: Promise<void>;
  private where = '';            // host:port subscribed to, on a cluster
  private following?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private readonly onRefresh = () => void this.follow();

  constructor(name: string, opts: QueueEventsOptions = {}) {
    super();
    if (typeof name !== 'string' || name.length === 0)
      throw new SpoolArgumentError('QueueEvents needs a queue name (a non-empty string)');
    this.name = name;
    this.channel = `spool:events:${name}`;
    if (isCluster(opts.connection)) {
      // a connection of our own to the queue's node, aimed once run() knows it
      this.cluster = opts.connection;
      this.sub = this.listen(new Redis({ ...(opts.connection.options.redisOptions ?? {}), lazyConnect: true }));
      const every = opts.followMs ?? 1000;
      if (every > 0) {
        this.timer = setInterval(() => void this.follow(), every);
        this.timer.unref();
      }
      this.cluster.on('refresh', this.onRefresh);
    } else {
      this.sub = this.listen(createConnection(opts.connection, true));
    }
    if (opts.autorun !== false)
      void this.run().catch((err) => this.listenerCount('error') > 0 && this.emit('error', err));
  }

  private listen(sub: Redis): Redis {
    sub.on('error', (err: Error) => {
      if (sub === this.sub && this.listenerCount('error') > 0)
        this.emit('error', err);
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel && sub === this.sub)
        this.dispatch(message);
    });
    return sub;
  }

  /** Subscribes (once); resolves when the subscription is active. */
  run(): Promise<void> {
    if (!this.subscribed)
      this.subscribed = this.cluster ? this.follow(true)
        : this.sub.subscribe(this.channel).then(() => undefined);
    return this.subscribed;
  }

  /** On a cluster: host:port of the node that serves the queue's slot now. */
  private async locate(): Promise<string> {
    const c = this.cluster as Cluster;
    const slot = Number(await c.call('CLUSTER', 'KEYSLOT', this.name));
    const ranges = (await c.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    const range = ranges.find(([first, last]) => slot >= first && slot <= last);
    if (!range)
      throw new SpoolArgumentError(`QueueEvents of '${this.name}': no node of the cluster serves its slot ${slot}`);
    return `${range[2][0]}:${Number(range[2][1])}`;
  }

  /**
   * On a cluster: subscribes on the queue's node when it is not the one
   * subscribed to (first: errors reach run(); later checks report them as
   * 'error' events and try again at the next check).
   */
  private follow(first = false): Promise<void> {
    if (this.following || this.closed || (!first && !this.where))
      return this.following ?? Promise.resolve();
    this.following = (async () => {
      const where = await this.locate();
      if (where === this.where || this.closed)
        return;
      const i = where.lastIndexOf(':');
      const next = first ? this.sub
        : this.listen(new Redis({ ...(this.cluster as Cluster).options.redisOptions ?? {}, lazyConnect: true }));
      next.options.host = where.slice(0, i); // read when the lazy connection connects
      next.options.port = Number(where.slice(i + 1));
      await next.subscribe(this.channel);
      const old = this.sub;
      this.sub = next;
      this.where = where;
      if (old !== next)
        old.disconnect();
    })().catch((err) => {
      if (first)
        throw err;
      if (this.listenerCount('error') > 0)
        this.emit('error', err);
    }).finally(() => {
      this.following = undefined;
    });
    return this.following;
  }

  /** Resolves once subscribed: events after this are seen. */
  waitUntilReady(): Promise<void> {
    return this.run();
  }

  private dispatch(message: string): void {
    let ev: SpoolEvent;
    try {
      ev = JSON.parse(message) as SpoolEvent;
    } catch {
      return;
    }
    this.emit('event', ev);
    this.emit(ev.event, ev);
    const bull = BULL_NAMES[ev.event];
    if (!bull)
      return;
    const args: Record<string, unknown> = { jobId: ev.id, attempt: ev.attempt };
    if (ev.error !== undefined)
      args.failedReason = ev.error;
    if (ev.result !== undefined)
      args.returnvalue = decodePayload(ev.result);
    if (ev.progress !== undefined)
      args.data = ev.progress;
    this.emit(bull, args, ev.id);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer)
      clearInterval(this.timer);
    this.cluster?.off('refresh', this.onRefresh);
    await this.following?.catch(() => undefined);
    try {
      await this.sub.quit();
    } catch {
      this.sub.disconnect();
    }
  }
}
