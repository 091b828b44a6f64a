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
 * subscribes there.
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
  private readonly sub: Redis;
  private readonly cluster?: Cluster;
  private subscribed?: Promise<void>;

  constructor(name: string, opts: QueueEventsOptions = {}) {
    super();
    if (typeof name !== 'string' || name.length === 0)
      throw new SpoolArgumentError('QueueEvents needs a queue name (a non-empty string)');
    this.name = name;
    this.channel = `spool:events:${name}`;
    if (isCluster(opts.connection)) {
      // a connection of our own to the queue's node, aimed once run() knows it
      this.cluster = opts.connection;
      this.sub = new Redis({ ...(opts.connection.options.redisOptions ?? {}), lazyConnect: true });
    } else {
      this.sub = createConnection(opts.connection, true);
    }
    this.sub.on('error', (err: Error) => {
      if (this.listenerCount('error') > 0)
        this.emit('error', err);
    });
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel)
        this.dispatch(message);
    });
    if (opts.autorun !== false)
      void this.run().catch((err) => this.listenerCount('error') > 0 && this.emit('error', err));
  }

  /** Subscribes (once); resolves when the subscription is active. */
  run(): Promise<void> {
    if (!this.subscribed)
      this.subscribed = this.aim().then(() => this.sub.subscribe(this.channel)).then(() => undefined);
    return this.subscribed;
  }

  /** On a cluster: points the subscriber at the node that serves the queue's slot. */
  private async aim(): Promise<void> {
    if (!this.cluster)
      return;
    const slot = Number(await this.cluster.call('CLUSTER', 'KEYSLOT', this.name));
    const ranges = (await this.cluster.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    const range = ranges.find(([first, last]) => slot >= first && slot <= last);
    if (!range)
      throw new SpoolArgumentError(`QueueEvents of '${this.name}': no node of the cluster serves its slot ${slot}`);
    this.sub.options.host = range[2][0]; // read when the lazy connection connects
    this.sub.options.port = Number(range[2][1]);
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
    try {
      await this.sub.quit();
    } catch {
      this.sub.disconnect();
    }
  }
}
