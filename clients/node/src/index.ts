/*
 * spool-client: Queue, Worker and QueueEvents for spool, shaped like
 * BullMQ's, on ioredis. See docs/node.md in the spool repository.
 */
export { Queue, encode } from './queue.js';
export type { QueueOptions, JobCounts, QueueConfig } from './queue.js';
export { Worker, closeOnSignals, backoffDelay } from './worker.js';
export type { WorkerOptions, Processor, BackoffOption, WorkerCounters, LogLevel } from './worker.js';
export { QueueEvents } from './events.js';
export type { QueueEventsOptions, SpoolEvent } from './events.js';
export { Job } from './job.js';
export type { JobState } from './job.js';
export type { JobsOptions, ScheduleOptions, RepeatSpec } from './options.js';
export { createConnection, DEFAULT_URL } from './connection.js';
export { idempotencyKey, outcomeUnknown, DEFAULT_PUSH_RETRY_MS } from './idem.js';
export type { ConnectionOptions } from './connection.js';
export {
  SpoolError, StaleReceiptError, NoJobError, QueueFullError, BadJsonError, PayloadTooBigError, AuthError,
  WrongTypeError, UnsupportedFeatureError, SpoolArgumentError, JobFailedError, UnrecoverableError, toSpoolError,
} from './errors.js';
