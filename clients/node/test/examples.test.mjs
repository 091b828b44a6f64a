// The Node examples end to end: examples/node-email against a local SMTP
// sink (tests/sdk/smtp_sink.py, aiosmtpd) and examples/node-image-resize
// with sharp, each run as its own process against a real spoold.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from '../dist/esm/index.js';
import { startSpoold, waitFor, jobGet } from './helpers.mjs';

const repo = new URL('../../../', import.meta.url).pathname;
const EMAIL = join(repo, 'examples/node-email/worker.mjs');
const IMAGE = join(repo, 'examples/node-image-resize/worker.mjs');
const SINK = join(repo, 'tests/sdk/smtp_sink.py');

let s, raw;
before(async () => {
  for (const dir of ['examples/node-email', 'examples/node-image-resize'])
    assert.ok(existsSync(join(repo, dir, 'node_modules')), `run npm ci in ${dir} first (tests/node-sdk/run-suite does)`);
  s = await startSpoold();
  raw = s.client();
});
after(async () => {
  raw.disconnect();
  await s.close();
});

function run(cmd, args, env) {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  p.output = '';
  p.stdout.on('data', (d) => { p.output += d; });
  p.stderr.on('data', (d) => { p.output += d; });
  p.exited = new Promise((r) => p.on('exit', (code, sig) => r({ code, sig })));
  return p;
}

async function stopped(p) {
  p.kill('SIGTERM');
  return p.exited;
}

describe('examples', () => {
  test('node-email sends through SMTP: 2xx done once, 4xx retried, 5xx dead with the server text, bad payload dead', async () => {
    const dir = join(s.dir, 'mail');
    mkdirSync(dir);
    const portFile = join(s.dir, 'smtp.port');
    const sink = run('/usr/bin/python3', [SINK, portFile, dir]);
    try {
      const smtpPort = await waitFor(() => {
        try { const t = readFileSync(portFile, 'utf8'); return /^\d+\n$/.test(t) && Number(t); } catch { return false; }
      }, { what: 'SMTP sink port' });
      const q = new Queue('emails', { connection: s.connection() });
      await q.setConfig({ backoff: 50 });
      const ok = await q.addBulk(Array.from({ length: 20 }, (_, i) => ({ data: { to: `user${i}@example.com`, subject: `Order ${i}`, body: `Thanks ${i}` } })));
      const flaky = await q.add({ to: 'flaky@example.com', subject: 'Greylisted', body: 'try again' });
      const reject = await q.add({ to: 'reject@example.com', subject: 'Bounce', body: 'no such user' });
      const bad = await q.add({ to: 'x@example.com', subject: 'no body' });
      const w = run(process.execPath, [EMAIL], { SPOOL_URL: s.url(), SMTP_URL: `smtp://127.0.0.1:${smtpPort}`, SMTP_FROM: 'shop@example.com', CONCURRENCY: '4' });
      await waitFor(async () => {
        const c = await q.getJobCounts();
        return c.done === 21 && c.dead === 2;
      }, { timeout: 30000, what: '21 done, 2 dead' });
      const { code } = await stopped(w);
      assert.equal(code, 0, w.output);
      const mails = readdirSync(dir).filter((f) => f.endsWith('.eml')).map((f) => readFileSync(join(dir, f), 'utf8'));
      assert.equal(mails.length, 21, 'each accepted message arrived exactly once');
      for (const job of [...ok, flaky]) {
        const m = mails.filter((x) => x.includes(`X-Spool-Job: ${job.id}`));
        assert.equal(m.length, 1, `message of job ${job.id}`);
        assert.match(m[0], new RegExp(`Message-ID: <${job.id}@spool>`, 'i'));
        assert.match(m[0], new RegExp(`X-Rcpt-To: ${job.data.to}`));
      }
      assert.equal(Number((await jobGet(raw, flaky.id)).attempt), 2, 'greylisted once, then sent');
      const rj = await jobGet(raw, reject.id);
      assert.equal(rj.state, 'dead');
      assert.equal(Number(rj.attempt), 1);
      assert.match(rj.last_error, /^550 5\.1\.1 <reject@example\.com>: Recipient address rejected: no such user/);
      assert.equal((await jobGet(raw, bad.id)).last_error, 'payload field "body" is missing or not a string');
      await q.close();
    } finally {
      await stopped(sink);
    }
  });

  test('node-image-resize makes thumbnails with sharp, atomically; bad sources go dead with the reason', async () => {
    const require = (await import('node:module')).createRequire(join(repo, 'examples/node-image-resize/worker.mjs'));
    const sharp = require('sharp');
    const dir = join(s.dir, 'img');
    mkdirSync(dir);
    await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 200, g: 30, b: 30 } } }).jpeg().toFile(join(dir, 'a.jpg'));
    await sharp({ create: { width: 300, height: 600, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } } }).png().toFile(join(dir, 'b.png'));
    writeFileSync(join(dir, 'notes.jpg'), 'this is text, not a picture');
    const q = new Queue('thumbnails', { connection: s.connection() });
    const jobs = {
      a: await q.add({ src: join(dir, 'a.jpg'), dst: join(dir, 'a-200.png'), width: 200 }),
      b: await q.add({ src: join(dir, 'b.png'), dst: join(dir, 'b-100.webp'), width: 100 }),
      missing: await q.add({ src: join(dir, 'nope.jpg'), dst: join(dir, 'nope.png'), width: 100 }),
      text: await q.add({ src: join(dir, 'notes.jpg'), dst: join(dir, 'notes.png'), width: 100 }),
      width: await q.add({ src: join(dir, 'a.jpg'), dst: join(dir, 'a-0.png'), width: 0 }),
    };
    const w = run(process.execPath, [IMAGE], { SPOOL_URL: s.url(), CONCURRENCY: '2' });
    await waitFor(async () => {
      const c = await q.getJobCounts();
      return c.done === 2 && c.dead === 3;
    }, { timeout: 30000, what: '2 done, 3 dead' });
    const { code } = await stopped(w);
    assert.equal(code, 0, w.output);
    const a = await sharp(join(dir, 'a-200.png')).metadata();
    assert.deepEqual([a.format, a.width, a.height], ['png', 200, 150]);
    const b = await sharp(join(dir, 'b-100.webp')).metadata();
    assert.deepEqual([b.format, b.width, b.height], ['webp', 100, 200]);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
    assert.equal((await jobGet(raw, jobs.missing.id)).last_error, `source image ${join(dir, 'nope.jpg')}: No such file or directory`);
    assert.match((await jobGet(raw, jobs.text.id)).last_error, new RegExp(`^cannot read ${join(dir, 'notes.jpg')} as an image: `));
    assert.match((await jobGet(raw, jobs.width.id)).last_error, /"width" must be a whole number from 1 to 10000 \(got 0\)/);
    assert.ok(!existsSync(join(dir, 'notes.png')));
    await q.close();
  });
});
