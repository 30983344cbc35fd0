// Experiments: training runs of the project and their per-epoch loss and metric curves
// (from each run's metrics.json, as the server reports them).

import { api, showError } from '/ui/lib/api.js';
import { lineChart } from '/ui/lib/chart.js';
import { $, fmt, h, mount } from '/ui/lib/dom.js';
import { initPage, loaded, pageUrl, param, setParams } from '/ui/lib/layout.js';
import { dataTable, nextSort } from '/ui/lib/table.js';

let project = null;
let runs = [];
let sort = { key: 'started_at', dir: 'desc' };

/** Per-epoch rows from an experiment, wherever the server put them. */
function epochsOf(exp) {
  const e = exp.epochs || exp.metrics?.epochs || exp.metrics || [];
  return (Array.isArray(e) ? e : []).map(flatten);
}

/** One flat row per epoch: nested `losses` (named `<k>_loss`) and `metrics` lifted up. */
function flatten(row) {
  const out = {};
  for (const [k, v] of Object.entries(row)) {
    if (k === 'losses' && v && typeof v === 'object') {
      for (const [lk, lv] of Object.entries(v)) out[/loss/i.test(lk) ? lk : `${lk}_loss`] = lv;
    } else if (k === 'metrics' && v && typeof v === 'object') {
      for (const [mk, mv] of Object.entries(v)) if (typeof mv === 'number') out[mk] = mv;
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** Split the numeric keys of epoch rows into loss, learning-rate and metric groups. */
function groups(epochs) {
  const keys = new Set();
  for (const row of epochs) for (const [k, v] of Object.entries(row)) if (k !== 'epoch' && typeof v === 'number') keys.add(k);
  const all = [...keys].sort();
  const loss = all.filter((k) => /loss/i.test(k));
  const lr = all.filter((k) => /(^|_)lr/i.test(k));
  const time = all.filter((k) => /(time|_s$|seconds)/i.test(k) && !loss.includes(k) && !lr.includes(k));
  const metrics = all.filter((k) => !loss.includes(k) && !lr.includes(k) && !time.includes(k));
  return { loss, metrics, lr };
}

function chartFor(title, epochs, keys) {
  if (!keys.length) return null;
  return h('div', { class: 'panel' }, lineChart({
    title, xLabel: 'epoch',
    series: keys.map((k) => ({ name: k, points: epochs.map((r, i) => [Number(r.epoch ?? i + 1), r[k]]) })),
  }));
}

async function detail(id) {
  let exp;
  try {
    exp = await api(`/experiments/${encodeURIComponent(id)}`);
  } catch (e) {
    showError(e, `Loading experiment ${id}`);
    return;
  }
  setParams({ id });
  const epochs = epochsOf(exp);
  const g = groups(epochs);
  const scalar = Object.entries(exp).filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v));
  mount($('curves'),
    h('h2', {}, 'Experiment ', h('span', { class: 'mono' }, exp.id ?? id)),
    h('dl', { class: 'kv' }, scalar.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, k.endsWith('_at') ? fmt.time(v) : String(v ?? '—'))])),
    epochs.length
      ? h('div', { class: 'grid', id: 'curve-charts' }, chartFor('Losses', epochs, g.loss), chartFor('Metrics', epochs, g.metrics), chartFor('Learning rate', epochs, g.lr))
      : h('p', { class: 'muted' }, 'No per-epoch metrics recorded.'),
    (exp.models || []).length ? h('p', {}, 'Models registered from this run: ', exp.models.map((m) => h('a', { href: pageUrl('models', project, { id: m.id }), style: 'margin-right:.5rem' }, `${m.task} v${m.version}`))) : null,
    h('details', {}, h('summary', {}, 'Raw (JSON)'), h('pre', {}, JSON.stringify(exp, null, 2))));
}

function render() {
  mount($('experiments'), dataTable({
    sort, sortLocal: true, onSort: (k) => { sort = nextSort(sort, k); render(); },
    columns: [
      { key: 'id', label: 'run', render: (r) => h('button', { type: 'button', class: 'secondary mono', onclick: () => detail(r.id) }, r.id) },
      { key: 'task', label: 'task', sortable: true },
      { key: 'status', label: 'status', sortable: true },
      { key: 'started_at', label: 'started', sortable: true, render: (r) => fmt.time(r.started_at ?? r.created_at) },
      { key: 'epochs_completed', label: 'epochs', sortable: true, num: true },
      { key: 'dataset_version_id', label: 'dataset', render: (r) => fmt.short(r.dataset_version_id ?? r.dataset_version, 8) },
    ],
    rows: runs, empty: 'No training run recorded for this project.',
  }));
}

async function main() {
  ({ project } = await initPage('experiments'));
  if (!project) return loaded();
  try {
    runs = await api(`/projects/${encodeURIComponent(project)}/experiments`);
    if (!Array.isArray(runs)) runs = runs.items || [];
  } catch (e) {
    if (e.status === 404 && e.code === 'not_found' && /endpoint/.test(e.message)) {
      mount($('experiments'), h('p', { class: 'muted' }, 'This server does not list experiments yet.'));
      return loaded();
    }
    showError(e, 'Loading experiments');
  }
  render();
  const id = param('id') || (runs.length ? runs[0].id : null);
  if (id) await detail(id);
  loaded();
}

main();
