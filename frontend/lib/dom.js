// Small DOM helpers: element builder and formatting. No framework.

/**
 * Build an element. `attrs` keys: `class`, `text`, `on<event>` (listener), `dataset`, boolean
 * attributes (true/false), anything else as an attribute. Children: nodes, strings, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `document.getElementById`, throwing when missing (a page bug, not a user error). */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing element #${id}`);
  return el;
}

export const fmt = {
  num(x, digits = 3) {
    return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '—';
  },
  pct(x, digits = 1) {
    return typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(digits)} %` : '—';
  },
  int(x) {
    return typeof x === 'number' && Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '—';
  },
  ms(x) {
    return typeof x === 'number' && Number.isFinite(x) ? `${x.toFixed(1)} ms` : '—';
  },
  /** ISO time as local `YYYY-MM-DD HH:MM:SS`. */
  time(s) {
    if (!s) return '—';
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  },
  short(id, n = 10) {
    return id ? String(id).slice(0, n) : '—';
  },
};

/** A verdict badge (`ok`, `ng`, `unknown`). */
export function verdictBadge(v) {
  const cls = ['ok', 'ng', 'unknown'].includes(v) ? v : '';
  return h('span', { class: `badge ${cls}`, text: v ?? '—' });
}

/** Trigger `fn` on Enter/Space for a non-button element that acts as one. */
export function onActivate(el, fn) {
  el.addEventListener('click', fn);
  el.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      fn(e);
    }
  });
}
