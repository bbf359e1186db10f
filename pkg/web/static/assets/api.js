// Shared by both pages: the bearer token, the JSON API client and small
// formatting helpers.

/** localStorage key of the bearer token, shared by / and /admin. */
export const TOKEN_KEY = 'kokoro_token';

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the session cookie still works for reads */ }
}

/** ApiError carries the API's {"error":{code,message,request_id}}. */
export class ApiError extends Error {
  constructor(status, code, message, requestId, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId || '';
    this.retryAfter = retryAfter || '';
  }
}

let onUnauthorized = () => {};

/** setUnauthorizedHandler sets what a 401 does (after the token is dropped). */
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

/**
 * api calls the JSON API. It sends the bearer token when one is stored,
 * returns the decoded body (null for 204) and throws ApiError otherwise.
 * A 401 drops the token and calls the unauthorized handler, unless
 * opts.quiet401 is set.
 */
export async function api(path, opts = {}) {
  const headers = { Accept: 'application/json' };
  const t = getToken();
  if (t) headers.Authorization = 'Bearer ' + t;
  const init = { method: opts.method || 'GET', headers, credentials: 'same-origin', signal: opts.signal };
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server could not be reached. Check your connection and try again.');
  }
  if (res.status === 204) return null;
  let body = null;
  const text = await res.text();
  if (text) {
    try { body = JSON.parse(text); } catch { body = null; }
  }
  if (res.ok) return body;
  const e = (body && body.error) || {};
  const err = new ApiError(res.status, e.code || 'http_' + res.status,
    e.message || fallbackMessage(res.status), e.request_id || res.headers.get('X-Request-ID'),
    res.headers.get('Retry-After'));
  if (res.status === 401 && !opts.quiet401) {
    setToken('');
    onUnauthorized(err);
  }
  throw err;
}

function fallbackMessage(status) {
  switch (status) {
    case 401: return 'Please log in.';
    case 403: return 'You are not allowed to do this.';
    case 404: return 'Not found.';
    case 413: return 'The request is too large.';
    case 429: return 'Too many requests: wait a moment and try again.';
    case 502: case 503: case 504: return 'The service is unavailable right now: try again shortly.';
  }
  return 'The request failed (HTTP ' + status + ').';
}

/** errorText turns an error into one readable line. */
export function errorText(err) {
  if (!err) return '';
  let s = err.message || String(err);
  if (err.status === 429 && err.retryAfter) s += ' (retry after ' + err.retryAfter + ' s)';
  if (err.requestId) s += ' [request ' + err.requestId + ']';
  return s;
}

/** showError fills el with err's text (or hides it for a falsy err). */
export function showError(el, err) {
  if (!el) return;
  if (!err) { el.hidden = true; el.textContent = ''; return; }
  el.textContent = errorText(err);
  el.hidden = false;
}

/** health returns GET /api/health's body even when it answers 503. */
export async function health() {
  try {
    const res = await fetch('/api/health', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    return await res.json();
  } catch {
    return {};
  }
}

/** safeNext accepts only a same-origin path that starts with a single "/". */
export function safeNext(next) {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '';
  try {
    const u = new URL(next, location.origin);
    if (u.origin !== location.origin) return '';
    return u.pathname + u.search + u.hash;
  } catch {
    return '';
  }
}

/** el builds an element: el('td', {class: 'num'}, 'text', child...). */
export function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'dataset') Object.assign(n.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
    else if (k in n && typeof v !== 'string') n[k] = v;
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    n.append(c instanceof Node ? c : String(c));
  }
  return n;
}

/** fmtTime shows an RFC 3339 time in the browser's locale. */
export function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (isNaN(d)) return s;
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** fmtMs shows a duration given in milliseconds. */
export function fmtMs(ms) {
  if (ms === undefined || ms === null || ms === '') return '';
  ms = Number(ms);
  if (!isFinite(ms)) return '';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  const m = Math.floor(ms / 60000);
  return m + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
}

/** fmtSeconds shows an audio length in seconds. */
export function fmtSeconds(s) {
  if (s === undefined || s === null) return '';
  s = Number(s);
  if (s < 60) return s.toFixed(1) + ' s';
  return Math.floor(s / 60) + ':' + String(Math.floor(s % 60)).padStart(2, '0');
}

/** snippet shortens a text for a table cell. */
export function snippet(s, n = 60) {
  if (!s) return '';
  s = s.replace(/\s+/g, ' ').trim();
  const cps = [...s];
  return cps.length > n ? cps.slice(0, n - 1).join('') + '…' : s;
}

/** extOf is a job's download file extension. */
export function extOf(format) {
  return { mp3: 'mp3', wav: 'wav', opus: 'ogg', aac: 'aac', flac: 'flac', pcm: 'pcm' }[format] || format || 'audio';
}

const LANGUAGES = {
  'en-us': 'English (US)', 'en-gb': 'English (UK)', es: 'Spanish', 'fr-fr': 'French', hi: 'Hindi',
  it: 'Italian', ja: 'Japanese', 'pt-br': 'Portuguese (Brazil)', zh: 'Chinese',
};

/** languageName names a voice's language tag. */
export function languageName(tag) { return LANGUAGES[tag] || tag || 'Other'; }

/** voiceName turns "af_heart" into "Heart". */
export function voiceName(id) {
  const n = String(id).split('_').slice(1).join(' ') || String(id);
  return n.charAt(0).toUpperCase() + n.slice(1);
}

/** playWithFallback sets an <audio>'s source; if the browser cannot load it
 * with the session cookie, it fetches the audio with the bearer token. */
export function playWithFallback(audio, url) {
  if (audio.dataset.blob) { URL.revokeObjectURL(audio.dataset.blob); delete audio.dataset.blob; }
  let retried = false;
  audio.dataset.via = 'url'; // how the audio was loaded (tests read it)
  audio.onerror = async () => {
    if (retried || !getToken() || !url.startsWith('/')) { audio.dataset.via = 'failed'; return; }
    retried = true;
    audio.dataset.via = 'retrying';
    try {
      const res = await fetch(url, { headers: { Authorization: 'Bearer ' + getToken() } });
      if (!res.ok) { audio.dataset.via = 'failed'; return; }
      const b = URL.createObjectURL(await res.blob());
      audio.dataset.blob = b;
      audio.dataset.via = 'bearer';
      audio.src = b;
    } catch { audio.dataset.via = 'failed'; /* the player shows its own error */ }
  };
  audio.src = url;
}
