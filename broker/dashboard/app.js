/* spool dashboard: a single page over spoold's /api/ (see docs/dashboard.md).
 * No framework: views are functions that build DOM nodes with h(); every
 * text goes in through textContent, never as HTML. Routes are location
 * hashes (#/, #/queue/<name>/<state>, #/job/<id>, #/workers, #/schedules,
 * #/server). Live figures come as Server-Sent Events from /api/events (one
 * "overview" event when the figures change); when the stream cannot be had
 * (the server's cap, a proxy), the page polls every 2 s while visible. */
'use strict';

const POLL_MS = 2000;
const STATES = ['ready', 'reserved', 'delayed', 'done', 'dead'];
let session = null;
let pollTimer = null;
let renderSeq = 0;
let keepStatus = false; /* the next navigation keeps the message (set by an action that navigates) */

/* ---------------------------------------------------------------- DOM */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);
const main = () => $('#main');

function say(text, kind) {
  const st = $('#status');
  st.replaceChildren(text ? h('div', { class: 'msg ' + (kind || '') }, text) : '');
}

/* -------------------------------------------------------------- format */

const nf = new Intl.NumberFormat();
const num = (n) => (n === null || n === undefined ? '–' : nf.format(n));
const rate = (r) => (r === null || r === undefined ? '–' : (r >= 10 ? r.toFixed(0) : r.toFixed(1)));

function ago(ms) {
  if (!ms) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}

function when(ms) {
  if (!ms) return '–';
  const d = new Date(ms), p = (v) => String(v).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function bytes(n) {
  if (n === null || n === undefined || n < 0) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function prettyPayload(text) {
  if (text === null || text === undefined) return '(payload not available)';
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}

/* -------------------------------------------------------------- network */

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  const body = await r.json().catch(() => ({ error: 'unreadable answer (' + r.status + ')' }));
  if (!r.ok) throw Object.assign(new Error(body.error || r.statusText), { status: r.status });
  return body;
}

function form(fields) {
  return Object.entries(fields)
    .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v))
    .join('&');
}

async function act(name, fields) {
  const r = await fetch('/api/actions/' + name, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRF-Token': session.csrf },
    body: form(fields),
  });
  const body = await r.json().catch(() => ({ error: 'unreadable answer (' + r.status + ')' }));
  if (!r.ok) throw Object.assign(new Error(body.error || r.statusText), { status: r.status });
  return body;
}

/* Runs an action from a button: disables it, reports, re-renders. */
async function runAction(btn, name, fields, done) {
  btn.disabled = true;
  try {
    const r = await act(name, fields);
    say(done(r), 'ok');
    await render();
  } catch (e) {
    say(e.message, 'bad');
  } finally {
    btn.disabled = false;
  }
}

/* A modal question; with word, the user must type it. Resolves true on OK. */
function confirmBox(title, text, word, okLabel) {
  const dlg = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel || 'Confirm';
  const typed = $('#confirm-typed'), input = $('#confirm-input'), ok = $('#confirm-ok');
  typed.hidden = !word;
  input.value = '';
  $('#confirm-word').textContent = word || '';
  ok.disabled = !!word;
  input.oninput = () => { ok.disabled = input.value !== word; };
  return new Promise((resolve) => {
    dlg.onclose = () => resolve(dlg.returnValue === 'ok' && (!word || input.value === word));
    dlg.returnValue = '';
    dlg.showModal();
    (word ? input : $('#confirm-cancel')).focus();
  });
}

/* --------------------------------------------------------------- chart */

/* An SVG line chart of pushed/acked/failed per second, drawn as buckets
 * (maximum per bucket) so an hour fits any width. */
function chart(series, label, width) {
  const W = Math.max(280, Math.round(width || 720)), H = 170, P = { l: 38, r: 8, t: 10, b: 22 };
  const n = series.pushed.length;
  const buckets = Math.min(n, Math.floor((W - P.l - P.r) / 3));
  const per = Math.max(1, Math.ceil(n / Math.max(1, buckets)));
  const pick = (arr) => {
    const out = [];
    for (let i = 0; i < n; i += per) out.push(Math.max(...arr.slice(i, i + per)));
    return out;
  };
  const lines = { pushed: pick(series.pushed), acked: pick(series.acked), failed: pick(series.failed) };
  const max = Math.max(1, ...lines.pushed, ...lines.acked, ...lines.failed);
  const top = niceMax(max);
  const x = (i, len) => P.l + (len <= 1 ? 0 : (i * (W - P.l - P.r)) / (len - 1));
  const y = (v) => H - P.b - (v / top) * (H - P.t - P.b);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const tot = (a) => a.reduce((s, v) => s + v, 0);
  svg.setAttribute('aria-label', `${label}: over the last ${span(n)}, ` +
    `${tot(series.pushed)} pushed, ${tot(series.acked)} acked, ${tot(series.failed)} failed`);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
  };
  for (const f of [0, 0.5, 1]) {
    add('line', { class: 'grid', x1: P.l, x2: W - P.r, y1: y(top * f), y2: y(top * f) });
    add('text', { class: 'axis', x: P.l - 4, y: y(top * f) + 4, 'text-anchor': 'end' }, fmtShort(top * f));
  }
  add('text', { class: 'axis', x: P.l, y: H - 6 }, n > 1 ? '−' + span(n) : '');
  add('text', { class: 'axis', x: W - P.r, y: H - 6, 'text-anchor': 'end' }, 'now');
  for (const k of ['pushed', 'acked', 'failed']) {
    const pts = lines[k].map((v, i) => `${x(i, lines[k].length).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    add('polyline', { class: k, points: pts });
  }
  return svg;
}

function span(seconds) {
  return seconds >= 120 ? Math.round(seconds / 60) + ' min' : seconds + ' s';
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmtShort(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return String(Math.round(v));
}

/* Chart panel that keeps itself fresh: the full hour once, then the new
 * seconds on each poll. */
function chartPanel(queue, title) {
  const box = h('section', { class: 'panel', 'aria-label': title });
  const state = { data: null };
  const draw = () => {
    const d = state.data;
    if (!d.tracked) {
      box.replaceChildren(h('h2', {}, title), h('p', { class: 'na' }, 'No chart for this queue: ' + d.reason + '.'));
      return;
    }
    const last = (k) => d[k].slice(-10).reduce((s, v) => s + v, 0) / 10;
    box.replaceChildren(
      h('h2', {}, title),
      chart(d, title, (box.isConnected ? box.clientWidth : main().clientWidth - 40) - 34),
      h('div', { class: 'legend' },
        h('span', { class: 'pushed' }, 'pushed ', h('b', {}, rate(last('pushed')) + '/s')),
        h('span', { class: 'acked' }, 'acked ', h('b', {}, rate(last('acked')) + '/s')),
        h('span', { class: 'failed' }, 'failed ', h('b', {}, rate(last('failed')) + '/s')),
        h('span', { class: 'muted' }, 'per second since ' + (d.pushed.length >= 3600 ? 'an hour ago' : 'spoold started') + '; figures: last 10 s')));
  };
  const q = queue === null ? '' : 'queue=' + encodeURIComponent(queue) + '&';
  box.refresh = async () => {
    const d = state.data;
    if (d && d.tracked) {
      const more = await api('/api/throughput?' + q + 'since=' + d.end);
      if (!more.tracked) return;
      for (const k of ['pushed', 'acked', 'failed']) d[k] = d[k].concat(more[k]).slice(-3600);
      d.end = more.end;
    } else {
      state.data = await api('/api/throughput?' + q.replace(/&$/, ''));
    }
    draw();
  };
  return box;
}

/* ---------------------------------------------------------------- views */

function jobLink(id) {
  return h('a', { href: '#/job/' + id }, h('code', {}, id));
}

function queueHref(name, st) {
  return '#/queue/' + encodeURIComponent(name) + (st ? '/' + st : '');
}

/* May this user run the action? scope: the "can" of the queue, job or
 * schedules answer (the ACL on that queue), else the session's (the
 * commands alone). Buttons of actions it may not run are not drawn. */
function can(scope, action) {
  if (scope && action in scope) return !!scope[action];
  return !!(session.can && session.can[action]);
}

function na(what) {
  return h('span', { class: 'na' }, what + ' not available in this version');
}

function period(ms) {
  if (ms % 3600000 === 0) return ms / 3600000 + 'h';
  if (ms % 60000 === 0) return ms / 60000 + 'm';
  if (ms % 1000 === 0) return ms / 1000 + 's';
  return ms + 'ms';
}

/* A queue's limits with their use now: reserved jobs against the
 * concurrency limit, the acks per second beside the rate limit, and the
 * waiters the limits hold back. q: a row of /api/overview (or QUEUE.STATS
 * with the rates). */
function limitsOf(q) {
  const parts = [];
  if (q.concurrency_limit) parts.push(`concurrency ${num(q.reserved)}/${num(q.concurrency_limit)}`);
  if (q.rate_limit) parts.push(`rate ${num(q.rate_limit)}/${period(q.rate_period_ms)}` + (q.rate ? ` (acked ${rate(q.rate.acked)}/s)` : ''));
  if (q.throttled) parts.push(`${num(q.throttled)} held back`);
  return parts.length ? parts.join(' · ') : 'none';
}

function limitsFull(q) {
  return (q.concurrency_limit && q.reserved >= q.concurrency_limit) || q.throttled > 0;
}

const MAX_ROWS = 200; /* queue rows drawn at once; the filter finds the others */

function stateBadge(q) {
  return h('span', { class: 'badge ' + (q.paused ? 'paused' : 'active') }, q.paused ? 'paused' : 'active');
}

function deadCell(q) {
  return q.dead ? h('a', { href: queueHref(q.name, 'dead'), class: 'num-dead' }, num(q.dead)) : '0';
}

function limitsCell(q) {
  return h('span', { class: limitsFull(q) ? 'warn' : '' }, limitsOf(q));
}

function queueRow(q) {
  return h('tr', { 'data-queue': q.name },
    h('td', { class: 'l' }, h('a', { href: queueHref(q.name) }, q.name)),
    h('td', { 'data-col': 'ready' }, num(q.ready)),
    h('td', { 'data-col': 'reserved' }, num(q.reserved)),
    h('td', { 'data-col': 'delayed' }, num(q.delayed)),
    h('td', { 'data-col': 'dead' }, deadCell(q)),
    h('td', { 'data-col': 'done' }, num(q.done)),
    h('td', { 'data-col': 'push-rate' }, rate(q.rate && q.rate.pushed)),
    h('td', { 'data-col': 'ack-rate' }, rate(q.rate && q.rate.acked)),
    h('td', { 'data-col': 'oldest', class: 'hide-narrow' }, ago(q.oldest_ready_age_ms)),
    h('td', { 'data-col': 'state', class: 'l' }, stateBadge(q)),
    h('td', { 'data-col': 'limits', class: 'l hide-narrow' }, limitsCell(q)));
}

/* The queues the table shows: those whose name has the filter text, at
 * most MAX_ROWS. */
function visibleQueues(ov, filter) {
  const f = filter.toLowerCase();
  return ov.queues.filter((q) => !f || q.name.toLowerCase().includes(f)).slice(0, MAX_ROWS);
}

function fillQueues(body, note, ov, filter) {
  const shown = visibleQueues(ov, filter);
  body.replaceChildren(...shown.map((q) => queueRow(q)));
  if (!ov.queues.length)
    body.append(h('tr', {}, h('td', { colspan: 11, class: 'l muted' }, 'No queues yet. Push a job: redis-cli -p 7379 LPUSH emails \'{"to":"a@example.com"}\'')));
  else if (!shown.length)
    body.append(h('tr', {}, h('td', { colspan: 11, class: 'l muted' }, 'No queue name contains “' + filter + '”.')));
  const matching = filter ? ov.queues.filter((q) => q.name.toLowerCase().includes(filter.toLowerCase())).length : ov.queues.length;
  note.textContent = shown.length < matching ? `Showing ${shown.length} of ${matching} queues: filter by name to find the others.` : '';
}

function sums(ov) {
  const sum = { ready: 0, reserved: 0, delayed: 0, dead: 0, done: 0 };
  for (const q of ov.queues) for (const k of Object.keys(sum)) sum[k] += q[k];
  return Object.assign(sum, { paused: ov.queues.filter((q) => q.paused).length });
}

async function viewOverview(seq) {
  const ov = await api('/api/overview');
  const totalChart = chartPanel(null, 'Throughput, all queues');
  await totalChart.refresh();
  if (seq !== renderSeq) return null;
  const sum = sums(ov);
  const body = h('tbody', {});
  const note = h('p', { class: 'muted', id: 'queues-note' });
  const filterInput = h('input', { id: 'queue-filter', type: 'search', placeholder: 'name contains…', autocomplete: 'off' });
  fillQueues(body, note, ov, '');
  const table = queuesTable(ov, sum, body);
  const cards = h('div', { class: 'cards' },
    card('Queues', ov.queues.length), card('Ready', sum.ready), card('Reserved', sum.reserved),
    card('Delayed', sum.delayed), card('Dead', sum.dead, 'dead'), card('Paused', sum.paused, 'paused-count'),
    card('Clients', ov.connected_clients), card('Blocked', ov.blocked_clients));
  const filterRow = ov.queues.length > 10
    ? h('div', { class: 'row' }, h('label', { for: 'queue-filter' }, 'Filter queues by name', filterInput)) : null;
  main().replaceChildren(h('h1', {}, 'Queues'), cards, totalChart, filterRow || '', note, h('div', { class: 'scroll' }, table));
  return overviewUpdater(seq, ov, totalChart, body, note, filterInput);
}

function queuesTable(ov, sum, body) {
  const foot = h('tfoot', {}, h('tr', {}, h('td', { class: 'l', id: 'queues-count' }, 'All ' + ov.queues.length + ' queues'),
    ...['ready', 'reserved', 'delayed', 'dead', 'done'].map((k) => h('td', { 'data-total': k }, num(sum[k]))),
    h('td', { 'data-total': 'push-rate' }, rate(ov.total && ov.total.pushed)), h('td', { 'data-total': 'ack-rate' }, rate(ov.total && ov.total.acked)),
    h('td', { class: 'hide-narrow' }), h('td', {}), h('td', { class: 'hide-narrow' })));
  return h('table', { id: 'queues' },
    h('caption', {}, 'Queues: jobs per state, rates over the last ' + ov.rate_window_s + ' s; limits with their use now'),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'l' }, 'Queue'), h('th', { scope: 'col' }, 'Ready'), h('th', { scope: 'col' }, 'Reserved'),
      h('th', { scope: 'col' }, 'Delayed'), h('th', { scope: 'col' }, 'Dead'), h('th', { scope: 'col' }, 'Done'),
      h('th', { scope: 'col' }, 'Push/s'), h('th', { scope: 'col' }, 'Ack/s'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Oldest ready'),
      h('th', { scope: 'col', class: 'l' }, 'State'), h('th', { scope: 'col', class: 'l hide-narrow' }, 'Limits'))),
    body, foot);
}

/* Live: new figures in place (focus and the filter stay); live is the
 * event's overview, or null when polling. */
function overviewUpdater(seq, ov, totalChart, body, note, filterInput) {
  filterInput.addEventListener('input', () => fillQueues(body, note, ov, filterInput.value));
  return async (live) => {
    const next = live || await api('/api/overview');
    await totalChart.refresh();
    if (seq !== renderSeq) return;
    ov = next;
    const shown = visibleQueues(ov, filterInput.value);
    const trs = [...body.querySelectorAll('tr[data-queue]')];
    if (trs.length !== shown.length || trs.some((tr, i) => tr.dataset.queue !== shown[i].name)) {
      fillQueues(body, note, ov, filterInput.value); /* the set of queues changed */
    } else {
      trs.forEach((tr, i) => {
        const q = shown[i];
        for (const k of ['ready', 'reserved', 'delayed', 'done']) tr.querySelector(`[data-col="${k}"]`).textContent = num(q[k]);
        tr.querySelector('[data-col="dead"]').replaceChildren(deadCell(q));
        tr.querySelector('[data-col="push-rate"]').textContent = rate(q.rate && q.rate.pushed);
        tr.querySelector('[data-col="ack-rate"]').textContent = rate(q.rate && q.rate.acked);
        tr.querySelector('[data-col="oldest"]').textContent = ago(q.oldest_ready_age_ms);
        tr.querySelector('[data-col="state"]').replaceChildren(stateBadge(q));
        tr.querySelector('[data-col="limits"]').replaceChildren(limitsCell(q));
      });
    }
    const sum = sums(ov);
    for (const k of ['ready', 'reserved', 'delayed', 'dead', 'done']) document.querySelector(`[data-total="${k}"]`).textContent = num(sum[k]);
    document.querySelector('[data-total="push-rate"]').textContent = rate(ov.total && ov.total.pushed);
    document.querySelector('[data-total="ack-rate"]').textContent = rate(ov.total && ov.total.acked);
    document.querySelector('#queues-count').textContent = 'All ' + ov.queues.length + ' queues';
    const vals = [ov.queues.length, sum.ready, sum.reserved, sum.delayed, sum.dead, sum.paused, ov.connected_clients, ov.blocked_clients];
    document.querySelectorAll('.cards .card .v').forEach((c, i) => { c.textContent = num(vals[i]); });
  };
}

function card(k, v, cls) {
  return h('div', { class: 'card ' + (cls || '') }, h('div', { class: 'k' }, k), h('div', { class: 'v', 'data-stat': k }, num(v)));
}

async function viewQueue(seq, name, st, params) {
  st = STATES.includes(st) ? st : 'ready';
  const [info, tp] = [await api('/api/queue?queue=' + encodeURIComponent(name)), chartPanel(name, 'Throughput of ' + name)];
  await tp.refresh();
  const filter = params.get('error') || '';
  const after = params.get('after') || '';
  let page;
  try {
    page = await api('/api/jobs?' + form(Object.assign({ queue: name, state: st, count: 25 },
      after ? { after } : {}, filter ? { error: filter } : {})));
  } catch (e) {
    if (e.status === 409 && after) { /* the cursor job left the state: start over */
      say('That page moved on (its first job changed state); showing the first page.', '');
      keepStatus = true;
      location.hash = queueHref(name, st);
      return null;
    }
    throw e;
  }
  const groups = st === 'dead' && !after ? await api('/api/dead-groups?queue=' + encodeURIComponent(name)) : null;
  if (seq !== renderSeq) return null;
  const s = info.stats;
  const paused = !!s.paused;
  const head = h('div', {},
    h('p', { class: 'muted' }, h('a', { href: '#/' }, 'Queues'), ' › ', name),
    h('h1', {}, name, ' ', h('span', { class: 'badge ' + (paused ? 'paused' : 'active') }, paused ? 'paused' : 'active')),
    h('div', { class: 'cards' }, ...STATES.map((k) => card(k, s[k], k === 'dead' ? 'dead' : '')),
      card('pushed', s.pushed), card('acked', s.acked), card('popped', s.popped), card('retried', s.retried),
      card('waiters', s.waiters)),
    h('p', { id: 'queue-limits' }, h('strong', {}, 'Limits: '), limitsOf(Object.assign({}, s, { rate: null })), groupLimits(info.config)),
    queueActions(name, info));
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Job states' }, ...STATES.map((x) =>
    h('a', { href: queueHref(name, x), 'aria-current': x === st ? 'page' : null, 'data-tab': x }, x + ' (' + num(s[x]) + ')')));
  const browser = jobTable(page, st, name, filter);
  main().replaceChildren(head, tp, h('div', { id: 'job-browser' }, h('h2', { id: 'jobs-title' }, 'Jobs'), tabs,
    groups ? groupList(groups, name) : null, browser), can(info.can, 'queue-config') ? settingsPanel(name, info) : '');
  return async (live) => {
    const row = live && live.queues.find((q) => q.name === name);
    const now = row ? { stats: row } : await api('/api/queue?queue=' + encodeURIComponent(name));
    await tp.refresh();
    if (seq !== renderSeq) return;
    if (!!now.stats.paused !== paused) return render(); /* paused or resumed elsewhere: new buttons */
    for (const el of document.querySelectorAll('.cards [data-stat]')) el.textContent = num(now.stats[el.dataset.stat]);
    for (const a of document.querySelectorAll('[data-tab]')) a.textContent = a.dataset.tab + ' (' + num(now.stats[a.dataset.tab]) + ')';
    const lim = document.querySelector('#queue-limits');
    if (lim) lim.replaceChildren(h('strong', {}, 'Limits: '), limitsOf(now.stats), groupLimits(info.config));
  };
}

/* The buttons this user may use on the queue, or a note that it may not. */
function queueActions(name, info) {
  const s = info.stats;
  const paused = !!s.paused;
  const may = (a) => can(info.can, a);
  const pauseBtn = !may(paused ? 'queue-resume' : 'queue-pause') ? null : h('button', { type: 'button', id: 'pause-toggle', onclick: (e) =>
    runAction(e.currentTarget, paused ? 'queue-resume' : 'queue-pause', { queue: name },
      () => (paused ? 'Queue ' + name + ' resumed.' : 'Queue ' + name + ' paused: nothing is delivered from it until it is resumed.')) },
  paused ? 'Resume queue' : 'Pause queue');
  const pace = h('input', { id: 'redrive-rate', size: 7, placeholder: '10/1s', autocomplete: 'off', spellcheck: 'false' });
  const retryAll = !may('queue-retry-dead') ? null : h('button', { type: 'button', id: 'retry-dead', disabled: !s.dead, onclick: async (e) => {
    const b = e.currentTarget, rate = pace.value.trim();
    const how = rate ? `the first becomes ready now, the others one at a time at ${rate} (they wait as delayed jobs)` : 'they become ready now';
    if (await confirmBox('Retry every dead job', `All ${s.dead} dead jobs of ${name}: ${how}.`, null, 'Retry all'))
      runAction(b, 'queue-retry-dead', Object.assign({ queue: name }, rate ? { rate } : {}),
        (r) => r.result + ' dead job(s) of ' + name + (rate ? ' redriven at ' + rate + '.' : ' are ready again.'));
  } }, 'Retry all dead');
  const purgeState = h('select', { id: 'purge-state', 'aria-label': 'Jobs to purge' },
    h('option', { value: 'all' }, 'all but reserved'), ...STATES.map((x) => h('option', { value: x }, x)));
  const purge = !may('queue-purge') ? null : h('button', { type: 'button', class: 'danger', onclick: async (e) => {
    const b = e.currentTarget, which = purgeState.value;
    if (await confirmBox('Purge ' + name, `Delete the ${which === 'all' ? 'ready, delayed, done and dead' : which} jobs of this queue. This cannot be undone.`, name, 'Purge'))
      runAction(b, 'queue-purge', { queue: name, confirm: name, state: which }, (r) => r.result + ' job(s) of ' + name + ' deleted.');
  } }, 'Purge…');
  if (!pauseBtn && !retryAll && !purge)
    return h('p', { class: 'muted', id: 'no-actions' }, 'Your user (' + session.user + ') may look at this queue but not change it.');
  return h('div', { class: 'actions act', role: 'group', 'aria-label': 'Queue actions' }, pauseBtn,
    retryAll ? h('span', { class: 'row' }, retryAll, h('label', { for: 'redrive-rate' }, 'at a pace of (optional)', pace)) : null,
    purge ? h('span', { class: 'row' }, purgeState, purge) : null);
}

function groupLimits(config) {
  const parts = ['group-rate', 'group-concurrency']
    .filter((k) => config[k] !== undefined && config[k] !== '0' && config[k] !== '')
    .map((k) => k + ' ' + config[k]);
  return parts.length ? ' · per group: ' + parts.join(' · ') : '';
}

function groupList(g, name) {
  if (!g.groups.length) return null;
  return h('section', { class: 'panel', 'aria-labelledby': 'groups-title' },
    h('h2', { id: 'groups-title' }, 'Dead jobs by error'),
    h('ul', { class: 'groups' }, ...g.groups.map((x) => h('li', {},
      h('span', { class: 'count' }, num(x.count) + '×'),
      x.error === null ? h('span', { class: 'na' }, '(no error recorded)')
        : h('a', { href: queueHref(name, 'dead') + '?error=' + encodeURIComponent(x.error.slice(0, 200)) }, x.error),
      ' ', h('span', { class: 'muted' }, '— latest ', jobLink(x.latest_id), ', ', when(x.latest_at))))),
    g.truncated ? h('p', { class: 'muted' }, 'Counted from the first ' + num(g.scanned) + ' dead jobs.') : null,
    g.other ? h('p', { class: 'muted' }, num(g.other) + ' more with other errors.') : null);
}

function jobTable(page, st, name, filter) {
  const box = h('section', { 'aria-labelledby': 'jobs-title' });
  if (st === 'dead') {
    const input = h('input', { id: 'error-filter', name: 'error', value: filter, placeholder: 'e.g. timeout' });
    box.append(h('form', { class: 'row', role: 'search', onsubmit: (e) => {
      e.preventDefault();
      location.hash = queueHref(name, 'dead') + (input.value ? '?error=' + encodeURIComponent(input.value) : '');
    } }, h('label', { for: 'error-filter' }, 'Filter dead jobs by error text', input),
    h('button', { type: 'submit' }, 'Filter'),
    filter ? h('a', { href: queueHref(name, 'dead') }, 'Clear filter') : null));
  }
  const rows = page.jobs.map((j) => h('tr', { 'data-job': j.id },
    h('td', { class: 'l' }, jobLink(j.id)),
    h('td', {}, num(j.attempt) + ' / ' + num(j.retries + 1)),
    h('td', { class: 'hide-narrow' }, when(j.created_at)),
    h('td', {}, when(st === 'delayed' ? j.run_at : st === 'reserved' ? j.lease_until : j.updated_at)),
    h('td', { class: 'l wrap' }, j.last_error ? h('span', { class: 'dead' }, j.last_error) : h('span', { class: 'muted' }, '–')),
    h('td', { class: 'l wrap preview hide-narrow' }, (j.payload_preview || '') + (j.payload_bytes > 160 ? '…' : ''))));
  const colTime = st === 'delayed' ? 'Runs at' : st === 'reserved' ? 'Lease until' : 'Updated';
  box.append(h('div', { class: 'scroll' }, h('table', { id: 'jobs' },
    h('caption', {}, `${st} jobs of ${name}` + (filter ? ` whose error contains “${filter}”` : '') +
      (page.scan_limit_reached ? ` (searched ${num(page.scanned)} jobs; go on with Next)` : '')),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'l' }, 'Job'), h('th', { scope: 'col' }, 'Attempt'),
      h('th', { scope: 'col', class: 'hide-narrow' }, 'Created'), h('th', { scope: 'col' }, colTime),
      h('th', { scope: 'col', class: 'l' }, 'Last error'), h('th', { scope: 'col', class: 'l hide-narrow' }, 'Payload'))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'l muted' }, 'No ' + st + ' jobs' + (filter ? ' match.' : '.')))))));
  const base = queueHref(name, st);
  const q = (extra) => '?' + form(Object.assign({}, filter ? { error: filter } : {}, extra));
  box.append(h('div', { class: 'pager' },
    h('a', { href: base + q({}) }, 'First page'),
    page.next ? h('a', { href: base + q({ after: page.next }), id: 'next-page' }, 'Next page →') : h('span', { class: 'muted' }, 'End of list')));
  return box;
}

function settingsPanel(name, info) {
  const fields = info.settings.map((k) => h('label', {}, k,
    h('input', { name: 'set.' + k, value: info.config[k], size: 10, 'data-setting': k })));
  const f = h('form', { class: 'row', 'aria-label': 'Queue settings', onsubmit: (e) => {
    e.preventDefault();
    const changed = {};
    for (const input of f.querySelectorAll('input[data-setting]'))
      if (input.value !== info.config[input.dataset.setting]) changed[input.name] = input.value;
    if (!Object.keys(changed).length) { say('Nothing changed.', ''); return; }
    runAction(f.querySelector('button'), 'queue-config', Object.assign({ queue: name }, changed),
      () => 'Settings of ' + name + ' saved.');
  } }, ...fields, h('button', { type: 'submit', class: 'primary' }, 'Save settings'));
  return h('section', { class: 'panel act', 'aria-labelledby': 'settings-title' },
    h('h2', { id: 'settings-title' }, 'Settings'),
    h('p', { class: 'muted' }, 'QUEUE.CONFIG: times in milliseconds; see docs/protocol.md.'), f);
}

async function viewJob(seq, id) {
  const { job, can: jobCan } = await api('/api/job?id=' + encodeURIComponent(id));
  if (seq !== renderSeq) return null;
  const known = new Set(['id', 'queue', 'state', 'payload', 'priority', 'attempt', 'retries', 'lease_ms', 'run_at',
    'lease_until', 'created_at', 'updated_at', 'last_error', 'unique', 'errors', 'worker', 'holder', 'result', 'progress']);
  const rows = [
    ['Queue', h('a', { href: queueHref(job.queue, job.state) }, job.queue)],
    ['State', h('span', { id: 'job-state', class: job.state === 'dead' ? 'dead' : '' }, job.state)],
    ['Attempt', job.attempt + ' of ' + (job.retries + 1) + ' allowed'],
    ['Priority', job.priority], ['Lease', job.lease_ms + ' ms'],
    ['Created', when(job.created_at)], ['Updated', when(job.updated_at)],
    ['Runs at', job.run_at ? when(job.run_at) : '–'], ['Lease until', job.lease_until ? when(job.lease_until) : '–'],
    ['Unique key', job.unique === null ? '–' : job.unique],
    ['Last error', job.last_error === null ? '–' : h('span', { id: 'job-error', class: 'dead' }, job.last_error)],
    ['Errors per attempt', Array.isArray(job.errors) ? (job.errors.length ? h('ol', { id: 'job-errors' }, ...job.errors.map((e) => h('li', {},
      typeof e === 'string' ? e : [`attempt ${e.attempt}, ${when(e.time)}: `, h('span', { class: 'dead' }, e.error), e.worker ? h('span', { class: 'muted' }, ' (' + e.worker + ')') : null]))) : '–')
      : na('Per-attempt errors')],
    ['Worker holding it', job.holder !== undefined ? (job.holder === null ? '–' : h('span', { id: 'job-holder' }, job.holder)) : na('Worker identity')],
    ['Result', job.result !== undefined ? (job.result === null ? '–' : h('pre', {}, prettyPayload(job.result))) : na('Results')],
    ['Progress', job.progress !== undefined ? (job.progress === null ? '–' : String(job.progress)) : na('Progress')],
  ];
  for (const [k, v] of Object.entries(job)) if (!known.has(k)) rows.push([k, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
  const buttons = h('div', { class: 'actions act', role: 'group', 'aria-label': 'Job actions' },
    (job.state === 'dead' || job.state === 'delayed') && can(jobCan, 'job-retry')
      ? h('button', { type: 'button', class: 'primary', id: 'job-retry', onclick: (e) =>
        runAction(e.currentTarget, 'job-retry', { id: job.id }, () => 'Job ' + job.id + ' is ready again.') }, 'Retry now')
      : null,
    !can(jobCan, 'job-delete') ? null : h('button', { type: 'button', class: 'danger', id: 'job-delete', onclick: async (e) => {
      const b = e.currentTarget;
      if (await confirmBox('Delete job', 'Delete job ' + job.id + ' of ' + job.queue + '? This cannot be undone.', null, 'Delete')) {
        b.disabled = true;
        try {
          await act('job-delete', { id: job.id });
          say('Job ' + job.id + ' deleted.', 'ok');
          keepStatus = true;
          location.hash = queueHref(job.queue, job.state);
        } catch (err) { say(err.message, 'bad'); b.disabled = false; }
      }
    } }, 'Delete'));
  main().replaceChildren(
    h('p', { class: 'muted' }, h('a', { href: '#/' }, 'Queues'), ' › ', h('a', { href: queueHref(job.queue, job.state) }, job.queue), ' › job'),
    h('h1', {}, 'Job ', h('code', {}, job.id)), buttons,
    h('section', { class: 'panel', 'aria-label': 'Job fields' }, h('dl', { class: 'kv' }, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
    h('h2', {}, 'Payload'), h('pre', { id: 'payload', tabindex: 0, 'aria-label': 'Payload' }, prettyPayload(job.payload)));
  return null;
}

/* In how long (or how long ago) a Unix ms time is, from now. */
function inOrAgo(ms, now) {
  if (!ms) return '–';
  return ms >= now ? 'in ' + ago(ms - now + 999) : ago(now - ms) + ' ago';
}

const JOBS_SHOWN = 5; /* per worker; the queue's reserved tab lists all */

function workerRows(q, now) {
  return q.workers.map((w) => h('tr', { 'data-worker': w.id },
    h('td', { class: 'l' }, w.name ? h('strong', {}, w.name) : h('span', { class: 'muted' }, '(no name)')),
    h('td', { class: 'l hide-narrow' }, h('code', {}, w.addr || '–')),
    h('td', { class: 'hide-narrow' }, w.id),
    h('td', { class: 'l' }, w.jobs.length ? 'holds ' + w.jobs.length : '', w.jobs.length && w.waiting ? ', ' : '', w.waiting ? h('span', { class: 'badge active' }, 'waiting') : ''),
    h('td', { title: when(w.last_active) }, inOrAgo(w.last_active, now)),
    h('td', { class: 'l wrap' }, w.jobs.length ? h('ul', { class: 'plain' }, ...w.jobs.slice(0, JOBS_SHOWN).map((j) => h('li', {},
      jobLink(j.id), ` attempt ${j.attempt}, lease `, h('span', { class: j.lease_until < now ? 'dead' : '', title: when(j.lease_until) },
        j.lease_until < now ? 'ran out ' + ago(now - j.lease_until) + ' ago' : 'ends in ' + ago(j.lease_until - now + 999)))),
      w.jobs.length > JOBS_SHOWN ? h('li', { class: 'muted' }, h('a', { href: queueHref(q.name, 'reserved') }, `and ${num(w.jobs.length - JOBS_SHOWN)} more`)) : null) : '–')));
}

function workersTable(q, now) {
  const limit = q.concurrency_limit ? ` (concurrency ${num(q.reserved)}/${num(q.concurrency_limit)})` : '';
  return h('section', { class: 'panel', 'data-queue': q.name, 'aria-label': 'Workers of ' + q.name },
    h('h2', {}, h('a', { href: queueHref(q.name, 'reserved') }, q.name), ' ', q.paused ? h('span', { class: 'badge paused' }, 'paused') : null),
    h('p', { class: 'muted' }, `${num(q.reserved)} reserved${limit}, ${num(q.waiters)} waiting` + (q.throttled ? `, ${num(q.throttled)} held back by the limits` : '')),
    h('div', { class: 'scroll' }, h('table', { class: 'workers' },
      h('caption', { class: 'sr' }, 'Workers of ' + q.name),
      h('thead', {}, h('tr', {}, h('th', { class: 'l', scope: 'col' }, 'Worker'), h('th', { class: 'l hide-narrow', scope: 'col' }, 'Address'),
        h('th', { scope: 'col', class: 'hide-narrow' }, 'Conn. id'), h('th', { class: 'l', scope: 'col' }, 'Doing'),
        h('th', { scope: 'col' }, 'Last active'), h('th', { class: 'l', scope: 'col' }, 'Jobs and leases'))),
      h('tbody', {}, q.workers.length ? workerRows(q, now)
        : h('tr', {}, h('td', { colspan: 6, class: 'l muted' }, 'Jobs reserved by clients that are gone: they return when their leases run out.'))))));
}

async function viewWorkers(seq) {
  const draw = (w) => {
    const nw = w.queues.reduce((n, q) => n + q.workers.length, 0);
    main().replaceChildren(...h('div', {}, h('h1', {}, 'Workers'),
      h('p', {}, 'Who holds which job (by the name from CLIENT SETNAME, address and connection id), since when it was last active ' +
        '(its latest reserve, touch, or start of waiting), and when each lease ends; and who waits in JOB.RESERVE.'),
      h('div', { class: 'cards' }, card('Busy queues', w.queues.length), card('Workers', nw),
        card('Jobs held', w.queues.reduce((n, q) => n + q.reserved, 0))),
      w.queues.length ? w.queues.map((q) => workersTable(q, w.time))
        : h('p', { class: 'muted', id: 'no-workers' }, 'No worker holds a job or waits for one right now.'),
      w.more ? h('p', { class: 'muted' }, `${num(w.more)} more queues with workers (the ${w.limit} with the most reserved jobs are shown).`) : null).childNodes);
  };
  const w = await api('/api/workers');
  if (seq !== renderSeq) return null;
  draw(w);
  return async () => {
    const next = await api('/api/workers');
    if (seq !== renderSeq) return;
    const focus = document.activeElement && document.activeElement.getAttribute('href');
    draw(next);
    if (focus) { const el = main().querySelector(`a[href="${CSS.escape(focus)}"]`); if (el) el.focus(); }
  };
}

function schedRow(sc, now, perm) {
  const action = (label, name, done) => h('button', { type: 'button', 'data-action': name, 'aria-label': label + ' schedule ' + sc.name,
    onclick: (e) => runAction(e.currentTarget, name, { name: sc.name }, done) }, label);
  const buttons = [
    sc.paused ? (can(perm, 'sched-resume') ? action('Resume', 'sched-resume', () => 'Schedule ' + sc.name + ' resumed: it ticks from its next time after now.') : null)
      : (can(perm, 'sched-pause') ? action('Pause', 'sched-pause', () => 'Schedule ' + sc.name + ' paused: it does not tick until resumed.') : null),
  ].filter(Boolean);
  return h('tr', { 'data-schedule': sc.name },
    h('td', { class: 'l' }, h('strong', {}, sc.name)),
    h('td', { class: 'l' }, h('code', {}, sc.spec), sc.tz && sc.tz !== 'UTC' && !sc.spec.startsWith('@every') ? h('span', { class: 'muted' }, ' ' + sc.tz) : null),
    h('td', { class: 'l' }, h('a', { href: queueHref(sc.queue) }, sc.queue)),
    h('td', { 'data-col': 'next', title: when(sc.next_at) }, sc.paused ? '–' : inOrAgo(sc.next_at, now)),
    h('td', { 'data-col': 'last', class: 'hide-narrow' }, sc.last_tick ? h('span', { title: when(sc.last_tick) }, inOrAgo(sc.last_tick, now)) : 'never',
      sc.last_job ? [' ', jobLink(sc.last_job)] : null),
    h('td', { class: 'hide-narrow' }, num(sc.runs) + (sc.skipped ? ` (${num(sc.skipped)} skipped)` : '')),
    h('td', { class: 'l', 'data-col': 'state' }, h('span', { class: 'badge ' + (sc.paused ? 'paused' : 'active') }, sc.paused ? 'paused' : 'active')),
    h('td', { class: 'l act' }, buttons.length ? h('span', { class: 'row' }, ...buttons) : h('span', { class: 'muted' }, '–')));
}

async function viewSchedules(seq) {
  const r = await api('/api/schedules');
  if (seq !== renderSeq) return null;
  const anyAction = ['sched-pause', 'sched-resume'].some((a) => can(r.can, a));
  const table = h('table', { id: 'schedules' },
    h('caption', {}, 'Schedules (SCHED.LIST): each pushes one job into its queue at every tick'),
    h('thead', {}, h('tr', {}, h('th', { class: 'l', scope: 'col' }, 'Name'), h('th', { class: 'l', scope: 'col' }, 'When'),
      h('th', { class: 'l', scope: 'col' }, 'Queue'), h('th', { scope: 'col' }, 'Next run'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Last run'),
      h('th', { scope: 'col', class: 'hide-narrow' }, 'Runs'), h('th', { class: 'l', scope: 'col' }, 'State'),
      h('th', { class: 'l act', scope: 'col' }, anyAction ? 'Actions' : ''))),
    h('tbody', {}, r.schedules.length ? r.schedules.map((sc) => schedRow(sc, r.time, r.can))
      : h('tr', {}, h('td', { colspan: 8, class: 'l muted' }, 'No schedules. Create one: redis-cli -p 7379 SCHED.SET nightly reports "0 3 * * *" \'{"report":"daily"}\''))));
  main().replaceChildren(h('h1', {}, 'Schedules'),
    h('div', { class: 'cards' }, card('Schedules', r.schedules.length), card('Paused', r.schedules.filter((x) => x.paused).length)),
    h('div', { class: 'scroll' }, table),
    h('p', { class: 'muted' }, 'Run now: ', na('Running a tick at once'), ' (spoold has no command for it; push the job with JOB.PUSH). ' +
      'Resuming starts from the first tick after now; ticks missed while paused are not run.'));
  return async () => {
    const next = await api('/api/schedules');
    if (seq !== renderSeq) return;
    if (JSON.stringify(next.schedules.map((x) => [x.name, x.paused])) !== JSON.stringify(r.schedules.map((x) => [x.name, x.paused]))) return render();
    for (const sc of next.schedules) {
      const tr = main().querySelector(`tr[data-schedule="${CSS.escape(sc.name)}"]`);
      if (!tr) continue;
      const fresh = schedRow(sc, next.time, r.can);
      for (const col of ['next', 'last']) tr.querySelector(`[data-col="${col}"]`).replaceWith(fresh.querySelector(`[data-col="${col}"]`));
    }
  };
}

async function viewServer(seq) {
  const s = await api('/api/server');
  if (seq !== renderSeq) return null;
  const kv = (pairs) => h('dl', { class: 'kv' }, ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  const files = h('table', {}, h('caption', {}, 'Files in ' + s.data_dir),
    h('thead', {}, h('tr', {}, h('th', { class: 'l', scope: 'col' }, 'File'), h('th', { scope: 'col' }, 'Size'))),
    h('tbody', {}, ...s.disk.files.sort((a, b) => a.name.localeCompare(b.name)).map((f) => h('tr', {}, h('td', { class: 'l' }, f.name), h('td', {}, bytes(f.bytes))))));
  main().replaceChildren(h('h1', {}, 'Server'),
    h('div', { class: 'cards' }, card('Uptime (min)', Math.floor(s.uptime_s / 60)), card('Shards', s.shards), card('Clients', s.clients.connected),
      card('Blocked', s.clients.blocked), card('Commands', s.clients.commands_processed)),
    h('section', { class: 'panel', 'aria-label': 'Process' }, h('h2', {}, 'Process'), kv([
      ['Version', s.version], ['PID', s.pid], ['Run id', h('code', {}, s.run_id)], ['Started', when(s.started_at)],
      ['Uptime', ago(s.uptime_s * 1000)], ['Listening', s.bind + ':' + s.port], ['Password', s.requirepass ? 'required (requirepass)' : 'none: loopback only'],
      ['Shards', s.shards], ['I/O threads', s.io_threads], ['fsync', s.fsync], ['Payload check', s.payload]])),
    h('section', { class: 'panel', 'aria-label': 'Memory and disk' }, h('h2', {}, 'Memory and disk'), kv([
      ['Resident memory', bytes(s.memory.rss_bytes)], ['Payload memory limit', bytes(s.memory.payload_memory_limit)],
      ['Throughput rings', bytes(s.memory.rates_bytes) + ' (' + s.throughput.seconds + ' s, up to ' + s.throughput.max_queues + ' queues' + (s.throughput.overflowed ? '; some queues not tracked' : '') + ')'],
      ['Data on disk', bytes(s.disk.total_bytes)], ['Free on that disk', bytes(s.disk.free_bytes) + ' of ' + bytes(s.disk.fs_bytes)]]),
    h('div', { class: 'scroll' }, files)),
    h('section', { class: 'panel', 'aria-label': 'Clients' }, h('h2', {}, 'Clients'), kv([
      ['Connected', num(s.clients.connected) + ' of ' + num(s.clients.maxclients)], ['Blocked (waiting for jobs)', num(s.clients.blocked)],
      ['Connections accepted', num(s.clients.total_connections)], ['Refused (maxclients)', num(s.clients.rejected_connections)],
      ['Commands processed', num(s.clients.commands_processed)],
      ['Signed in as', session.user + (session.can_act ? '' : ' (read only: its ACL allows none of the actions)')],
      ['Live dashboard streams', num(s.live.streams) + ' of ' + num(s.live.max_streams) + ' (Server-Sent Events; pages beyond poll)']])));
  return async () => {
    const t = await api('/api/server');
    if (seq !== renderSeq) return;
    const v = document.querySelectorAll('.cards .card .v');
    [Math.floor(t.uptime_s / 60), t.shards, t.clients.connected, t.clients.blocked, t.clients.commands_processed].forEach((x, i) => { v[i].textContent = num(x); });
  };
}

/* --------------------------------------------------------------- router */

function parseRoute() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || '') };
}

async function render() {
  const seq = ++renderSeq;
  clearTimeout(pollTimer);
  const { parts, params } = parseRoute();
  const section = parts[0] === 'queue' || parts[0] === 'job' || !parts[0] ? 'overview' : parts[0];
  for (const a of document.querySelectorAll('[data-nav]'))
    a.setAttribute('aria-current', a.dataset.nav === section ? 'page' : 'false');
  let refresh = null;
  try {
    if (!parts[0]) refresh = await viewOverview(seq);
    else if (parts[0] === 'queue' && parts[1]) refresh = await viewQueue(seq, parts[1], parts[2], params);
    else if (parts[0] === 'job' && parts[1]) refresh = await viewJob(seq, parts[1]);
    else if (parts[0] === 'workers') refresh = await viewWorkers(seq);
    else if (parts[0] === 'schedules') refresh = await viewSchedules(seq);
    else if (parts[0] === 'server') refresh = await viewServer(seq);
    else main().replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the queues')));
    document.title = (parts[0] ? parts.slice(0, 2).join(' ') + ' · ' : '') + 'spool dashboard';
  } catch (e) {
    if (seq !== renderSeq) return;
    main().replaceChildren(h('h1', {}, e.status === 404 ? 'Not found' : 'Could not load this page'),
      h('p', { class: 'msg bad', id: 'error' }, e.message), h('p', {}, h('a', { href: '#/' }, 'Back to the queues')));
  }
  updated();
  /* The queues and queue pages take the live events' figures; the others
   * poll (their times count down), as every page does without the stream. */
  Object.assign(live, { seq, refresh, takesEvents: !parts[0] || parts[0] === 'queue' });
  if (refresh) schedule(seq, refresh);
}

function updated() {
  $('#foot-updated').textContent = '· updated ' + new Date().toLocaleTimeString() +
    (live.takesEvents && liveOpen() ? ' (live)' : ' (polling every 2 s)');
}

/* ---------------------------------------------------------------- live */

const live = { es: null, seq: 0, refresh: null, takesEvents: false, busy: false, next: null };

function liveOpen() {
  return !!live.es && live.es.readyState === EventSource.OPEN;
}

/* Applies an overview event to the page (one at a time; the newest of
 * those that came meanwhile goes next). */
async function onLive(ov) {
  if (live.busy) { live.next = ov; return; }
  live.busy = true;
  try {
    if (live.takesEvents && live.refresh && live.seq === renderSeq && document.visibilityState === 'visible') {
      await live.refresh(ov);
      updated();
    }
  } catch (e) { say('Live update failed: ' + e.message, 'bad'); }
  live.busy = false;
  if (live.next) { const n = live.next; live.next = null; onLive(n); }
}

function startLive() {
  if (!window.EventSource || !session.features.live) return;
  const es = new EventSource('/api/events');
  live.es = es;
  es.addEventListener('overview', (e) => {
    let ov;
    try { ov = JSON.parse(e.data); } catch (err) { return; }
    onLive(ov);
  });
  es.addEventListener('open', updated);
  /* Closed for good (503: the server's cap, or an error status): polling
   * goes on; while reconnecting, the browser retries by itself. */
  es.addEventListener('error', () => { if (es.readyState === EventSource.CLOSED) live.es = null; updated(); });
}

function schedule(seq, refresh) {
  pollTimer = setTimeout(async () => {
    if (seq !== renderSeq) return;
    if (document.visibilityState === 'visible' && !(live.takesEvents && liveOpen())) {
      try {
        await refresh(null);
        updated();
      } catch (e) { say('Live update failed: ' + e.message, 'bad'); }
    }
    if (seq === renderSeq) schedule(seq, refresh);
  }, POLL_MS);
}

async function start() {
  try {
    session = await api('/api/session');
  } catch (e) {
    main().replaceChildren(h('h1', {}, 'Cannot open the dashboard'), h('p', { class: 'msg bad' }, e.message));
    return;
  }
  $('#foot-version').textContent = 'spool ' + session.version;
  document.body.classList.toggle('read-only', !session.can_act); /* read-only users see no buttons */
  startLive();
  $('#foot-user').textContent = '· signed in as ' + session.user + (session.auth === 'loopback' ? ' (loopback, no password set)' : '') +
    (session.can_act ? '' : ' (read only)');
  $('#search').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('#search-id').value.trim().toLowerCase();
    if (!/^[0-9a-f]{16}$/.test(id)) { say('A job id is 16 hex digits, as JOB.PUSH returns.', 'bad'); return; }
    location.hash = '#/job/' + id;
  });
  window.addEventListener('hashchange', () => {
    if (!keepStatus) say('');
    keepStatus = false;
    render().then(() => main().focus());
  });
  render();
}

start();
