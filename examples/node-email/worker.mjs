#!/usr/bin/env node
// node-email - a spool worker (spool-client) that sends the jobs of queue
// `emails` through SMTP with nodemailer; the Node twin of
// examples/email-sender.
//
// Payload: {"to": "…", "subject": "…", "body": "…"} (all strings).
// Outcome per job, from the SMTP server's reply:
//   2xx            done (ack)
//   4xx            retried later (the server said "try again"), and so is
//                  a server that cannot be reached
//   5xx            dead at once (UnrecoverableError) with the server's own
//                  text as last_error, e.g. "550 5.1.1 <x@y>: Recipient
//                  address rejected: no such user"
//   a bad payload  dead, saying which field is wrong
// Each message carries "X-Spool-Job: <id>" and "Message-ID: <id@spool>", so
// a duplicate after a lost acknowledgement can be recognised downstream.
//
// Settings (environment): SPOOL_URL (spool://127.0.0.1:7379), SMTP_URL
// (smtp://127.0.0.1:25), SMTP_FROM, SMTP_USER, SMTP_PASSWORD, CONCURRENCY
// (8), QUEUE (emails), SMTP_TIMEOUT_MS (30000). Stops cleanly on
// SIGTERM/SIGINT: sends in progress finish first.
import nodemailer from 'nodemailer';
import { Worker, UnrecoverableError, closeOnSignals } from 'spool-client';

const env = process.env;
const concurrency = Number(env.CONCURRENCY ?? 8);
const smtp = new URL(env.SMTP_URL ?? 'smtp://127.0.0.1:25');
const from = env.SMTP_FROM ?? 'spool@localhost';
const timeout = Number(env.SMTP_TIMEOUT_MS ?? 30000);

const transport = nodemailer.createTransport({
  host: smtp.hostname,
  port: Number(smtp.port || (smtp.protocol === 'smtps:' ? 465 : 25)),
  secure: smtp.protocol === 'smtps:',
  auth: env.SMTP_USER ? { user: env.SMTP_USER, pass: env.SMTP_PASSWORD ?? '' } : undefined,
  pool: true,
  maxConnections: concurrency,
  connectionTimeout: timeout,
  greetingTimeout: timeout,
  socketTimeout: timeout,
});

/** The payload's fields, or an UnrecoverableError naming the bad one. */
function message(job) {
  const d = job.data;
  if (!d || typeof d !== 'object')
    throw new UnrecoverableError('payload must be an object {"to","subject","body"}');
  for (const k of ['to', 'subject', 'body'])
    if (typeof d[k] !== 'string')
      throw new UnrecoverableError(`payload field "${k}" is missing or not a string`);
  for (const k of ['to', 'subject'])
    if (/[\r\n]/.test(d[k]))
      throw new UnrecoverableError(`payload field "${k}" contains a line break`);
  return {
    from,
    to: d.to,
    subject: d.subject,
    text: d.body,
    messageId: `<${job.id}@spool>`,
    headers: { 'X-Spool-Job': job.id },
  };
}

async function send(job) {
  const msg = message(job);
  try {
    const info = await transport.sendMail(msg);
    return { response: info.response };
  } catch (err) {
    const code = Number(err.responseCode);
    const text = (err.response || err.message || String(err)).split('\n')[0];
    if (code >= 500 && code < 600)
      throw new UnrecoverableError(text);
    throw new Error(text); // 4xx or no connection: try again after the backoff
  }
}

const worker = new Worker(env.QUEUE ?? 'emails', send, { connection: env.SPOOL_URL, concurrency, name: 'node-email' });
worker.on('failed', (job, err, state) => console.error(`job ${job.id} ${state}: ${err.message}`));
worker.on('error', (err) => console.error(`worker: ${err.message}`));
closeOnSignals({ close: async () => { await worker.close(); transport.close(); } });
