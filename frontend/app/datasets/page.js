// Datasets: versions (with lineage to corrections and models), statistics, and the diff
// between two versions.

import { api, showError } from '/ui/lib/api.js';
import { barChart } from '/ui/lib/chart.js';
import { $, fmt, h, mount } from '/ui/lib/dom.js';
import { initPage, loaded, pageUrl, param, setParams } from '/ui/lib/layout.js';
import { dataTable, nextSort } from '/ui/lib/table.js';

let project = null;
let versions = [];
let sort = { key: 'created_at', dir: 'desc' };

const base = () => `/projects/${encodeURIComponent(project)}/datasets`;

function renderVersions() {
  mount($('versions'), dataTable({
    sort, sortLocal: true, onSort: (k) => { sort = nextSort(sort, k); renderVersions(); },
    columns: [
      { key: 'id', label: 'version', render: (v) => h('button', { type: 'button', class: 'secondary mono', 'data-version-id': v.id, onclick: () => detail(v.id) }, fmt.short(v.id, 12)) },
      { key: 'created_at', label: 'created', sortable: true, render: (v) => fmt.time(v.created_at) },
      { key: 'message', label: 'message', sortable: true },
      { key: 'author', label: 'author', sortable: true },
      { key: 'images', label: 'images', sortable: true, num: true, render: (v) => fmt.int(v.images ?? v.stats?.images) },
      { key: 'instances', label: 'instances', sortable: true, num: true, render: (v) => fmt.int(v.instances ?? v.stats?.instances) },
      { key: 'parent_id', label: 'parent', render: (v) => (v.parent_id ? h('span', { class: 'mono' }, fmt.short(v.parent_id, 8)) : '—') },
      { key: 'source', label: 'source', render: (v) => h('span', { class: 'small' }, v.source ?? '—') },
    ],
    rows: versions, empty: 'No dataset version yet. Use `sightline dataset ingest`.',
    onRow: (v, tr) => { tr.dataset.versionId = v.id; },
  }));
}

function countsChart(title, obj) {
  const bars = Object.entries(obj || {}).map(([label, value]) => ({ label, value: Number(value) || 0 }));
  return barChart({ bars, title, width: 360, height: 170 });
}

async function detail(id) {
  let v;
  try {
    v = await api(`${base()}/${encodeURIComponent(id)}`);
  } catch (e) {
    showError(e, `Loading dataset version ${fmt.short(id, 12)}`);
    return;
  }
  setParams({ version: v.id });
  for (const tr of document.querySelectorAll('#versions tr[data-version-id]')) tr.classList.toggle('selected', tr.dataset.versionId === v.id);
  const s = v.stats || {};
  const fromCorr = v.from_corrections || [];
  mount($('dataset-detail'),
    h('h2', {}, 'Version ', h('span', { class: 'mono', id: 'selected-version' }, v.id)),
    h('dl', { class: 'kv' },
      h('dt', {}, 'created'), h('dd', {}, `${fmt.time(v.created_at)} by ${v.author}`),
      h('dt', {}, 'message'), h('dd', {}, v.message || '—'),
      h('dt', {}, 'parent'), h('dd', { class: 'mono' }, v.parent_id ? h('button', { type: 'button', class: 'secondary', onclick: () => detail(v.parent_id) }, fmt.short(v.parent_id, 12)) : '—'),
      h('dt', {}, 'source'), h('dd', {}, `${v.source ?? '—'}${v.format ? ` (${v.format})` : ''}`),
      h('dt', {}, 'files'), h('dd', {}, `${fmt.int(v.nfiles)}${v.size_bytes ? ` · ${(v.size_bytes / 1e6).toFixed(2)} MB` : ''}`),
      h('dt', {}, 'images'), h('dd', {}, `${fmt.int(s.images ?? v.images)} (${Object.entries(s.images_per_split || {}).map(([k, n]) => `${k} ${n}`).join(', ') || 'no splits'}); ${fmt.int(s.images_without_instances)} without instances`),
      h('dt', {}, 'instances'), h('dd', {}, fmt.int(s.instances ?? v.instances)),
      h('dt', {}, 'trained models'), h('dd', {}, (v.models || []).length
        ? (v.models || []).map((m) => h('a', { href: pageUrl('models', project, { id: m.id }), style: 'margin-right:.5rem' }, `${m.task} v${m.version}`))
        : 'none'),
      h('dt', {}, 'from corrections'), h('dd', { id: 'from-corrections' }, fromCorr.length
        ? h('ul', {}, fromCorr.map((r) => h('li', {}, h('a', { class: 'mono', href: pageUrl('history', project, { request: r }) }, r))))
        : 'none')),
    h('div', { class: 'grid' },
      countsChart('Instances per label', s.instances_per_label),
      countsChart('Image labels', s.image_labels)),
    (v.notes || []).length ? h('details', {}, h('summary', {}, 'Notes'), h('ul', {}, v.notes.map((n) => h('li', {}, n)))) : null,
    h('details', {}, h('summary', {}, 'All statistics (JSON)'), h('pre', {}, JSON.stringify(s, null, 2))));
}

function fileList(title, list) {
  return h('details', {}, h('summary', {}, `${title}: ${list.length}`),
    list.length ? h('ul', { class: 'mono small' }, list.slice(0, 500).map((f) => h('li', {}, typeof f === 'string' ? f : JSON.stringify(f))),
      list.length > 500 ? h('li', {}, `… ${list.length - 500} more`) : null) : null);
}

async function diff() {
  const a = $('diff-a').value;
  const b = $('diff-b').value;
  if (!a || !b) return;
  let d;
  try {
    d = await api(`${base()}/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`);
  } catch (e) {
    showError(e, 'Comparing versions');
    return;
  }
  const perLabel = Object.entries(d.instances_per_label || {}).map(([label, [added, removed]]) => ({ label, added, removed }));
  const imgLabels = Object.entries(d.image_labels || {}).map(([label, [added, removed]]) => ({ label, added, removed }));
  const cols = [{ key: 'label', label: 'label' }, { key: 'added', label: 'added', num: true }, { key: 'removed', label: 'removed', num: true }];
  mount($('diff'),
    h('p', {}, `${fmt.short(a, 8)} → ${fmt.short(b, 8)}: `,
      `${(d.added || []).length} added, ${(d.removed || []).length} removed, ${(d.changed_content || []).length} changed content, ${(d.changed_annotations || []).length} changed annotations.`),
    fileList('Added', d.added || []), fileList('Removed', d.removed || []),
    fileList('Changed content', d.changed_content || []), fileList('Changed annotations', d.changed_annotations || []),
    dataTable({ caption: 'Instances per label', columns: cols, rows: perLabel, empty: 'No instance changes.' }),
    dataTable({ caption: 'Image labels', columns: cols, rows: imgLabels, empty: 'No image-label changes.' }));
}

async function main() {
  ({ project } = await initPage('datasets'));
  if (!project) return loaded();
  try {
    versions = await api(base());
  } catch (e) {
    showError(e, 'Loading dataset versions');
    versions = [];
  }
  renderVersions();
  const newestFirst = [...versions].reverse();
  for (const [sel, pick] of [['diff-a', 1], ['diff-b', 0]]) {
    mount($(sel), newestFirst.map((v, i) => h('option', { value: v.id, selected: i === Math.min(pick, newestFirst.length - 1) },
      `${fmt.short(v.id, 8)} · ${fmt.time(v.created_at)} · ${v.message || ''}`)));
  }
  $('diff-form').addEventListener('submit', (e) => { e.preventDefault(); diff(); });
  const wanted = param('version') || newestFirst[0]?.id;
  if (wanted) await detail(wanted);
  loaded();
}

main();
