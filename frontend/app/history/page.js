// History: past inspections with filters, sorting, paging (keyset cursor when the server gives
// one), overlay thumbnails, a detail view with the full response, and CSV export.

import { api, guarded, qs, showError } from '/ui/lib/api.js';
import { $, fmt, h, mount, verdictBadge } from '/ui/lib/dom.js';
import { initPage, loaded, pageUrl, param, setParams } from '/ui/lib/layout.js';
import { dataTable, nextSort, pager } from '/ui/lib/table.js';

const FILTERS = ['from', 'to', 'line', 'lot', 'camera', 'verdict', 'label', 'min_confidence', 'max_confidence', 'model_version_id', 'corrected'];
const LIMIT = 25;
let project = null;
const state = { sort: { key: 'time', dir: 'desc' }, offset: 0, cursors: [null], selected: null };

/** Local `datetime-local` value ⇄ RFC 3339 UTC. */
function toRfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function form() {
  return $('filters');
}

/** The filters as API query parameters. */
function filters() {
  const f = form();
  const out = { project };
  for (const name of FILTERS) {
    const el = f.elements.namedItem(name);
    if (!el) continue;
    const v = el.value.trim();
    if (!v) continue;
    out[name] = name === 'from' || name === 'to' ? toRfc3339(v) : v;
  }
  return out;
}

function loadFiltersFromUrl() {
  const f = form();
  for (const name of FILTERS) {
    const v = param(name);
    const el = f.elements.namedItem(name);
    if (el && v !== null) el.value = name === 'from' || name === 'to' ? toLocalInput(v) : v;
  }
  if (param('sort')) state.sort = { key: param('sort'), dir: param('order') === 'asc' ? 'asc' : 'desc' };
  state.selected = param('request');
}

function thumb(row) {
  if (!row.image_url) return h('span', { class: 'muted' }, '—');
  return h('img', { class: 'thumb', loading: 'lazy', src: `${row.image_url}?overlay=1&max_side=128`, alt: `inspection ${fmt.short(row.request_id, 8)} with overlays` });
}

async function search({ keepPage = false } = {}) {
  if (!keepPage) {
    state.offset = 0;
    state.cursors = [null];
  }
  const f = filters();
  const query = { ...f, sort: state.sort.key, order: state.sort.dir, limit: LIMIT, include_response: false };
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) query.cursor = cursor; else query.offset = state.offset;
  setParams({ ...Object.fromEntries(FILTERS.map((k) => [k, f[k] ?? ''])), sort: state.sort.key, order: state.sort.dir });
  $('csv-link').href = `/history.csv${qs({ ...f, sort: state.sort.key, order: state.sort.dir })}`;
  let page;
  try {
    page = await api('/history', { query });
  } catch (e) {
    showError(e, 'Searching history');
    loaded();
    return;
  }
  const useCursor = Object.prototype.hasOwnProperty.call(page, 'next_cursor');
  const table = dataTable({
    caption: `${fmt.int(page.total)} matching inspection(s)`,
    sort: state.sort,
    onSort: (key) => { state.sort = nextSort(state.sort, key); search(); },
    columns: [
      { key: 'image', label: 'image', render: thumb },
      { key: 'time', label: 'time', sortable: true, render: (r) => h('button', {
        type: 'button', class: 'secondary small', 'data-request-id': r.request_id,
        'aria-label': `details of inspection at ${fmt.time(r.created_at)}`, onclick: () => detail(r.request_id),
      }, fmt.time(r.created_at)) },
      { key: 'verdict', label: 'verdict', render: (r) => verdictBadge(r.verdict) },
      { key: 'label', label: 'label' },
      { key: 'confidence', label: 'confidence', sortable: true, num: true, render: (r) => fmt.num(r.confidence) },
      { key: 'line', label: 'line' },
      { key: 'lot', label: 'lot' },
      { key: 'camera', label: 'camera' },
      { key: 'models', label: 'models', render: (r) => [r.detector_version_id ? `det #${r.detector_version_id}` : null, r.classifier_version_id ? `cls #${r.classifier_version_id}` : null].filter(Boolean).join(', ') || '—' },
      { key: 'latency_ms', label: 'latency', num: true, render: (r) => fmt.ms(r.latency_ms) },
      { key: 'corrected', label: 'corrected', render: (r) => (r.corrected ? 'yes' : 'no') },
    ],
    rows: page.items,
    onRow: (r, tr) => { tr.dataset.requestId = r.request_id; if (r.request_id === state.selected) tr.classList.add('selected'); },
    empty: 'No inspection matches these filters.',
  });
  const nav = pager({
    total: page.total, limit: LIMIT, offset: state.offset,
    onPage: (off) => {
      if (useCursor) {
        if (off > state.offset && page.next_cursor) state.cursors.push(page.next_cursor);
        else if (off < state.offset) state.cursors.pop();
      }
      state.offset = off;
      search({ keepPage: true });
    },
  });
  mount($('results'), nav, table);
  loaded();
}

async function detail(id) {
  state.selected = id;
  setParams({ request: id });
  for (const tr of document.querySelectorAll('#results tr[data-request-id]')) tr.classList.toggle('selected', tr.dataset.requestId === id);
  const row = await guarded('Loading the inspection', () => api(`/history/${encodeURIComponent(id)}`));
  if (!row) return;
  const corrections = await api(`/history/${encodeURIComponent(id)}/corrections`).catch(() => []);
  const r = row.response || {};
  mount($('detail'),
    h('h2', {}, 'Inspection ', h('span', { class: 'mono small' }, row.request_id)),
    h('img', { src: `${row.image_url || `/history/${encodeURIComponent(id)}/image`}?overlay=1&max_side=640`, alt: 'inspected image with detections drawn', style: 'max-width:100%;background:#222' }),
    h('dl', { class: 'kv' },
      h('dt', {}, 'time'), h('dd', {}, fmt.time(row.created_at)),
      h('dt', {}, 'verdict'), h('dd', {}, verdictBadge(row.verdict), ' ', (r.reasons || []).join('; ')),
      h('dt', {}, 'label / confidence'), h('dd', {}, `${row.label ?? '—'} / ${fmt.num(row.confidence)}`),
      h('dt', {}, 'line / lot / camera / part'), h('dd', {}, [row.line, row.lot, row.camera, row.part_id].map((x) => x ?? '—').join(' / ')),
      h('dt', {}, 'models'), h('dd', {}, (r.models || []).map((m) => `${m.task} v${m.version} (${m.model_name})`).join(', ') || '—'),
      h('dt', {}, 'image'), h('dd', { class: 'mono' }, `${row.width}×${row.height} · ${fmt.short(row.image_sha256, 16)}`),
      h('dt', {}, 'corrections'), h('dd', {}, corrections.length
        ? h('ul', {}, corrections.map((c) => h('li', {}, `${c.action}${c.image_label ? ` → ${c.image_label}` : ''} by ${c.author} at ${fmt.time(c.created_at)}${c.dataset_version_id ? ` (in dataset ${fmt.short(c.dataset_version_id, 8)})` : ''}`)))
        : 'none')),
    h('p', {}, h('a', { class: 'button', href: pageUrl('review', project, { request: row.request_id }) }, 'Review & correct this inspection')),
    h('details', { open: true }, h('summary', {}, 'Full response (JSON)'), h('pre', { id: 'response-json' }, JSON.stringify(row.response, null, 2))));
}

async function main() {
  ({ project } = await initPage('history'));
  if (!project) return loaded();
  const [labels, models] = await Promise.all([
    api(`/projects/${encodeURIComponent(project)}/labels`).catch((e) => { showError(e, 'Loading labels'); return []; }),
    api('/models', { query: { project } }).catch((e) => { showError(e, 'Loading models'); return []; }),
  ]);
  $('f-label').append(...labels.map((l) => h('option', { value: l }, l)));
  $('f-model').append(...models.map((m) => h('option', { value: m.id }, `${m.task} v${m.version} (#${m.id})`)));
  loadFiltersFromUrl();
  form().addEventListener('submit', (e) => { e.preventDefault(); search(); });
  form().addEventListener('reset', () => setTimeout(() => search(), 0));
  await search();
  if (state.selected) await detail(state.selected);
}

main();
