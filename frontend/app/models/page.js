// Models: registered versions, aliases, lineage and evaluations, promotion with gates (a refused
// gate shows the server's reasons), and other aliases.

import { api, showError, showNotice } from '/ui/lib/api.js';
import { $, fmt, h, mount } from '/ui/lib/dom.js';
import { initPage, loaded, pageUrl, param, setParams } from '/ui/lib/layout.js';
import { dataTable, nextSort } from '/ui/lib/table.js';

let project = null;
let aliases = [];
let models = [];
let sort = { key: 'id', dir: 'desc' };

function aliasesOf(id) {
  return aliases.filter((a) => a.model_version_id === id).map((a) => a.alias);
}

async function load() {
  [aliases, models] = await Promise.all([
    api('/aliases', { query: { project } }), api('/models', { query: { project } })]);
  mount($('aliases'), dataTable({
    columns: [
      { key: 'task', label: 'task' }, { key: 'alias', label: 'alias' },
      { key: 'version', label: 'version', render: (a) => h('a', { href: pageUrl('models', project, { id: a.model_version_id }) }, `v${a.version}`) },
      { key: 'updated_at', label: 'set at', render: (a) => fmt.time(a.updated_at) },
    ],
    rows: aliases, empty: 'No aliases yet.',
  }));
  renderVersions();
}

function renderVersions() {
  mount($('versions'), dataTable({
    sort, sortLocal: true, onSort: (k) => { sort = nextSort(sort, k); renderVersions(); },
    columns: [
      { key: 'id', label: 'id', sortable: true, num: true, render: (m) => h('button', { type: 'button', class: 'secondary', 'data-model-id': m.id, onclick: () => detail(m.id) }, `#${m.id}`) },
      { key: 'task', label: 'task', sortable: true },
      { key: 'version', label: 'version', sortable: true, num: true, render: (m) => `v${m.version}` },
      { key: 'model_name', label: 'architecture', sortable: true },
      { key: 'aliases', label: 'aliases', render: (m) => aliasesOf(m.id).map((a) => h('span', { class: 'badge' }, a)) },
      { key: 'dataset_version', label: 'dataset', render: (m) => (m.dataset_version ? h('a', { class: 'mono', href: pageUrl('datasets', project, { version: m.dataset_version }) }, fmt.short(m.dataset_version, 8)) : '—') },
      { key: 'experiment_id', label: 'experiment', render: (m) => (m.experiment_id ? h('a', { href: pageUrl('experiments', project, { id: m.experiment_id }) }, m.experiment_id) : '—') },
      { key: 'created_at', label: 'registered', sortable: true, render: (m) => fmt.time(m.created_at) },
      { key: 'note', label: 'note' },
    ],
    rows: models, empty: 'No model registered. Use `sightline register`.',
  }));
}

function evaluationRows(evals) {
  return dataTable({
    caption: 'Evaluations (newest first)',
    columns: [
      { key: 'created_at', label: 'time', render: (e) => fmt.time(e.created_at) },
      { key: 'dataset_version', label: 'dataset', render: (e) => (e.dataset_version ? fmt.short(e.dataset_version, 8) : '—') },
      { key: 'split', label: 'split' },
      { key: 'map', label: 'mask/box mAP50-95', num: true, render: (e) => fmt.num(e.summary.mask_map50_95 ?? e.summary.box_map50_95) },
      { key: 'acc', label: 'accuracy', num: true, render: (e) => fmt.num(e.summary.accuracy) },
      { key: 'rules', label: 'business rules', render: (e) => (e.summary.business_rules_passed === undefined || e.summary.business_rules_passed === null ? '—' : e.summary.business_rules_passed ? 'passed' : `failed: ${(e.summary.business_rule_failures || []).join('; ')}`) },
    ],
    rows: evals, empty: 'No evaluation recorded: promotion gates will refuse this version unless forced.',
  });
}

async function promote(id) {
  const minMap = $('min-map').value;
  const minAcc = $('min-accuracy').value;
  const body = { force: $('force').checked, min_map: minMap ? Number(minMap) : null, min_accuracy: minAcc ? Number(minAcc) : null };
  const out = $('promote-result');
  out.textContent = '';
  try {
    const p = await api(`/models/${id}/deploy`, { method: 'POST', body });
    out.textContent = `Promoted ${p.model.task} v${p.model.version} to ${p.alias}${p.forced ? ` (forced over: ${p.overridden.join('; ')})` : ''}; deploying in the background.`;
    showNotice('Promoted to production.');
    await load();
    await detail(id);
  } catch (e) {
    out.textContent = `Refused: ${e.message}${e.details?.length ? ` — ${e.details.join('; ')}` : ''}`;
    out.className = 'alarm';
    showError(e, 'Promotion');
  }
}

async function setAlias(m) {
  const alias = $('alias-name').value.trim();
  if (!alias) return;
  try {
    await api('/aliases', { method: 'POST', body: { project, task: m.task, alias, version: m.version } });
    showNotice(`Alias ${alias} → ${m.task} v${m.version}.`);
    await load();
    await detail(m.id);
  } catch (e) {
    showError(e, 'Setting the alias');
  }
}

async function detail(id) {
  let lin;
  try {
    lin = await api(`/models/${id}`);
  } catch (e) {
    showError(e, `Loading model #${id}`);
    return;
  }
  setParams({ id });
  const m = lin.model;
  mount($('model-detail'),
    h('h2', {}, `${m.task} v${m.version} `, h('span', { class: 'muted small' }, `#${m.id} · ${m.model_name}`)),
    h('dl', { class: 'kv' },
      h('dt', {}, 'aliases'), h('dd', {}, lin.aliases.length ? lin.aliases.join(', ') : 'none'),
      h('dt', {}, 'checkpoint'), h('dd', { class: 'mono' }, `${m.checkpoint_path} (${fmt.short(m.checkpoint_sha256, 16)})`),
      h('dt', {}, 'labels'), h('dd', {}, m.labels.join(', ')),
      h('dt', {}, 'thresholds'), h('dd', {}, Object.entries(m.thresholds || {}).map(([k, v]) => `${k} ${v}`).join(', ') || '—'),
      h('dt', {}, 'lineage'), h('dd', {}, `dataset ${lin.dataset_version ? fmt.short(lin.dataset_version, 12) : '—'} → experiment ${lin.experiment_id ?? '—'} → model v${m.version}`)),
    evaluationRows(lin.evaluations),
    h('h3', {}, 'Promote to production'),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); promote(id); } },
      h('div', { class: 'field' }, h('label', { for: 'min-map' }, 'Minimum mAP50-95'), h('input', { type: 'number', id: 'min-map', min: 0, max: 1, step: 0.01 })),
      h('div', { class: 'field' }, h('label', { for: 'min-accuracy' }, 'Minimum accuracy'), h('input', { type: 'number', id: 'min-accuracy', min: 0, max: 1, step: 0.01 })),
      h('div', { class: 'field' }, h('label', { for: 'force' }, 'Force (admin)'), h('input', { type: 'checkbox', id: 'force' })),
      h('button', { type: 'submit', id: 'promote' }, 'Promote')),
    h('p', { id: 'promote-result', role: 'status' }),
    h('h3', {}, 'Other alias'),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); setAlias(m); } },
      h('div', { class: 'field' }, h('label', { for: 'alias-name' }, 'Alias'), h('input', { type: 'text', id: 'alias-name', placeholder: 'staging' })),
      h('button', { type: 'submit', class: 'secondary' }, 'Set alias')));
}

async function main() {
  ({ project } = await initPage('models'));
  if (!project) return loaded();
  try {
    await load();
  } catch (e) {
    showError(e, 'Loading models');
  }
  const id = param('id');
  if (id) await detail(Number(id));
  loaded();
}

main();
