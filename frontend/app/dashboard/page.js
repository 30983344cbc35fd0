// Dashboard: the active detector and classifier (alias, version, dataset, deployment time,
// evaluation metrics) and live monitoring from production, refreshed every 10 s.

import { api, showError } from '/ui/lib/api.js';
import { barChart } from '/ui/lib/chart.js';
import { $, fmt, h, mount } from '/ui/lib/dom.js';
import { initPage, loaded, pageUrl } from '/ui/lib/layout.js';
import { dataTable } from '/ui/lib/table.js';

const TASKS = [['segment', 'Detector'], ['classify', 'Classifier']];
let project = null;
let timer = null;
let refreshing = false;

/** Per-class precision/recall rows found anywhere usual in an evaluation's details. */
function perClass(details) {
  const candidates = [details?.per_class, details?.classification?.per_class, details?.detection?.per_class,
    details?.report?.classification?.per_class, details?.report?.detection?.per_class];
  for (const c of candidates) {
    if (Array.isArray(c) && c.length) return c;
    if (c && typeof c === 'object' && !Array.isArray(c)) return Object.entries(c).map(([name, v]) => ({ name, ...v }));
  }
  return [];
}

function metricsList(summary) {
  const rows = [
    ['mask mAP50-95', summary.mask_map50_95], ['mask mAP50', summary.mask_map50],
    ['box mAP50-95', summary.box_map50_95], ['box mAP50', summary.box_map50],
    ['accuracy', summary.accuracy], ['NG ratio', summary.ng_ratio], ['unknown rate', summary.unknown_rate],
  ].filter(([, v]) => typeof v === 'number');
  if (typeof summary.business_rules_passed === 'boolean') {
    rows.push(['business rules', summary.business_rules_passed ? 'passed' : `failed: ${(summary.business_rule_failures || []).join('; ')}`]);
  }
  return rows;
}

async function activeCard(task, title, aliases, deployments) {
  const alias = aliases.find((a) => a.task === task && a.alias === 'production');
  const dep = deployments.find((d) => d.project === project && d.task === task);
  const card = h('article', { class: 'panel', id: `active-${task}`, 'aria-labelledby': `active-${task}-title` },
    h('h2', { id: `active-${task}-title` }, title));
  if (!alias) {
    card.append(h('p', { class: 'muted' }, 'No version is promoted to production.'));
    if (dep?.last_error) card.append(h('p', { class: 'alarm', role: 'alert' }, `Last deployment failed: ${dep.last_error.message}`));
    return card;
  }
  let lineage = null;
  try {
    lineage = await api(`/models/${alias.model_version_id}`);
  } catch (e) {
    showError(e, `Loading model ${alias.model_version_id}`);
  }
  const model = lineage?.model;
  const serving = dep?.serving_version;
  const state = serving === alias.version ? h('span', { class: 'good' }, 'serving')
    : dep?.loading_id ? h('span', {}, 'loading…')
      : serving ? h('span', {}, `serving v${serving} (production moved to v${alias.version})`)
        : h('span', { class: 'muted' }, 'not loaded');
  card.append(h('p', {}, h('span', { class: 'big active-version' }, `v${alias.version}`), ' ',
    h('span', { class: 'muted' }, model ? model.model_name : ''), ' ', h('span', { class: 'badge' }, alias.alias)));
  card.append(h('dl', { class: 'kv' },
    h('dt', {}, 'status'), h('dd', {}, state),
    h('dt', {}, 'deployed'), h('dd', {}, fmt.time(alias.updated_at)),
    h('dt', {}, 'dataset version'), h('dd', { class: 'mono' },
      lineage?.dataset_version ? h('a', { href: pageUrl('datasets', project, { version: lineage.dataset_version }) }, fmt.short(lineage.dataset_version, 12)) : '—'),
    h('dt', {}, 'experiment'), h('dd', { class: 'mono' },
      lineage?.experiment_id ? h('a', { href: pageUrl('experiments', project, { id: lineage.experiment_id }) }, lineage.experiment_id) : '—'),
    h('dt', {}, 'model'), h('dd', {}, h('a', { href: pageUrl('models', project, { id: alias.model_version_id }) }, `${task} v${alias.version} (id ${alias.model_version_id})`))));
  if (dep?.last_error) card.append(h('p', { class: 'alarm', role: 'alert' }, `Last deployment failed: ${dep.last_error.message}`));
  const evaluation = lineage?.evaluations?.[0];
  if (!evaluation) {
    card.append(h('p', { class: 'muted' }, 'No evaluation recorded.'));
    return card;
  }
  card.append(h('h3', {}, 'Evaluation ', h('span', { class: 'muted small' },
    `${evaluation.dataset_version ? `on ${fmt.short(evaluation.dataset_version, 8)} ` : ''}${evaluation.split || ''} · ${fmt.time(evaluation.created_at)}`)));
  card.append(h('dl', { class: 'kv' }, metricsList(evaluation.summary).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'number' ? fmt.num(v) : v)])));
  const pc = perClass(evaluation.details);
  if (pc.length) {
    card.append(dataTable({
      caption: 'Per class',
      columns: [
        { key: 'name', label: 'label', render: (r) => r.name ?? r.label ?? r.class ?? '—' },
        { key: 'precision', label: 'P', num: true, render: (r) => fmt.num(r.precision ?? r.p) },
        { key: 'recall', label: 'R', num: true, render: (r) => fmt.num(r.recall ?? r.r) },
        { key: 'ap', label: 'AP / F1', num: true, render: (r) => fmt.num(r.ap50_95 ?? r.map50_95 ?? r.ap ?? r.f1) },
      ],
      rows: pc,
    }));
  }
  return card;
}

function ratioLine(name, v, limitText, alarm, id) {
  return h('div', { class: alarm ? 'stat alarm' : 'stat', id, role: alarm ? 'alert' : false },
    h('span', { class: 'label' }, name),
    h('span', { class: 'big' }, fmt.pct(v)),
    limitText ? h('span', { class: 'small' }, ` ${limitText}`) : null,
    alarm ? h('span', {}, ' — ALARM') : null);
}

function monitoringView(m) {
  const v = m.verdicts || {};
  const ng = m.ng_ratio || {};
  const un = m.unknown_rate || {};
  const lat = m.latency_ms || {};
  const top = h('div', { class: 'row', style: 'align-items:stretch;gap:1.5rem' },
    h('div', { class: 'stat', id: 'verdicts' }, h('span', { class: 'label' }, `verdicts (${fmt.int(m.requests)} requests)`),
      h('span', {}, h('span', { class: 'badge ok' }, `ok ${fmt.int(v.ok ?? 0)}`), ' ',
        h('span', { class: 'badge ng' }, `ng ${fmt.int(v.ng ?? 0)}`), ' ',
        h('span', { class: 'badge unknown' }, `unknown ${fmt.int(v.unknown ?? 0)}`))),
    ratioLine('NG ratio', ng.value, typeof ng.max_ng_ratio === 'number' ? `max ${fmt.pct(ng.max_ng_ratio)}` : 'no limit', !!ng.alarm, 'ng-ratio'),
    ratioLine('unknown rate', un.value, un.allow_unknown ? `max ${fmt.pct(un.max)}` : 'unknown not allowed', !!un.alarm, 'unknown-rate'),
    h('div', { class: 'stat', id: 'latency' }, h('span', { class: 'label' }, 'latency p50 / p99'),
      h('span', { class: 'big' }, `${fmt.ms(lat.p50)} / ${fmt.ms(lat.p99)}`)));
  const classes = (m.classes || []).map((c) => {
    const bars = (c.histogram || []).map((n, i) => ({ label: (i / 10).toFixed(1), value: c.count ? n / c.count : 0 }));
    const overlay = c.baseline && c.baseline.count
      ? c.baseline.histogram.map((n) => ({ value: n / c.baseline.count })) : null;
    return h('div', { class: 'panel class-histogram' },
      barChart({ bars, overlay, title: `${c.label}: ${fmt.int(c.count)} predictions, mean ${fmt.num(c.mean, 2)}`, yLabel: 'share', overlayName: 'evaluation baseline' }),
      h('p', { class: 'small muted' }, c.ks === null || c.ks === undefined ? 'no baseline to compare'
        : `KS vs evaluation baseline: ${fmt.num(c.ks)}${c.ks > 0.3 ? ' (distribution shift)' : ''}`));
  });
  return [top,
    h('h3', {}, 'Confidence per class'),
    classes.length ? h('div', { class: 'grid narrow' }, classes) : h('p', { class: 'muted' }, 'No predictions in this window.')];
}

async function refresh() {
  if (!project || refreshing) return;
  refreshing = true;
  try {
    const [aliases, deployments] = await Promise.all([
      api('/aliases', { query: { project } }), api('/deployments')]);
    const cards = await Promise.all(TASKS.map(([t, title]) => activeCard(t, title, aliases, deployments)));
    mount($('active'), cards);
    const windowS = $('window').value;
    try {
      const m = await api(`/projects/${encodeURIComponent(project)}/monitoring`, { query: { window: windowS } });
      mount($('monitoring-body'), monitoringView(m));
    } catch (e) {
      mount($('monitoring-body'), h('p', { class: 'muted' }, `Monitoring unavailable: ${e.message}`));
    }
    $('updated').textContent = `updated ${fmt.time(new Date().toISOString())}`;
  } catch (e) {
    showError(e, 'Refreshing the dashboard');
  } finally {
    refreshing = false;
    loaded();
  }
}

function schedule() {
  clearInterval(timer);
  if ($('auto-refresh').checked) timer = setInterval(refresh, 10000);
}

async function main() {
  ({ project } = await initPage('dashboard'));
  if (!project) {
    loaded();
    return;
  }
  $('window').addEventListener('change', refresh);
  $('refresh').addEventListener('click', refresh);
  $('auto-refresh').addEventListener('change', schedule);
  await refresh();
  schedule();
}

main();
