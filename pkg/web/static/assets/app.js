// The try-it page: log in (when the service has auth on), submit text,
// follow the job live, play and download the audio, list recent jobs.
import {
  api, health, getToken, setToken, setUnauthorizedHandler, showError, safeNext, el,
  fmtTime, fmtSeconds, snippet, extOf, languageName, voiceName, playWithFallback,
} from './api.js';

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const STATUS_TEXT = { queued: 'Queued', running: 'Running', succeeded: 'Succeeded', failed: 'Failed', canceled: 'Canceled' };

let maxChars = 20000;
let authOn = false;
let watcher = null; // the job being followed: {id, es, timer, done}

// ---- views ----------------------------------------------------------------

function show(view) {
  $('loading').hidden = true;
  $('login-view').hidden = view !== 'login';
  $('app-view').hidden = view !== 'app';
}

function showLogin(message) {
  stopWatching();
  $('who').hidden = true;
  $('logout').hidden = true;
  $('admin-link').hidden = true;
  showError($('login-error'), message ? { message } : null);
  show('login');
  $('login-email').focus();
}

async function showApp(me) {
  const user = me && me.user;
  if (user && authOn) {
    $('who').textContent = user.email + (user.role === 'admin' ? ' (admin)' : '');
    $('who').hidden = false;
  }
  $('logout').hidden = !authOn;
  $('admin-link').hidden = !(user && user.role === 'admin');
  show('app');
  await Promise.all([loadVoices(), loadRecent()]);
}

// ---- auth -----------------------------------------------------------------

// nextParam is where to go after logging in. A server redirect keeps the
// address's fragment (the dashboard's view), so carry it on.
function nextParam() {
  const next = safeNext(new URLSearchParams(location.search).get('next') || '');
  if (next && !next.includes('#') && location.hash) return safeNext(next + location.hash);
  return next;
}

async function login(ev) {
  ev.preventDefault();
  const email = $('login-email').value.trim();
  const password = $('login-password').value;
  if (!email || !password) {
    showError($('login-error'), { message: 'Enter your email and password.' });
    return;
  }
  $('login-submit').disabled = true;
  showError($('login-error'), null);
  try {
    const r = await api('/api/auth/login', { method: 'POST', body: { email, password }, quiet401: true });
    setToken(r.token);
    $('login-password').value = '';
    const next = nextParam();
    if (next) {
      location.assign(next);
      return;
    }
    history.replaceState(null, '', location.pathname);
    await showApp(r);
  } catch (e) {
    showError($('login-error'), e.status === 401 ? { message: 'Wrong email or password.' } : e);
  } finally {
    $('login-submit').disabled = false;
  }
}

async function logout() {
  try { await api('/api/auth/logout', { method: 'POST', quiet401: true }); } catch { /* the token goes anyway */ }
  setToken('');
  showLogin();
}

// A stored token that is still valid but was sent here with ?next= (the
// /admin gate found no session cookie): refresh once, which sets the cookie
// again, then go on. Guarded so that a gate that keeps refusing cannot loop.
async function resumeNext(next) {
  const key = 'kokoro_next_tried';
  const last = Number(sessionStorage.getItem(key) || 0);
  if (Date.now() - last < 15000) return false;
  sessionStorage.setItem(key, String(Date.now()));
  try {
    const r = await api('/api/auth/refresh', { method: 'POST', quiet401: true });
    if (r && r.token) setToken(r.token);
    location.assign(next);
    return true;
  } catch {
    return false;
  }
}

// ---- voices, text ---------------------------------------------------------

async function loadVoices() {
  const sel = $('voice');
  try {
    const r = await api('/api/voices');
    const chosen = sel.value || r.default || 'af_heart';
    const groups = new Map();
    for (const v of r.voices || []) {
      const lang = v.language || v.language_code || '';
      if (!groups.has(lang)) groups.set(lang, []);
      groups.get(lang).push(v);
    }
    sel.replaceChildren();
    for (const [lang, vs] of groups) {
      const g = el('optgroup', { label: v0Name(vs[0], lang) });
      for (const v of vs) {
        const bits = [v.gender ? v.gender.charAt(0).toUpperCase() : '', v.grade || ''].filter(Boolean);
        g.append(el('option', { value: v.id }, [voiceName(v.id) + ' (' + v.id + ')', ...bits].join(' · ')));
      }
      sel.append(g);
    }
    if ([...sel.options].some((o) => o.value === chosen)) sel.value = chosen;
  } catch (e) {
    showError($('tts-error'), e);
  }
}

function v0Name(v, lang) { return v.language_name || languageName(lang); }

function updateCounter() {
  const n = [...$('text').value].length;
  const c = $('counter');
  c.textContent = n.toLocaleString() + ' / ' + maxChars.toLocaleString() + ' characters';
  c.classList.toggle('over', n > maxChars);
}

// ---- jobs -----------------------------------------------------------------

async function submit(ev) {
  ev.preventDefault();
  const text = $('text').value;
  showError($('tts-error'), null);
  if (!text.trim()) {
    showError($('tts-error'), { message: 'Type some text first.' });
    $('text').focus();
    return;
  }
  $('submit').disabled = true;
  try {
    const job = await api('/api/tts', {
      method: 'POST',
      body: { text, voice: $('voice').value, speed: Number($('speed').value), format: $('format').value },
    });
    renderJob(job);
    watch(job.id);
    loadRecent();
  } catch (e) {
    // The server names its limit ("... the maximum of 20000"): count against it.
    const m = /(?:maximum of|1 to) ([\d,]+)/.exec(e.message || '');
    if (m) { maxChars = Number(m[1].replace(/,/g, '')); updateCounter(); }
    showError($('tts-error'), e);
  } finally {
    $('submit').disabled = false;
  }
}

function setStatus(status, progress) {
  const s = $('status');
  s.dataset.status = status;
  let t = STATUS_TEXT[status] || status;
  if (status === 'running' && typeof progress === 'number') t += ' (' + Math.round(progress * 100) + '%)';
  s.textContent = t;
  const p = $('progress');
  p.hidden = TERMINAL.has(status);
  if (typeof progress === 'number') p.value = progress; else p.removeAttribute('value');
}

// renderJob shows a job (as GET /api/jobs/:id returns it) in the result panel.
function renderJob(job) {
  $('result').hidden = false;
  $('job-id').textContent = job.id;
  setStatus(job.status);
  showError($('job-error'), job.status === 'failed' ? { message: job.error || 'The job failed.' } : null);
  const box = $('player-box');
  if (job.status === 'succeeded' && job.audio) {
    const url = job.audio.url || job.links.audio;
    const player = $('player');
    if (player.dataset.job !== job.id) {
      player.dataset.job = job.id;
      playWithFallback(player, url);
    }
    const a = $('download');
    a.href = url;
    a.download = job.id + '.' + extOf(job.format);
    $('audio-info').textContent = [fmtSeconds(job.audio.duration_seconds), job.format,
      job.audio.bytes ? Math.max(1, Math.round(job.audio.bytes / 1024)) + ' KiB' : ''].filter(Boolean).join(' · ');
    box.hidden = false;
  } else {
    box.hidden = true;
  }
}

function stopWatching() {
  if (!watcher) return;
  watcher.done = true;
  if (watcher.es) watcher.es.close();
  clearTimeout(watcher.timer);
  watcher = null;
}

// watch follows a job over Server-Sent Events and falls back to polling
// once a second when the stream fails (proxies, no cookie, bus down).
function watch(id) {
  stopWatching();
  const w = { id, es: null, timer: 0, done: false };
  watcher = w;
  if (!('EventSource' in window)) { poll(w); return; }
  const es = new EventSource('/api/jobs/' + encodeURIComponent(id) + '/events');
  w.es = es;
  $('result').dataset.via = 'events'; // how the page follows the job (tests read it)
  const on = (ev) => {
    if (w.done) return;
    let d = {};
    try { d = JSON.parse(ev.data); } catch { /* keep {} */ }
    if (TERMINAL.has(ev.type)) {
      es.close();
      finish(w, d, ev.type);
    } else {
      setStatus(ev.type, d.progress);
    }
  };
  for (const t of ['queued', 'running', 'succeeded', 'failed', 'canceled']) es.addEventListener(t, on);
  // Also the server's own "error" event (events unavailable).
  es.addEventListener('error', () => {
    if (w.done) return;
    es.close();
    w.es = null;
    poll(w);
  });
}

async function poll(w) {
  if (w.done) return;
  $('result').dataset.via = 'polling';
  try {
    const job = await api('/api/jobs/' + encodeURIComponent(w.id));
    if (w.done) return;
    if (TERMINAL.has(job.status)) {
      w.done = true;
      renderJob(job);
      loadRecent();
      return;
    }
    setStatus(job.status);
  } catch (e) {
    if (w.done) return;
    if (e.status === 401 || e.status === 404) { showError($('job-error'), e); w.done = true; return; }
    // Transient: keep trying.
  }
  w.timer = setTimeout(() => poll(w), 1000);
}

async function finish(w, ev, type) {
  w.done = true;
  try {
    renderJob(await api('/api/jobs/' + encodeURIComponent(w.id)));
  } catch {
    // The event has what the page needs.
    renderJob({ id: w.id, status: type, error: ev.error, audio: ev.audio, format: $('format').value,
      links: { audio: '/api/jobs/' + w.id + '/audio' } });
  }
  loadRecent();
}

async function loadRecent() {
  const tbody = $('recent').tBodies[0];
  try {
    const r = await api('/api/jobs?limit=20');
    showError($('recent-error'), null);
    tbody.replaceChildren();
    const jobs = (r && r.jobs) || [];
    if (!jobs.length) {
      tbody.append(el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'No jobs yet.')));
      return;
    }
    for (const j of jobs) {
      const audio = j.status === 'succeeded' && j.audio;
      tbody.append(el('tr', { dataset: { jobId: j.id, status: j.status }, 'data-testid': 'recent-row' },
        el('td', { class: 'snippet', title: j.text || '' }, snippet(j.text) || el('span', { class: 'empty' }, j.id)),
        el('td', {}, j.voice),
        el('td', {}, el('span', { class: 'badge ' + j.status }, STATUS_TEXT[j.status] || j.status)),
        el('td', {}, el('time', { datetime: j.created_at }, fmtTime(j.created_at))),
        el('td', {}, audio ? [
          el('button', { type: 'button', class: 'secondary small', 'data-testid': 'recent-play',
            'aria-label': 'Play job ' + j.id, onclick: () => { stopWatching(); renderJob(j); $('player').play().catch(() => {}); } }, 'Play'),
          ' ',
          el('a', { href: j.audio.url, download: j.id + '.' + extOf(j.format), 'aria-label': 'Download job ' + j.id }, 'Download'),
        ] : ''),
      ));
    }
  } catch (e) {
    if (e.status !== 401) showError($('recent-error'), e);
  }
}

// ---- start ----------------------------------------------------------------

async function boot() {
  setUnauthorizedHandler(() => showLogin('Your session has ended: please log in again.'));
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('tts-form').addEventListener('submit', submit);
  $('text').addEventListener('input', updateCounter);
  $('speed').addEventListener('input', () => { $('speed-value').textContent = Number($('speed').value).toFixed(2) + '×'; });
  $('recent-refresh').addEventListener('click', loadRecent);
  updateCounter();

  const h = await health();
  authOn = h.auth === 'jwt';
  if (authOn && !getToken()) { showLogin(); return; }
  let me = null;
  try {
    me = await api('/api/auth/me', { quiet401: true });
  } catch (e) {
    if (e.status === 401) { setToken(''); showLogin(); return; }
    // An older server without /api/auth/me: open mode.
  }
  if (me && me.auth_enabled !== undefined) authOn = me.auth_enabled;
  const next = nextParam();
  if (authOn && next && await resumeNext(next)) return;
  await showApp(me);
}

boot();
