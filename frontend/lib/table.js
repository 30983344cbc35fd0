// Tables with sortable headers, and a pager.

import { h } from './dom.js';

/**
 * A data table. `columns`: [{ key, label, sortable, num, render(row) }].
 * `sort`: { key, dir: 'asc'|'desc' } (shown with aria-sort). `onSort(key)` when a header is used.
 * `sortLocal`: sort `rows` here (for small client-side lists).
 * `onRow(row, tr)`: called for each row (e.g. to make it selectable).
 */
export function dataTable({ columns, rows, sort, onSort, sortLocal = false, caption, onRow, empty = 'Nothing to show.' }) {
  let list = rows;
  if (sortLocal && sort && sort.key) {
    const col = columns.find((c) => c.key === sort.key);
    const val = col && col.value ? col.value : (r) => r[sort.key];
    list = [...rows].sort((a, b) => {
      const x = val(a), y = val(b);
      const c = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
      return sort.dir === 'desc' ? -c : c;
    });
  }
  const head = h('tr', {}, columns.map((c) => {
    const active = sort && sort.key === c.key;
    const ariaSort = active ? (sort.dir === 'desc' ? 'descending' : 'ascending') : (c.sortable ? 'none' : false);
    const arrow = active ? (sort.dir === 'desc' ? ' ▼' : ' ▲') : '';
    const inner = c.sortable && onSort
      ? h('button', { type: 'button', class: 'sort', onclick: () => onSort(c.key), 'data-sort': c.key }, c.label, arrow)
      : c.label;
    return h('th', { scope: 'col', 'aria-sort': ariaSort, class: c.num ? 'num' : false }, inner);
  }));
  const body = list.length
    ? list.map((r) => {
      const tr = h('tr', {}, columns.map((c) => h('td', { class: c.num ? 'num' : false },
        c.render ? c.render(r) : (r[c.key] ?? '—'))));
      if (onRow) onRow(r, tr);
      return tr;
    })
    : [h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, empty))];
  return h('table', { class: 'data' }, caption ? h('caption', {}, caption) : null, h('thead', {}, head), h('tbody', {}, body));
}

/** Toggle a sort state on `key` (new key: `firstDir`). */
export function nextSort(sort, key, firstDir = 'desc') {
  if (sort && sort.key === key) return { key, dir: sort.dir === 'desc' ? 'asc' : 'desc' };
  return { key, dir: firstDir };
}

/** Previous/next pager: "rows a–b of N". `onPage(newOffset)`. */
export function pager({ total, limit, offset, onPage, label = 'Pages' }) {
  const from = total === 0 ? 0 : offset + 1;
  const to = Math.min(offset + limit, total);
  return h('nav', { class: 'pager', 'aria-label': label },
    h('button', { type: 'button', class: 'secondary', disabled: offset <= 0, onclick: () => onPage(Math.max(0, offset - limit)) }, '‹ Previous'),
    h('span', { role: 'status' }, `rows ${from}–${to} of ${total}`),
    h('button', { type: 'button', class: 'secondary', disabled: offset + limit >= total, onclick: () => onPage(offset + limit) }, 'Next ›'));
}
