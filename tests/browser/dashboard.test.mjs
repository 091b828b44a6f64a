// dashboard.test.mjs - drives spoold's web dashboard in Debian's chromium
// (headless, through playwright-core; no browser is downloaded) against a
// real spoold started here on free ports, seeded over RESP.
//
// Environment: SPOOLD (the binary), SPOOL_ARTEFACTS (where screenshots go;
// default ./artefacts), SPOOL_UPDATE_DOCS=1 (also copy them to
// docs/dashboard/). Prints one line per test and ends with
// "N passed, N failed".
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Resp, fields } from './resp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SPOOLD = process.env.SPOOLD || path.join(here, '../../build-test/broker/spoold');
const ARTEFACTS = process.env.SPOOL_ARTEFACTS || path.join(here, 'artefacts');
const DOCS = path.join(here, '../../docs/dashboard');
const DEADLINE_MS = 10000;

let passed = 0;
let failed = 0;
const skips = []; /* "skipped: <test>: <reason>" lines (docs/testing.md) */

class Skip extends Error {}
const servers = [];

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function waitFor(what, fn, ms = DEADLINE_MS) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last && last.message ? last.message : last})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    if (e instanceof Skip) {
      skips.push(`skipped: ${name}: ${e.message}`);
      console.log(`ok - ${name} # SKIP ${e.message}`);
      return;
    }
    failed++;
    console.log(`not ok - ${name}: ${e.stack || e}`);
  }
}

/* ------------------------------------------------------------- spoold */

async function startSpoold(extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-browser-'));
  const args = ['--port', '0', '--port-file', `${dir}/port`, '--http-port', '-1', '--http-port-file', `${dir}/http-port`,
    '--data-dir', `${dir}/data`, '--shards', '2', '--io-threads', '1', '--logfile', `${dir}/spoold.log`, ...extra];
  fs.mkdirSync(`${dir}/data`);
  const child = spawn(SPOOLD, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const srv = { dir, child, exited: false };
  child.on('exit', () => { srv.exited = true; });
  servers.push(srv);
  const read = (f) => { try { const t = fs.readFileSync(`${dir}/${f}`, 'utf8'); return t.endsWith('\n') ? Number(t) : 0; } catch { return 0; } };
  await waitFor('spoold to listen', () => { assert(!srv.exited, 'spoold exited: ' + log(srv)); return read('port') && read('http-port'); });
  srv.port = read('port');
  srv.http = read('http-port');
  srv.url = `http://127.0.0.1:${srv.http}/`;
  return srv;
}

function log(srv) {
  try { return fs.readFileSync(`${srv.dir}/spoold.log`, 'utf8'); } catch { return ''; }
}

async function stopSpoold(srv) {
  if (srv.exited) return;
  const done = new Promise((r) => srv.child.once('exit', (code) => r(code)));
  srv.child.kill('SIGTERM');
  const code = await Promise.race([done, new Promise((r) => setTimeout(() => r('timeout'), DEADLINE_MS))]);
  if (code === 'timeout') srv.child.kill('SIGKILL');
  fs.rmSync(srv.dir, { recursive: true, force: true });
  return code;
}

/* --------------------------------------------------------------- seed */

async function deadJob(c, queue, payload, error) {
  const id = await c.cmd('JOB.PUSH', queue, payload, 'RETRIES', '0');
  const got = await c.cmd('JOB.RESERVE', 'NOWAIT', 'FROM', queue);
  assert(got && fields(got[0]).id === id, `reserved ${JSON.stringify(got)}, expected job ${id} (queue ${queue} must be empty first)`);
  const r = await c.cmd('JOB.NACK', id, 'ERROR', error);
  assert(r === 'dead', `NACK of ${id} answered ${r}`);
  return id;
}

async function seed(c, http) {
  // Dead jobs first, while their queues are empty (each is reserved at once).
  const ids = {};
  ids.bob = await deadJob(c, 'emails', '{"to":"bob@example.com","template":"welcome"}', '550 5.1.1 <bob@example.com>: no such user');
  ids.carol = await deadJob(c, 'emails', '{"to":"carol@example.org","template":"invoice","invoice":1042}', '550 5.1.1 <carol@example.org>: no such user');
  ids.smtp = await deadJob(c, 'emails', '{"to":"dave@example.net","template":"reset"}', '421 4.7.0 smtp.example.net: too many connections, try later');
  ids.vips = await deadJob(c, 'thumbnails', '{"src":"s3://photos/2026/11/IMG_2291.HEIC","w":320}', 'vips: VipsForeignLoad: "IMG_2291.HEIC" is not a known file format');
  // Throughput: a few bursts a second apart (waiting for the sampler to
  // take each), so the chart has a shape.
  let end = 0;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 4 + round * 3; i++) await c.cmd('LPUSH', 'emails', JSON.stringify({ to: `user${round}-${i}@example.com`, template: 'digest' }));
    for (let i = 0; i < 2 + round; i++) await c.cmd('RPOP', 'emails');
    for (let i = 0; i < 3; i++) await c.cmd('LPUSH', 'thumbnails', JSON.stringify({ src: `s3://photos/${round}/${i}.jpg`, w: 320 }));
    const got = await c.cmd('JOB.RESERVE', 'NOWAIT', 'COUNT', '2', 'FROM', 'thumbnails');
    for (const j of got || []) await c.cmd('JOB.ACK', fields(j).receipt);
    end = await waitFor('a new throughput second', async () => {
      const t = await (await fetch(http + 'api/throughput?since=' + end)).json();
      return t.end > end ? t.end : 0;
    });
  }
  await c.cmd('JOB.PUSH', 'emails', '{"to":"eve@example.com","template":"reminder"}', 'DELAY', '3600000');
  await c.cmd('JOB.PUSH', 'webhooks', '{"url":"https://hooks.example.com/a","event":"order.paid"}');
  await c.cmd('JOB.RESERVE', 'LEASE', '600000', 'NOWAIT', 'FROM', 'webhooks');
  await c.cmd('QUEUE.CONFIG', 'webhooks', 'SET', 'concurrency', '2', 'rate', '10/1s');
  await c.cmd('RPUSH', 'reports', '{"report":"daily-sales"}', '{"report":"weekly-churn"}');
  return ids;
}

/* ------------------------------------------------------------- browser */

function launch() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-chromium-'));
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 760 },
  }).then((ctx) => Object.assign(ctx, { userDataDir }));
}

async function shot(page, name, selector, viewportOnly) {
  fs.mkdirSync(ARTEFACTS, { recursive: true });
  const file = path.join(ARTEFACTS, name);
  if (selector) await page.locator(selector).screenshot({ path: file });
  else await page.screenshot({ path: file, fullPage: !viewportOnly });
  if (process.env.SPOOL_UPDATE_DOCS === '1') {
    fs.mkdirSync(DOCS, { recursive: true });
    fs.copyFileSync(file, path.join(DOCS, name));
  }
}

async function cellText(page, queue, col) {
  return (await page.locator(`#queues tr[data-queue="${queue}"] [data-col="${col}"]`).innerText()).trim();
}

/* --------------------------------------------------------------- main */

async function main() {
  const srv = await startSpoold();
  const c = await Resp.connect(srv.port);
  const worker = await Resp.connect(srv.port);
  const ids = await seed(c, srv.url);
  const ctx = await launch();
  const page = ctx.pages()[0] || (await ctx.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  await test('the start-up log URL opens the dashboard', async () => {
    const m = log(srv).match(/dashboard on (http:\/\/\S+)/);
    assert(m, 'no "dashboard on http://..." line in the log:\n' + log(srv));
    const resp = await page.goto(m[1]);
    assert(resp.status() === 200, `GET ${m[1]} answered ${resp.status()}`);
    await page.locator('#queues').waitFor();
  });

  await test('overview counts equal QUEUE.STATS for every queue', async () => {
    await page.goto(srv.url + '#/');
    await page.locator('#queues tr[data-queue="webhooks"]').waitFor();
    const names = (await c.cmd('QUEUE.LIST')).sort();
    const shown = await page.locator('#queues tbody tr[data-queue]').evaluateAll((trs) => trs.map((t) => t.dataset.queue).sort());
    assert(JSON.stringify(shown) === JSON.stringify(names), `queues shown ${shown}, QUEUE.LIST ${names}`);
    assert(!(await page.locator('main').innerText()).includes('null'), 'the page shows "null"');
    for (const q of names) {
      const st = fields(await c.cmd('QUEUE.STATS', q));
      for (const k of ['ready', 'reserved', 'delayed', 'dead', 'done']) {
        const v = Number((await cellText(page, q, k)).replace(/[^0-9]/g, ''));
        assert(v === st[k], `queue ${q}: the page shows ${k} ${v}, QUEUE.STATS says ${st[k]}`);
      }
      const state = await cellText(page, q, 'state');
      assert(state === (st.paused ? 'paused' : 'active'), `queue ${q}: state ${state}, paused ${st.paused}`);
    }
    // The total chart is full when the page opens: the seeded bursts are in it.
    const label = await page.locator('svg.chart').first().getAttribute('aria-label');
    const pushed = Number(label.match(/(\d+) pushed/)[1]);
    assert(pushed >= 40, `the chart shows ${pushed} pushes, the seed made more than 40: ${label}`);
    await shot(page, 'overview.png');
  });

  await test('the overview follows new jobs live (Server-Sent Events), without polling or a reload', async () => {
    await waitFor('the live stream to be open', async () => (await page.locator('#foot-updated').innerText()).includes('(live)'));
    const asked = [];
    const onReq = (r) => asked.push(new URL(r.url()).pathname);
    page.on('request', onReq);
    const marker = await page.evaluate(() => { window.__sameDoc = Math.random(); return window.__sameDoc; });
    const before = fields(await c.cmd('QUEUE.STATS', 'reports')).ready;
    await c.cmd('RPUSH', 'reports', '{"report":"monthly"}');
    await waitFor('the ready count of reports to grow', async () => Number(await cellText(page, 'reports', 'ready')) === before + 1, 6000);
    await c.cmd('QUEUE.PAUSE', 'reports');
    await waitFor('the paused state of reports to show', async () => (await cellText(page, 'reports', 'state')) === 'paused', 6000);
    await waitFor('the paused card', async () => Number(await page.locator('[data-stat="Paused"]').innerText()) === 1, 6000);
    await c.cmd('QUEUE.RESUME', 'reports');
    await waitFor('the active state of reports to show', async () => (await cellText(page, 'reports', 'state')) === 'active', 6000);
    page.off('request', onReq);
    assert(await page.evaluate(() => window.__sameDoc) === marker, 'the page was reloaded');
    assert(!asked.includes('/api/overview'), 'the page polled /api/overview although the stream was open: ' + asked.join(' '));
  });

  await test('the overview shows each queue\'s limits with their use now', async () => {
    await waitFor('the limits of webhooks', async () => (await cellText(page, 'webhooks', 'limits')).startsWith('concurrency 1/2 · rate 10/1s'), 6000);
    await c.cmd('JOB.PUSH', 'webhooks', '{"url":"https://hooks.example.com/b","event":"order.shipped"}');
    await c.cmd('JOB.RESERVE', 'LEASE', '600000', 'NOWAIT', 'FROM', 'webhooks');
    await waitFor('concurrency 2/2', async () => (await cellText(page, 'webhooks', 'limits')).startsWith('concurrency 2/2'), 6000);
    assert((await cellText(page, 'reports', 'limits')) === 'none', 'reports has no limits: ' + await cellText(page, 'reports', 'limits'));
    await page.goto(srv.url + '#/queue/webhooks');
    await page.locator('#queue-limits').waitFor();
    const lim = await page.locator('#queue-limits').innerText();
    assert(lim.includes('concurrency 2/2') && lim.includes('rate 10/1s'), 'queue page limits: ' + lim);
    await page.goto(srv.url + '#/');
    await page.locator('#queues').waitFor();
  });

  await test('the dead set lists errors, grouped and filtered', async () => {
    await page.goto(srv.url + '#/queue/emails/dead');
    await page.locator('#groups-title').waitFor();
    const groups = await page.locator('.groups li').allInnerTexts();
    assert(groups.length === 3, `expected 3 error groups, got ${JSON.stringify(groups)}`);
    assert(groups.some((g) => g.includes('1×') && g.includes('421 4.7.0')), `no group for the 421 error: ${groups}`);
    await page.locator('#error-filter').fill('no such user');
    await page.locator('#error-filter').press('Enter');
    await waitFor('the filtered list', async () => (await page.locator('#jobs tbody tr[data-job]').count()) === 2);
    const rows = await page.locator('#jobs tbody tr[data-job]').evaluateAll((t) => t.map((r) => r.dataset.job).sort());
    assert(JSON.stringify(rows) === JSON.stringify([ids.bob, ids.carol].sort()), `filtered rows ${rows}`);
    await page.goto(srv.url + '#/queue/emails/dead');
    await page.locator(`#jobs tr[data-job="${ids.smtp}"]`).waitFor();
    await shot(page, 'dead-set.png', '#job-browser');
  });

  await test('open a dead job, read its error, retry it, a worker gets it', async () => {
    await page.locator(`#jobs tr[data-job="${ids.bob}"] a`).click();
    await page.locator('#job-error').waitFor();
    const err = await page.locator('#job-error').innerText();
    assert(err === '550 5.1.1 <bob@example.com>: no such user', `the page shows error ${JSON.stringify(err)}`);
    const payload = await page.locator('#payload').innerText();
    assert(payload.includes('"template": "welcome"'), `payload not formatted: ${payload}`);
    await shot(page, 'job.png');
    await page.locator('#job-retry').click();
    await waitFor('the job to show ready', async () => (await page.locator('#job-state').innerText()) === 'ready');
    const got = await worker.cmd('JOB.RESERVE', 'NOWAIT', 'COUNT', '1000', 'FROM', 'emails');
    const mine = (got || []).map(fields).find((j) => j.id === ids.bob);
    assert(mine, `JOB.RESERVE did not deliver job ${ids.bob}`);
    assert(mine.attempt === 1, `delivered as attempt ${mine.attempt}, expected 1 (a retried dead job starts over)`);
    await waitFor('the retry in the log', () => log(srv).includes(`dashboard: user 'default' from 127.0.0.1 retried job ${ids.bob}: ok`));
  });

  await test('pause a queue from the page: JOB.RESERVE gets nothing; resume: it gets a job', async () => {
    await page.goto(srv.url + '#/queue/reports');
    await waitFor('the reports page', async () => (await page.locator('h1').innerText()).startsWith('reports'));
    assert((await page.locator('#pause-toggle').innerText()) === 'Pause queue', 'the button does not offer to pause');
    await page.locator('#pause-toggle').click();
    await waitFor('the page to show paused', async () => (await page.locator('#pause-toggle').innerText()) === 'Resume queue');
    const st = fields(await c.cmd('QUEUE.STATS', 'reports'));
    assert(st.paused === 1 && st.ready > 0, `QUEUE.STATS reports: ${JSON.stringify(st)}`);
    const none = await worker.cmd('JOB.RESERVE', 'NOWAIT', 'FROM', 'reports');
    assert(none === null, `a paused queue delivered ${JSON.stringify(none)}`);
    await page.locator('#pause-toggle').click();
    await waitFor('the page to show active', async () => (await page.locator('#pause-toggle').innerText()) === 'Pause queue');
    const one = await worker.cmd('JOB.RESERVE', 'NOWAIT', 'FROM', 'reports');
    assert(one && one.length === 1, `a resumed queue delivered ${JSON.stringify(one)}`);
  });

  await test('the queue page follows its counts (polling)', async () => {
    await page.goto(srv.url + '#/queue/reports');
    await waitFor('the reports page', async () => (await page.locator('h1').innerText()).startsWith('reports'));
    const before = fields(await c.cmd('QUEUE.STATS', 'reports')).ready;
    await waitFor('the ready card to equal QUEUE.STATS', async () => Number(await page.locator('[data-stat="ready"]').innerText()) === before, 6000);
    await c.cmd('RPUSH', 'reports', '{"report":"quarterly"}');
    await waitFor('the ready card to grow', async () => Number(await page.locator('[data-stat="ready"]').innerText()) === before + 1, 6000);
    assert((await page.locator('[data-tab="ready"]').innerText()) === `ready (${before + 1})`, 'the tab count did not follow');
  });

  await test('purge needs the queue name typed', async () => {
    await page.goto(srv.url + '#/queue/thumbnails');
    await waitFor('the thumbnails page', async () => (await page.locator('h1').innerText()).startsWith('thumbnails'));
    await page.locator('#purge-state').selectOption('dead');
    await page.getByRole('button', { name: 'Purge…' }).click();
    const ok = page.locator('#confirm-ok');
    assert(await ok.isDisabled(), 'the purge button is enabled before the name is typed');
    await page.locator('#confirm-input').fill('thumbnail');
    assert(await ok.isDisabled(), 'a wrong name enables purge');
    await page.locator('#confirm-input').fill('thumbnails');
    await ok.click();
    await waitFor('dead thumbnails to be purged', async () => fields(await c.cmd('QUEUE.STATS', 'thumbnails')).dead === 0);
  });

  await test('retry all dead at a pace: one ready now, the others delayed', async () => {
    await deadJob(c, 'invoices', '{"invoice":7}', 'pdf renderer crashed');
    await deadJob(c, 'invoices', '{"invoice":8}', 'pdf renderer crashed');
    await page.goto(srv.url + '#/queue/invoices/dead');
    await waitFor('the invoices page', async () => (await page.locator('h1').innerText()).startsWith('invoices'));
    await page.getByLabel('at a pace of (optional)').fill('1/1h');
    await page.locator('#retry-dead').click();
    const question = await page.locator('#confirm-text').innerText();
    assert(question.includes('one at a time at 1/1h'), 'the question does not name the pace: ' + question);
    await page.locator('#confirm-ok').click();
    await waitFor('one ready and one delayed', async () => {
      const st = fields(await c.cmd('QUEUE.STATS', 'invoices'));
      return st.ready === 1 && st.delayed === 1 && st.dead === 0;
    });
    await waitFor('the message', async () => (await page.locator('#status').innerText()).includes('2 dead job(s) of invoices redriven at 1/1h'));
  });

  await test('a POST without a valid CSRF token is refused (403) and changes nothing', async () => {
    const post = (headers) => fetch(srv.url + 'api/actions/queue-pause', {
      method: 'POST', headers: Object.assign({ 'Content-Type': 'application/x-www-form-urlencoded' }, headers), body: 'queue=emails' });
    const sess = await fetch(srv.url + 'api/session');
    const cookie = sess.headers.get('set-cookie').split(';')[0];
    const token = (await sess.json()).csrf;
    const cases = {
      'no token, no cookie': {},
      'cookie, no token': { Cookie: cookie },
      'cookie, wrong token': { Cookie: cookie, 'X-CSRF-Token': token.replace(/^./, (ch) => (ch === '0' ? '1' : '0')) },
      'token of another session': { Cookie: 'spool_session=' + '0'.repeat(32), 'X-CSRF-Token': token },
      'foreign Origin': { Cookie: cookie, 'X-CSRF-Token': token, Origin: 'http://evil.example' },
    };
    for (const [what, headers] of Object.entries(cases)) {
      const r = await post(headers);
      assert(r.status === 403, `${what}: answered ${r.status}, expected 403`);
    }
    // The same from inside the page: its cookie goes along, but without the
    // token. Chromium reports the refusal on the console: not an app error.
    const seen = errors.length;
    const inPage = await page.evaluate(async (u) => (await fetch(u + 'api/actions/queue-pause', {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'queue=emails' })).status, srv.url);
    assert(inPage === 403, `a POST from the page without the token answered ${inPage}`);
    await waitFor('the console to report the refused request', async () => errors.length > seen);
    assert(errors.slice(seen).every((e) => e.includes('403')), 'unexpected console errors: ' + errors.slice(seen));
    errors.splice(seen);
    assert(fields(await c.cmd('QUEUE.STATS', 'emails')).paused === 0, 'a refused POST paused the queue');
    const r = await post({ Cookie: cookie, 'X-CSRF-Token': token });
    assert(r.status === 200, `the same POST with its token answered ${r.status}`);
    assert(fields(await c.cmd('QUEUE.STATS', 'emails')).paused === 1, 'the POST with its token did not pause');
    await c.cmd('QUEUE.RESUME', 'emails');
  });

  await test('search by job id opens the job', async () => {
    await page.goto(srv.url + '#/');
    await page.locator('#queues').waitFor();
    await page.getByLabel('Find a job by id').fill(ids.carol);
    await page.getByLabel('Find a job by id').press('Enter');
    await waitFor('the job page', async () => (await page.locator('h1').innerText()).includes(ids.carol));
  });

  await test('the whole page transfers less than 200 KB', async () => {
    // Bytes on the wire (headers included) of a cold load, as chromium counts them.
    const p2 = await ctx.newPage();
    const cdp = await ctx.newCDPSession(p2);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    let total = 0;
    cdp.on('Network.loadingFinished', (e) => { total += e.encodedDataLength; });
    // The live stream stays open (the network never goes idle): count what
    // has finished once the page shows its figures and its chart.
    await p2.goto(srv.url);
    await p2.locator('#queues').waitFor();
    await p2.locator('svg.chart').first().waitFor();
    await waitFor('the files and API answers to finish', async () => total > 10000);
    await p2.close();
    assert(total > 10000 && total < 200 * 1024, `transferred ${total} bytes`);
    console.log(`# first load transferred ${total} bytes`);
  });

  await test('dark mode follows the system setting', async () => {
    const p2 = await ctx.newPage();
    await p2.emulateMedia({ colorScheme: 'dark' });
    await p2.goto(srv.url);
    await p2.locator('#queues').waitFor();
    const bg = await p2.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await p2.setViewportSize({ width: 1100, height: 560 });
    await shot(p2, 'overview-dark.png', null, true);
    await p2.close();
    const [r, g, b] = bg.match(/\d+/g).map(Number);
    assert(r + g + b < 150, `dark background expected, got ${bg}`);
  });

  await test('server page shows version, shards, fsync, disk, memory, clients', async () => {
    await page.goto(srv.url + '#/server');
    await waitFor('the server page', async () => (await page.locator('main h1').innerText()) === 'Server');
    await page.locator('dl.kv').first().waitFor();
    const text = await page.locator('main').innerText();
    for (const want of ['Version', '0.1.0', 'Shards', 'fsync', 'always', 'Data on disk', 'Resident memory', 'Connected'])
      assert(text.includes(want), `the server page lacks "${want}"`);
  });

  await test('workers page: who holds which job, since when, its lease; who waits', async () => {
    const named = await Resp.connect(srv.port);
    const waiter = await Resp.connect(srv.port);
    try {
      await named.cmd('CLIENT', 'SETNAME', 'renderer-7');
      const id = await c.cmd('JOB.PUSH', 'renders', '{"scene":"intro","frames":[1,240]}');
      const got = await named.cmd('JOB.RESERVE', 'LEASE', '120000', 'NOWAIT', 'FROM', 'renders');
      assert(got && fields(got[0]).id === id, 'renderer-7 did not get the job: ' + JSON.stringify(got));
      await waiter.cmd('CLIENT', 'SETNAME', 'idle-1');
      const waiting = waiter.cmd('JOB.RESERVE', 'TIMEOUT', '30000', 'FROM', 'renders');
      await page.goto(srv.url + '#/workers');
      const sec = page.locator('section[data-queue="renders"]');
      await sec.waitFor();
      await waitFor('renderer-7 and the waiter', async () => {
        const t = await sec.innerText();
        return t.includes('renderer-7') && t.includes('idle-1') && t.includes(id) && /lease ends in (1|2) min/.test(t) && t.includes('waiting');
      }, 6000);
      const ws = (await page.locator('section[data-queue="webhooks"]').innerText());
      assert(ws.includes('2 reserved (concurrency 2/2)'), 'webhooks section: ' + ws);
      await shot(page, 'workers.png');
      await page.locator(`section[data-queue="renders"] a[href="#/job/${id}"]`).click();
      await waitFor('the job page with its holder', async () => (await page.locator('#job-holder').innerText()).includes('name=renderer-7'));
      await c.cmd('JOB.PUSH', 'renders', '{"scene":"outro"}');
      await waiting;
    } finally {
      named.close();
      waiter.close();
    }
  });

  await test('schedules page: spec, queue, next and last run, pause and resume from the page', async () => {
    await c.cmd('SCHED.SET', 'nightly-report', 'reports', '0 3 * * *', '{"report":"nightly"}', 'TZ', 'Europe/Berlin');
    await c.cmd('SCHED.SET', 'heartbeat', 'webhooks', '@every 15m', '{"url":"https://hooks.example.com/ping"}');
    await page.goto(srv.url + '#/schedules');
    const row = page.locator('tr[data-schedule="nightly-report"]');
    await row.waitFor();
    const t = await row.innerText();
    assert(t.includes('0 3 * * *') && t.includes('Europe/Berlin') && t.includes('reports') && /in \d/.test(t) && t.includes('never') && t.includes('active'), 'row: ' + t);
    const hb = await page.locator('tr[data-schedule="heartbeat"] [data-col="next"]').innerText();
    assert(/^in 1[45] min/.test(hb), 'heartbeat next run: ' + hb);
    await shot(page, 'schedules.png');
    await row.getByRole('button', { name: 'Pause schedule nightly-report' }).click();
    await waitFor('SCHED.GET to say paused', async () => fields(await c.cmd('SCHED.GET', 'nightly-report')).paused === 1);
    await waitFor('the row to show paused', async () => (await row.locator('[data-col="state"]').innerText()) === 'paused');
    await row.getByRole('button', { name: 'Resume schedule nightly-report' }).click();
    await waitFor('SCHED.GET to say active', async () => fields(await c.cmd('SCHED.GET', 'nightly-report')).paused === 0);
    await waitFor('the resume in the log', () => log(srv).includes("dashboard: user 'default' from 127.0.0.1 resumed schedule 'nightly-report': ok"));
    assert((await page.locator('main').innerText()).includes('Running a tick at once not available in this version'), 'run-now is not said to be missing');
  });

  await test('phone width: no sideways scrolling of the page', async () => {
    const p2 = await ctx.newPage();
    await p2.setViewportSize({ width: 375, height: 800 });
    for (const [hash, ready] of [['#/queue/emails/ready', '#jobs'], ['#/', '#queues'], ['#/workers', 'section[data-queue]'],
      ['#/schedules', '#schedules'], ['#/server', 'dl.kv']]) {
      await p2.goto(srv.url + hash);
      await p2.locator(ready).first().waitFor();
      const w = await p2.evaluate(() => document.documentElement.scrollWidth);
      assert(w <= 376, `${hash}: the page is ${w} px wide at a 375 px viewport`);
    }
    await p2.close();
  });

  await test('keyboard and labels: every control has a name; Tab reaches the search box', async () => {
    for (const [hash, ready] of [['#/workers', 'section[data-queue]'], ['#/schedules', '#schedules button'], ['#/queue/emails/dead', '#error-filter']]) {
      await page.goto(srv.url + hash);
      await page.locator(ready).first().waitFor();
      const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
        .filter((el) => !el.closest('dialog') && !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map((el) => el.outerHTML));
      assert(!unnamed.length, hash + ': controls without a label: ' + unnamed.join(' '));
    }
    await page.reload();
    await page.locator('#error-filter').waitFor();
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await page.keyboard.press('Tab');
    assert(await page.evaluate(() => document.activeElement.classList.contains('skip')), 'the first Tab does not reach the skip link');
    let reached = false;
    for (let i = 0; i < 10 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement && document.activeElement.id === 'search-id');
    }
    assert(reached, 'Tab never reached the job search box');
  });

  await test('live streams are capped: past the cap 503 with a message, and the page polls instead', async () => {
    const server = async () => (await (await fetch(srv.url + 'api/server')).json()).live;
    const base = (await server()).streams;
    const max = (await server()).max_streams;
    const held = [];
    for (let i = base; i < max; i++) {
      const ac = new AbortController();
      const r = await fetch(srv.url + 'api/events', { signal: ac.signal });
      assert(r.status === 200 && r.headers.get('content-type').startsWith('text/event-stream'), `stream ${i}: ${r.status}`);
      held.push({ ac, reader: r.body.getReader() });
    }
    const first = new TextDecoder().decode((await held[0].reader.read()).value);
    assert(first.includes('retry: 2000'), 'first chunk: ' + first);
    const over = await fetch(srv.url + 'api/events');
    const body = await over.json();
    assert(over.status === 503 && body.error.includes('too many live dashboard streams') && body.error.includes(String(max)), `past the cap: ${over.status} ${JSON.stringify(body)}`);
    const p2 = await ctx.newPage();
    const seen = errors.length;
    await p2.goto(srv.url + '#/');
    await p2.locator('#queues tr[data-queue="reports"]').waitFor();
    await waitFor('the footer to say polling', async () => (await p2.locator('#foot-updated').innerText()).includes('polling'));
    const before = Number((await p2.locator('#queues tr[data-queue="reports"] [data-col="ready"]').innerText()).replace(/[^0-9]/g, ''));
    await c.cmd('RPUSH', 'reports', '{"report":"polled"}');
    await waitFor('the polled count to grow', async () => Number((await p2.locator('#queues tr[data-queue="reports"] [data-col="ready"]').innerText()).replace(/[^0-9]/g, '')) === before + 1, 6000);
    await p2.close();
    errors.splice(seen); /* chromium reports the refused stream (503) on the console */
    for (const h2 of held) h2.ac.abort();
    await waitFor('the streams to be closed when their clients went', async () => (await server()).streams <= base, 6000);
  });

  await test('many queues: 200 rows drawn, the filter finds the others', async () => {
    for (let i = 0; i < 220; i++) await c.cmd('LPUSH', 'bulk-' + String(i).padStart(3, '0'), '{}');
    await page.goto(srv.url + '#/server');
    await page.locator('dl.kv').first().waitFor();
    await page.goto(srv.url + '#/');
    await page.locator('#queue-filter').waitFor();
    const total = (await c.cmd('QUEUE.LIST')).length;
    assert((await page.locator('#queues tbody tr[data-queue]').count()) === 200, 'not 200 rows');
    const note = await page.locator('#queues-note').innerText();
    assert(note.includes(`Showing 200 of ${total} queues`), `note: ${note}`);
    await page.locator('#queue-filter').fill('bulk-21');
    const rows = await page.locator('#queues tbody tr[data-queue]').evaluateAll((t) => t.map((r) => r.dataset.queue));
    assert(JSON.stringify(rows) === JSON.stringify([...Array(10).keys()].map((i) => 'bulk-21' + i)), `filtered: ${rows}`);
    await c.cmd('LPUSH', 'bulk-215', '{}');
    await waitFor('the filtered row to follow', async () => (await page.locator('#queues tr[data-queue="bulk-215"] [data-col="ready"]').innerText()) === '2', 6000);
    assert(await page.evaluate(() => document.activeElement.id === 'queue-filter'), 'polling took the focus from the filter');
  });

  await test('no script errors on any page', async () => {
    assert(!errors.length, errors.join('\n'));
  });

  await ctx.close();
  fs.rmSync(ctx.userDataDir, { recursive: true, force: true });
  c.close();
  worker.close();
  const code = await stopSpoold(srv);
  await test('spoold stops cleanly after the suite', async () => assert(code === 0, `exit ${code}`));

  // With a password, everything of the dashboard asks for it.
  const locked = await startSpoold(['--requirepass', 's3cret pass']);
  await test('with requirepass, unauthenticated access is refused (401)', async () => {
    for (const p of ['', 'app.js', 'api/overview', 'api/session']) {
      const r = await fetch(locked.url + p);
      assert(r.status === 401, `GET /${p} without a password answered ${r.status}`);
      assert((r.headers.get('www-authenticate') || '').startsWith('Basic'), `GET /${p}: no Basic challenge`);
    }
    const bad = await fetch(locked.url + 'api/overview', { headers: { Authorization: 'Basic ' + Buffer.from('default:wrong').toString('base64') } });
    assert(bad.status === 401, `a wrong password answered ${bad.status}`);
    const other = await fetch(locked.url + 'api/overview', { headers: { Authorization: 'Basic ' + Buffer.from('admin:s3cret pass').toString('base64') } });
    assert(other.status === 401, `another user answered ${other.status}`);
    const post = await fetch(locked.url + 'api/actions/queue-pause', { method: 'POST', body: 'queue=x' });
    assert(post.status === 401, `an unauthenticated POST answered ${post.status}`);
    assert((await fetch(locked.url + 'healthz')).status === 200, '/healthz stays open');
  });
  await test('with requirepass, the right password opens the dashboard', async () => {
    const b = await launch();
    const p = b.pages()[0] || (await b.newPage());
    // Headless chromium has no one to ask for a password: it either shows
    // the 401 page or gives up on the navigation with an auth error.
    const denied = await p.goto(locked.url).then((r) => r.status(), (e) => String(e.message));
    assert(denied === 401 || /ERR_INVALID_AUTH_CREDENTIALS/.test(denied), `without credentials the browser got ${denied}`);
    await b.close();
    fs.rmSync(b.userDataDir, { recursive: true, force: true });
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-chromium-'));
    const ctx2 = await chromium.launchPersistentContext(userDataDir, {
      executablePath: '/usr/bin/chromium', headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      httpCredentials: { username: 'default', password: 's3cret pass' },
    });
    const p2 = ctx2.pages()[0] || (await ctx2.newPage());
    const ok = await p2.goto(locked.url);
    assert(ok.status() === 200, `with the password the browser got ${ok.status()}`);
    await p2.locator('#queues').waitFor();
    await ctx2.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  });
  await test('a read-only ACL user sees the figures but no buttons, and a forged POST is refused (403)', async () => {
    const admin = await Resp.connect(locked.port);
    await admin.cmd('AUTH', 's3cret pass');
    await admin.cmd('ACL', 'SETUSER', 'viewer', 'on', '>look only', '+@read', '~*');
    await admin.cmd('ACL', 'SETUSER', 'mailops', 'on', '>mail ops', '+@all', '~emails*');
    const dead = await deadJob(admin, 'emails', '{"to":"frank@example.com"}', '550 no such user');
    await deadJob(admin, 'reports', '{"report":"x"}', 'disk full');
    await admin.cmd('SCHED.SET', 'nightly', 'reports', '0 3 * * *', '{}');
    const open = async (user, pass) => {
      const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-chromium-'));
      const bctx = await chromium.launchPersistentContext(userDataDir, {
        executablePath: '/usr/bin/chromium', headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        httpCredentials: { username: user, password: pass },
      });
      return Object.assign(bctx, { userDataDir, p: bctx.pages()[0] || (await bctx.newPage()) });
    };
    const v = await open('viewer', 'look only');
    try {
      const p = v.p;
      await p.goto(locked.url + '#/queue/emails/dead');
      await p.locator(`#jobs tr[data-job="${dead}"]`).waitFor();
      assert(await p.locator('#no-actions').isVisible(), 'no "may look but not change" note');
      for (const sel of ['#pause-toggle', '#purge-state', 'button:has-text("Retry all dead")', 'button:has-text("Save settings")'])
        assert((await p.locator(sel).count()) === 0, `the read-only user sees ${sel}`);
      assert((await p.locator('#foot-user').innerText()).includes('viewer (read only)'), 'footer: ' + await p.locator('#foot-user').innerText());
      await p.goto(locked.url + '#/job/' + dead);
      await p.locator('#job-error').waitFor();
      assert((await p.locator('#job-retry, #job-delete').count()) === 0, 'the read-only user sees job buttons');
      await p.goto(locked.url + '#/schedules');
      await p.locator('tr[data-schedule="nightly"]').waitFor();
      assert((await p.locator('tr[data-schedule="nightly"] button').count()) === 0, 'the read-only user sees schedule buttons');
      // A forged POST with a valid token of the viewer's session: refused, named, logged.
      const r = await p.evaluate(async (id) => {
        const s = await (await fetch('/api/session')).json();
        const res = await fetch('/api/actions/job-retry', { method: 'POST', headers: { 'X-CSRF-Token': s.csrf,
          'Content-Type': 'application/x-www-form-urlencoded' }, body: 'id=' + id });
        return { status: res.status, body: await res.json() };
      }, dead);
      assert(r.status === 403 && r.body.error.includes("user 'viewer' lacks the permission to run JOB.RETRY") && r.body.error.includes('+job.retry'),
        'forged POST: ' + JSON.stringify(r));
      await waitFor('the refusal in the log', () => log(locked).includes("dashboard: user 'viewer' from 127.0.0.1 refused: user 'viewer' lacks the permission to run JOB.RETRY"));
      assert(fields(await admin.cmd('JOB.GET', dead)).state === 'dead', 'the forged retry changed the job');
    } finally {
      await v.close();
      fs.rmSync(v.userDataDir, { recursive: true, force: true });
    }
    // A user whose keys cover emails* only: buttons there, none on reports.
    const m = await open('mailops', 'mail ops');
    try {
      const p = m.p;
      await p.goto(locked.url + '#/queue/emails');
      await p.locator('#pause-toggle').waitFor();
      await p.goto(locked.url + '#/queue/reports');
      await p.locator('#no-actions').waitFor();
      assert((await p.locator('#pause-toggle').count()) === 0, 'mailops sees the pause button of reports');
      const r = await p.evaluate(async () => {
        const s = await (await fetch('/api/session')).json();
        const res = await fetch('/api/actions/queue-pause', { method: 'POST', headers: { 'X-CSRF-Token': s.csrf,
          'Content-Type': 'application/x-www-form-urlencoded' }, body: 'queue=reports' });
        return { status: res.status, body: await res.json() };
      });
      assert(r.status === 403 && r.body.error.includes("may not use queue 'reports'"), 'forged pause of reports: ' + JSON.stringify(r));
      assert(fields(await admin.cmd('QUEUE.STATS', 'reports')).paused === 0, 'the forged pause paused reports');
    } finally {
      await m.close();
      fs.rmSync(m.userDataDir, { recursive: true, force: true });
      admin.close();
    }
  });
  await stopSpoold(locked);

  // Without a password, only loopback clients are served: reach the
  // dashboard through another local address when the machine has one.
  await test('without requirepass, a non-loopback client is refused (403)', async () => {
    const ip = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
    if (!ip) throw new Skip('this machine has no address but loopback');
    const open = await startSpoold(['--bind', '0.0.0.0']);
    try {
      const r = await fetch(`http://${ip.address}:${open.http}/api/overview`);
      assert(r.status === 403, `GET from ${ip.address} answered ${r.status}`);
      assert((await fetch(open.url + 'api/overview')).status === 200, 'loopback is served');
    } finally {
      await stopSpoold(open);
    }
  });
}

main()
  .catch((e) => { failed++; console.log('not ok - the suite stopped: ' + (e.stack || e)); })
  .finally(async () => {
    for (const s of servers) if (!s.exited) s.child.kill('SIGKILL');
    for (const line of skips) console.log(line);
    console.log(`${skips.length} skipped`);
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
