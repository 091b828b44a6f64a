/*
 * errors.ts - the typed errors of spool-client.
 *
 * spoold answers with Redis error replies whose first word is a prefix a
 * program can match (ERR, WRONGTYPE, NOAUTH, NOPERM, WRONGPASS) or one of
 * spool's own (NOJOB, STALE, FULL, BADJSON, TOOBIG). toSpoolError() turns an
 * ioredis ReplyError into the class of its prefix, keeping the server's
 * words as the message. A command or option the server does not know (a
 * feature newer than the server) becomes an UnsupportedFeatureError that
 * names the feature and the server change it needs.
 */

/** Base class of every error spool-client throws for a server reply. */
export class SpoolError extends Error {
  /** The reply's prefix (`STALE`, `FULL`, `ERR`, …), or `CLIENT` for errors raised here. */
  readonly code: string;
  /** The command that was refused (`JOB.ACK`, …), when known. */
  readonly command?: string;
  constructor(message: string, code = 'ERR', command?: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.command = command;
  }
}

/** `-STALE`: the receipt is for an earlier delivery (the lease expired and the job was delivered again, or it was acked already). */
export class StaleReceiptError extends SpoolError {}
/** `-NOJOB`: no such job (it never existed, or it finished and was removed). */
export class NoJobError extends SpoolError {}
/** `-FULL`: the queue holds `maxlen` unfinished jobs; nothing was pushed. */
export class QueueFullError extends SpoolError {}
/** `-BADJSON`: the payload is not valid JSON for a queue that takes JSON; nothing was pushed. */
export class BadJsonError extends SpoolError {}
/** `-TOOBIG`: the payload is over the queue's `max-payload`; nothing was pushed. */
export class PayloadTooBigError extends SpoolError {}
/** `-NOAUTH`, `-WRONGPASS`, `-NOPERM`: log in, or use a user allowed to do this. */
export class AuthError extends SpoolError {}
/** `-WRONGTYPE`: the key holds another type. */
export class WrongTypeError extends SpoolError {}

/**
 * The server does not know a command or option this call needs: it is
 * older than the feature. `feature` names it (`JOB.PUSH GROUP`,
 * `SCHED.SET`, …) and `requires` says which spool change brings it.
 */
export class UnsupportedFeatureError extends SpoolError {
  readonly feature: string;
  readonly requires: string;
  constructor(feature: string, requires: string, serverMessage: string, command?: string) {
    super(`${feature} is not supported by this spoold (it needs ${requires}); the server said: ${serverMessage}`,
      'UNSUPPORTED', command);
    this.feature = feature;
    this.requires = requires;
  }
}

/** A bad argument to a spool-client call, found before anything was sent. */
export class SpoolArgumentError extends SpoolError {
  constructor(message: string) {
    super(message, 'CLIENT');
  }
}

/** `job.waitUntilFinished()` on a job that went dead (or expired): its last error. */
export class JobFailedError extends SpoolError {
  readonly jobId: string;
  readonly state: string;
  constructor(jobId: string, state: string, reason: string) {
    super(`job ${jobId} finished as ${state}${reason ? `: ${reason}` : ''}`, 'CLIENT');
    this.jobId = jobId;
    this.state = state;
  }
}

/**
 * Throw it from a Worker's handler for a failure that retrying cannot fix
 * (a bad address, a malformed payload): the job goes dead at once
 * (`JOB.NACK … DEAD`) with this message as its last error.
 */
export class UnrecoverableError extends Error {
  constructor(message?: string) {
    super(message);
    this.name = 'UnrecoverableError';
  }
}

const byPrefix: Record<string, new (m: string, c: string, cmd?: string) => SpoolError> = {
  STALE: StaleReceiptError,
  NOJOB: NoJobError,
  FULL: QueueFullError,
  BADJSON: BadJsonError,
  TOOBIG: PayloadTooBigError,
  NOAUTH: AuthError,
  WRONGPASS: AuthError,
  NOPERM: AuthError,
  WRONGTYPE: WrongTypeError,
};

/** True for the replies of a server that does not know a command or an option. */
export function isUnknownCommandOrOption(message: string): boolean {
  return /^ERR (unknown command|unknown subcommand)/i.test(message) ||
    /unknown option/i.test(message) ||
    /bad option or value at/i.test(message) ||
    /^ERR wrong number of arguments/i.test(message) ||
    /is not a job id or receipt/i.test(message);
}

/** Turns an error from ioredis into a SpoolError of its reply prefix (other errors pass through). */
export function toSpoolError(err: unknown, command?: string): Error {
  if (!(err instanceof Error) || err instanceof SpoolError)
    return err as Error;
  if (err.name !== 'ReplyError')
    return err;
  const message = err.message;
  const prefix = message.split(' ', 1)[0];
  const Cls = byPrefix[prefix];
  return Cls ? new Cls(message, prefix, command) : new SpoolError(message, prefix, command);
}
