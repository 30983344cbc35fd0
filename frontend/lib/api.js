// Fetch wrapper: JSON in and out, the API token from localStorage as a Bearer header, and the
// server's error shape `{"error": {"code", "message", "details"}}` turned into visible messages.

import { h } from './dom.js';

const TOKEN_KEY = 'sightline.token';

/** The saved API token ('' when none). */
export function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

/** Save (or clear, with '') the API token. */
export function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

/** An error answered by the server (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Query string from an object, skipping empty values (leading `?`, or '' when empty). */
export function qs(params = {}) {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    sp.set(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : '';
}

/** Headers every request carries. */
export function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/**
 * Call the API. `opts`: method, query (object), body (JSON-encoded unless FormData/Blob).
 * Resolves to parsed JSON (or text for non-JSON answers); rejects with ApiError.
 */
export async function api(path, opts = {}) {
  const { method = 'GET', query, body } = opts;
  const headers = { Accept: 'application/json', ...authHeaders() };
  let payload;
  if (body !== undefined) {
    if (body instanceof FormData || body instanceof Blob) payload = body;
    else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  let res;
  try {
    res = await fetch(path + qs(query), { method, headers, body: payload });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the server (${e.message})`);
  }
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const msg = err.message || (typeof data === 'string' && data) || res.statusText || 'request failed';
    throw new ApiError(res.status, err.code || String(res.status), msg, err.details || []);
  }
  return data;
}

function messages() {
  let box = document.getElementById('messages');
  if (!box) {
    box = h('div', { id: 'messages', 'aria-live': 'polite' });
    document.body.prepend(box);
  }
  return box;
}

/** Show an error (ApiError or anything thrown) at the top of the page. */
export function showError(err, context = '') {
  const status = err && err.status ? ` (HTTP ${err.status})` : '';
  const text = `${context ? `${context}: ` : ''}${err && err.message ? err.message : String(err)}${status}`;
  const details = err && Array.isArray(err.details) && err.details.length
    ? h('ul', {}, err.details.map((d) => h('li', { text: d })))
    : null;
  const el = h('div', { class: 'message error', role: 'alert' },
    h('div', {}, h('span', { text }), details),
    h('button', { type: 'button', class: 'secondary', onclick: () => el.remove(), 'aria-label': 'Dismiss message' }, 'Dismiss'));
  messages().append(el);
  return el;
}

/** Show a short confirmation; it goes away by itself. */
export function showNotice(text) {
  const el = h('div', { class: 'message notice', role: 'status' }, h('span', { text }));
  messages().append(el);
  setTimeout(() => el.remove(), 6000);
  return el;
}

/** Run `fn`, showing any error; returns its value or undefined. */
export async function guarded(context, fn) {
  try {
    return await fn();
  } catch (e) {
    showError(e, context);
    return undefined;
  }
}
