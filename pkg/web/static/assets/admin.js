// The operator dashboard: hash-routed views over /api/admin/*.
//
//   #/overview        queues, throughput, latency, workers (refreshed every 5 s)
//   #/jobs?filters    every user's jobs, filtered and paged
//   #/jobs/<id>       one job: request, text, timeline, audio, retry/cancel/delete
//   #/users           accounts
//   #/keys            API keys
import {
  api, health, getToken, setToken, setUnauthorizedHandler, showError, el,
  fmtTime, fmtMs, fmtSeconds, extOf, playWithFallback,
} from './api.js';

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const FILTERS = ['status', 'user', 'voice', 'queue', 'since', 'until', 'q'];

const state = {
  me: null,
  timer: 0,          // the current view's refresh timer
  seq: 0,            // bumps on every route, so late answers of a left view are dropped
  stopped: false,    // set once the dashboard is refused: nothing refreshes
  flash: '',         // a notice to show after the next route
  cursors: [],       // earlier pages' cursors on the Jobs view, for "First page"
};

// ---- plumbing -------------------------------------------------------------

function loginRedirect() {
  location.assign('/?next=' + encodeURIComponent('/admin' + location.hash));
}

function forbidden() {
  state.stopped = true;
  clearTimeout(state.timer);
  $('loading').hidden = true;
  $('console').hidden = true;
  $('forbidden').hidden = false;
}

// call is api() for the dashboard: 403 shows the refusal page; 401 is sent
// to the log-in page by the unauthorized handler.
async function call(path, opts) {
  try {
    return await api(path, opts);
  } catch (e) {
    if (e.status === 403) forbidden();
    throw e;
  }
}

function fail(e) {
  if (e && (e.status === 401 || e.status === 403)) return;
  showError($('error'), e);
}

function notice(text) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = !text;
}

function confirmDialog(text) {
  const d = $('confirm');
  $('confirm-text').textContent = text;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'yes'), { once: true });
    d.showModal();
  });
}

function cell(text, cls) { return el('td', cls ? { class: cls } : {}, text ?? ''); }
function badge(status) { return el('span', { class: 'badge ' + status }, status); }
function ago(s) {
  if (!s) return '';
  const secs = Math.round((Date.now() - new Date(s).getTime()) / 1000);
  if (!isFinite(secs)) return s;
  if (secs < 2) return 'just now';
  if (secs < 120) return secs + ' s ago';
  if (secs < 7200) return Math.round(secs / 60) + ' min ago';
  return fmtTime(s);
}
function pct(x) {
  if (x === undefined || x === null) return '–';
  return (Number(x) * 100).toFixed(1) + '%';
}
function num(x) { return x === undefined || x === null ? '–' : Number(x).toLocaleString(); }

// ---- routing --------------------------------------------------------------

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [p, qs] = h.split('?');
  const parts = p.split('/').filter(Boolean);
  const params = new URLSearchParams(qs || '');
  if (parts[0] === 'jobs' && parts[1]) return { view: 'job', id: decodeURIComponent(parts[1]), params };
  if (['overview', 'jobs', 'users', 'keys'].includes(parts[0])) return { view: parts[0], params };
  return { view: 'overview', params };
}

async function route() {
  clearTimeout(state.timer);
  const seq = ++state.seq;
  const r = parseHash();
  for (const s of document.querySelectorAll('[data-view]')) s.hidden = s.dataset.view !== r.view;
  const tab = r.view === 'job' ? 'jobs' : r.view;
  for (const a of document.querySelectorAll('nav.tabs a')) {
    if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  showError($('error'), null);
  notice(state.flash);
  state.flash = '';
  const views = { overview, jobs, job, users, keys };
  try {
    await views[r.view](r, seq);
  } catch (e) {
    if (seq === state.seq) fail(e);
  }
}

const live = (seq) => seq === state.seq && !state.stopped;

// ---- overview -------------------------------------------------------------

async function overview(r, seq) {
  let o;
  try {
    o = await call('/api/admin/overview');
  } finally {
    if (live(seq)) state.timer = setTimeout(() => { if (live(seq)) overview(r, seq).catch(fail); }, 5000);
  }
  if (!live(seq)) return;
  // Parts the server could not read (Redis down, say) are listed.
  showError($('error'), o.problems && o.problems.length ? { message: 'Part of the overview is missing: ' + o.problems.join('; ') } : null);
  const lh = o.last_hour || {};
  const card = (k, v, id) => el('div', { class: 'card', 'data-testid': id }, el('div', { class: 'k' }, k), el('div', { class: 'v' }, v));
  $('ov-cards').replaceChildren(
    card('Submitted', num(lh.submitted), 'ov-submitted'),
    card('Jobs per minute', lh.jobs_per_minute === undefined ? '–' : Number(lh.jobs_per_minute).toFixed(2), 'ov-jpm'),
    card('Failure rate', pct(lh.failure_rate), 'ov-failure-rate'),
    card('Wait p50 / p95', fmtMs(lh.wait_p50_ms) + ' / ' + fmtMs(lh.wait_p95_ms), 'ov-wait'),
    card('Synthesis p50 / p95', fmtMs(lh.synth_p50_ms) + ' / ' + fmtMs(lh.synth_p95_ms), 'ov-synth'),
    card('Succeeded', num(lh.succeeded), 'ov-succeeded'),
    card('Failed', num(lh.failed), 'ov-failed'),
    card('Canceled', num(lh.canceled), 'ov-canceled'),
  );
  const js = o.jobs || {};
  $('ov-states').replaceChildren(...['queued', 'running', 'succeeded', 'failed', 'canceled'].map((s) =>
    el('a', { class: 'card', href: '#/jobs?status=' + s, 'data-testid': 'ov-state-' + s },
      el('div', { class: 'k' }, s), el('div', { class: 'v' }, num(js[s] || 0)))));
  const qb = $('ov-queues').tBodies[0];
  qb.replaceChildren(...(o.queues || []).map((q) => el('tr', { dataset: { queue: q.name }, 'data-testid': 'ov-queue' },
    el('th', { scope: 'row' }, q.name, q.paused ? ' (paused)' : ''), cell(num(q.size), 'num'), cell(num(q.pending), 'num'), cell(num(q.active), 'num'),
    cell(num(q.scheduled), 'num'), cell(num(q.retry), 'num'), cell(num(q.archived), 'num'), cell(num(q.completed), 'num'),
    cell(fmtMs(q.latency_ms), 'num'))));
  if (!qb.rows.length) qb.append(el('tr', {}, el('td', { colspan: 9, class: 'empty' }, 'No queues yet.')));
  const wb = $('ov-workers').tBodies[0];
  wb.replaceChildren(...(o.workers || []).map((w) => {
    const eng = w.engine && typeof w.engine === 'object' ? w.engine.name : w.engine;
    const dev = w.device || (w.engine && typeof w.engine === 'object' ? w.engine.device : '');
    return el('tr', { dataset: { worker: w.id }, 'data-testid': 'ov-worker' },
      el('th', { scope: 'row', class: 'mono', title: w.id }, String(w.id || '').slice(0, 12)),
      cell([w.host, w.pid].filter(Boolean).join(' · ')), el('td', { title: w.model || '' }, eng), cell(dev), cell(num(w.concurrency), 'num'),
      el('td', { title: w.started_at || '' }, fmtTime(w.started_at)),
      el('td', { title: fmtTime(w.last_heartbeat) }, ago(w.last_heartbeat)));
  }));
  if (!wb.rows.length) wb.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No worker is running.')));
  $('ov-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

// ---- jobs -----------------------------------------------------------------

function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function filtersFromForm() {
  const f = $('jobs-filter');
  const out = new URLSearchParams();
  for (const k of FILTERS) {
    let v = f.elements[k].value.trim();
    if (!v) continue;
    if (k === 'since' || k === 'until') {
      const d = new Date(v);
      if (isNaN(d)) continue;
      v = d.toISOString();
    }
    out.set(k, v);
  }
  return out;
}

async function jobs(r, seq) {
  const f = $('jobs-filter');
  for (const k of FILTERS) {
    const v = r.params.get(k) || '';
    f.elements[k].value = k === 'since' || k === 'until' ? toLocalInput(v) : v;
  }
  const q = new URLSearchParams();
  for (const k of FILTERS) if (r.params.get(k)) q.set(k, r.params.get(k));
  const cursor = r.params.get('cursor') || '';
  if (!cursor) state.cursors = [];
  if (cursor) q.set('cursor', cursor);
  q.set('limit', '50');
  const tbody = $('jobs-table').tBodies[0];
  const list = await call('/api/admin/jobs?' + q);
  if (!live(seq)) return;
  tbody.replaceChildren();
  for (const j of list.jobs || []) {
    const open = () => { location.hash = '#/jobs/' + encodeURIComponent(j.id); };
    tbody.append(el('tr', { class: 'clickable', dataset: { jobId: j.id, status: j.status }, 'data-testid': 'job-row', onclick: open },
      el('td', { class: 'mono' }, el('a', { href: '#/jobs/' + encodeURIComponent(j.id), title: j.id }, j.id.slice(0, 8) + '…')),
      cell(j.user_email || j.user_id || ''),
      el('td', {}, badge(j.status)),
      cell(j.voice),
      cell(num(j.characters), 'num'),
      cell(j.audio ? fmtSeconds(j.audio.duration_seconds) : '', 'num'),
      cell(fmtMs(j.wait_ms), 'num'),
      cell(fmtMs(j.synth_ms), 'num'),
      cell(j.max_attempts ? j.attempts + ' / ' + j.max_attempts : num(j.attempts), 'num'),
      el('td', {}, el('time', { datetime: j.created_at }, fmtTime(j.created_at)))));
  }
  if (!tbody.rows.length) tbody.append(el('tr', {}, el('td', { colspan: 10, class: 'empty' }, 'No jobs match.')));
  // Which query the rows answer (the hash changes before they arrive).
  $('jobs-table').dataset.loaded = location.hash;
  const next = $('jobs-next');
  next.disabled = !list.next_cursor;
  next.onclick = () => {
    state.cursors.push(cursor);
    const p = new URLSearchParams(q);
    p.delete('limit');
    p.set('cursor', list.next_cursor);
    location.hash = '#/jobs?' + p;
  };
  const first = $('jobs-first');
  first.disabled = !cursor;
  first.onclick = () => {
    const p = new URLSearchParams(q);
    p.delete('limit');
    p.delete('cursor');
    location.hash = '#/jobs' + (p.toString() ? '?' + p : '');
  };
}

// ---- job detail -----------------------------------------------------------

async function job(r, seq) {
  const id = r.id;
  const d = await call('/api/admin/jobs/' + encodeURIComponent(id));
  if (!live(seq)) return;
  const j = d.job || d;
  $('jd-id').textContent = j.id;
  const st = $('jd-status');
  st.textContent = j.status + (j.cancel_requested ? ' (cancel requested)' : '');
  st.dataset.status = j.status;
  showError($('jd-error'), j.error ? { message: j.error } : null);
  const f = [
    ['User', j.user_email || j.user_id],
    ['Voice', j.voice], ['Speed', j.speed], ['Format', j.format], ['Queue', j.queue],
    ['Sample rate', j.sample_rate ? j.sample_rate + ' Hz' : ''], ['Bitrate', j.bitrate_kbps ? j.bitrate_kbps + ' kbps' : ''],
    ['Characters', num(j.characters)],
    ['Attempts', j.max_attempts ? j.attempts + ' / ' + j.max_attempts : j.attempts],
    ['Engine', [j.engine, j.device].filter(Boolean).join(' on ')],
    ['Cache hit', j.cache_hit ? 'yes' : ''],
    ['Callback URL', j.callback_url],
    ['Created', fmtTime(j.created_at)], ['Started', fmtTime(j.started_at)], ['Finished', fmtTime(j.finished_at)],
    ['Queue wait', fmtMs(j.wait_ms)], ['Synthesis', fmtMs(j.synth_ms)],
    ['Audio', j.audio ? [fmtSeconds(j.audio.duration_seconds), j.audio.content_type,
      j.audio.bytes ? num(j.audio.bytes) + ' bytes' : ''].filter(Boolean).join(' · ') : ''],
  ].filter(([, v]) => v !== undefined && v !== null && v !== '');
  $('jd-fields').replaceChildren(...f.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
  $('jd-text').textContent = j.text || '';
  const tl = $('jd-timeline');
  tl.replaceChildren(...(d.events || []).map((e) => el('li', { 'data-testid': 'jd-event', dataset: { type: e.type } },
    el('span', { class: 'when' }, fmtTime(e.time)),
    el('strong', {}, e.type),
    e.attempt ? ' (attempt ' + e.attempt + ')' : '',
    typeof e.progress === 'number' ? ' ' + Math.round(e.progress * 100) + '%' : '',
    e.error ? el('span', { class: 'err' }, e.error) : '')));
  if (!tl.children.length) tl.append(el('li', { class: 'empty' }, 'No events recorded.'));

  const box = $('jd-audio-box');
  if (j.status === 'succeeded' && j.audio) {
    const url = j.audio.url || (j.links && j.links.audio);
    const a = $('jd-audio');
    if (a.dataset.job !== j.id) { a.dataset.job = j.id; playWithFallback(a, url); }
    $('jd-download').href = url;
    $('jd-download').download = j.id + '.' + extOf(j.format);
    box.hidden = false;
  } else {
    box.hidden = true;
  }

  const terminal = TERMINAL.has(j.status);
  const retry = $('jd-retry'), cancel = $('jd-cancel'), del = $('jd-delete');
  retry.hidden = !(j.status === 'failed' || j.status === 'canceled');
  cancel.hidden = terminal;
  del.hidden = !terminal;
  retry.onclick = () => act('Retry this job as a new job with the same request?', async () => {
    const res = await call('/api/admin/jobs/' + encodeURIComponent(j.id) + '/retry', { method: 'POST' });
    const nj = res.job || res;
    state.flash = 'Retried as job ' + nj.id + '.';
    location.hash = '#/jobs/' + encodeURIComponent(nj.id);
  });
  cancel.onclick = () => act('Cancel this job?', async () => {
    await call('/api/admin/jobs/' + encodeURIComponent(j.id) + '/cancel', { method: 'POST' });
    state.flash = 'Cancel requested.';
    await route();
  });
  del.onclick = () => act('Delete this job and its audio? This cannot be undone.', async () => {
    await call('/api/admin/jobs/' + encodeURIComponent(j.id), { method: 'DELETE' });
    state.flash = 'Job ' + j.id + ' deleted.';
    location.hash = '#/jobs';
  });
  // Follow a live job until it ends.
  if (!terminal) state.timer = setTimeout(() => { if (live(seq)) job(r, seq).catch(fail); }, 2000);
}

async function act(question, fn) {
  if (!(await confirmDialog(question))) return;
  showError($('error'), null);
  try {
    await fn();
  } catch (e) {
    fail(e);
  }
}

// ---- users ----------------------------------------------------------------

async function users(r, seq) {
  const res = await call('/api/admin/users');
  if (!live(seq)) return;
  const me = state.me && state.me.user;
  const tbody = $('users-table').tBodies[0];
  tbody.replaceChildren(...(res.users || []).map((u) => el('tr', { dataset: { userId: u.id, email: u.email }, 'data-testid': 'user-row' },
    el('th', { scope: 'row' }, u.email), cell(u.role), cell(u.disabled ? 'disabled' : 'active'),
    cell(fmtTime(u.created_at)), cell(u.last_login_at ? fmtTime(u.last_login_at) : 'never'),
    el('td', {}, el('button', {
      type: 'button', class: 'secondary small', 'data-testid': 'user-toggle',
      disabled: !!(me && me.id === u.id), title: me && me.id === u.id ? 'You cannot disable yourself' : undefined,
      onclick: () => act((u.disabled ? 'Enable ' : 'Disable ') + u.email + '?', async () => {
        await call('/api/admin/users/' + encodeURIComponent(u.id), { method: 'PATCH', body: { disabled: !u.disabled } });
        state.flash = u.email + (u.disabled ? ' enabled.' : ' disabled.');
        await route();
      }),
    }, u.disabled ? 'Enable' : 'Disable')))));
  if (!tbody.rows.length) tbody.append(el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'No users.')));
}

async function createUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = { email: f.elements.email.value.trim(), password: f.elements.password.value, role: f.elements.role.value };
  showError($('error'), null);
  try {
    const res = await call('/api/admin/users', { method: 'POST', body });
    f.reset();
    state.flash = 'Created ' + ((res.user && res.user.email) || body.email) + '.';
    await route();
  } catch (e) {
    fail(e);
  }
}

// ---- API keys -------------------------------------------------------------

async function keys(r, seq) {
  const [ks, us] = await Promise.all([call('/api/admin/keys'), call('/api/admin/users')]);
  if (!live(seq)) return;
  const sel = $('k-user');
  const chosen = sel.value;
  sel.replaceChildren(...(us.users || []).filter((u) => !u.disabled).map((u) => el('option', { value: u.id }, u.email)));
  if (chosen && [...sel.options].some((o) => o.value === chosen)) sel.value = chosen;
  const tbody = $('keys-table').tBodies[0];
  tbody.replaceChildren(...(ks.keys || []).map((k) => el('tr', { dataset: { keyId: k.id }, 'data-testid': 'key-row' },
    el('th', { scope: 'row' }, k.name || '(unnamed)'), cell(k.user_email || k.user_id), el('td', { class: 'mono' }, k.prefix || ''),
    cell(fmtTime(k.created_at)), cell(k.last_used_at ? fmtTime(k.last_used_at) : 'never'), cell(k.revoked_at ? fmtTime(k.revoked_at) : ''),
    el('td', {}, k.revoked_at ? '' : el('button', {
      type: 'button', class: 'secondary small', 'data-testid': 'key-revoke',
      onclick: () => act('Revoke the key "' + (k.name || k.prefix) + '"? Programs using it stop working.', async () => {
        await call('/api/admin/keys/' + encodeURIComponent(k.id), { method: 'DELETE' });
        state.flash = 'Key revoked.';
        $('k-secret-box').hidden = true;
        await route();
      }),
    }, 'Revoke')))));
  if (!tbody.rows.length) tbody.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No API keys.')));
}

async function createKey(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = { user_id: f.elements.user_id.value, name: f.elements.name.value.trim() };
  showError($('error'), null);
  if (!body.user_id) { showError($('error'), { message: 'Choose a user first.' }); return; }
  try {
    const res = await call('/api/admin/keys', { method: 'POST', body });
    f.elements.name.value = '';
    $('k-secret').value = res.key || '';
    $('k-secret-box').hidden = false;
    $('k-copy').textContent = 'Copy';
    await keys(parseHash(), state.seq);
    $('k-secret').select();
  } catch (e) {
    fail(e);
  }
}

async function copySecret() {
  const input = $('k-secret');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand('copy');
  }
  $('k-copy').textContent = 'Copied';
}

// ---- start ----------------------------------------------------------------

async function boot() {
  setUnauthorizedHandler(loginRedirect);
  $('logout').addEventListener('click', async () => {
    try { await api('/api/auth/logout', { method: 'POST', quiet401: true }); } catch { /* leave anyway */ }
    setToken('');
    location.assign('/');
  });
  $('jobs-filter').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = filtersFromForm();
    location.hash = '#/jobs' + (p.toString() ? '?' + p : '');
  });
  $('jobs-filter').addEventListener('reset', () => { setTimeout(() => { location.hash = '#/jobs'; }); });
  $('user-form').addEventListener('submit', createUser);
  $('key-form').addEventListener('submit', createKey);
  $('k-copy').addEventListener('click', copySecret);

  const h = await health();
  const authOn = h.auth === 'jwt';
  // Changes need the bearer token; without one, log in again.
  if (authOn && !getToken()) { loginRedirect(); return; }
  try {
    state.me = await api('/api/auth/me');
  } catch (e) {
    if (e.status === 401) return; // redirected
    // No /api/auth/me (open mode on an older server): carry on.
  }
  const user = state.me && state.me.user;
  if (user && user.role && user.role !== 'admin') { forbidden(); return; }
  if (authOn && user) {
    $('who').textContent = user.email;
    $('who').hidden = false;
    $('logout').hidden = false;
  }
  $('loading').hidden = true;
  $('console').hidden = false;
  window.addEventListener('hashchange', route);
  await route();
}

boot();
