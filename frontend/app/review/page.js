// Review & correct: the review queue (unknown and low-confidence first, then disagreements);
// per item: accept, change the image label, relabel/delete instances, draw new polygons, or
// reject the image; and the button that turns corrections into a new dataset version.

import { api, guarded, showError, showNotice } from '/ui/lib/api.js';
import { $, fmt, h, mount, verdictBadge } from '/ui/lib/dom.js';
import { initPage, loaded, pageUrl, param, setParams } from '/ui/lib/layout.js';
import { OverlayCanvas, loadImage, polygonsBox, responseInstances } from '/ui/lib/overlay.js';

let project = null;
let labels = [];
let queue = [];
let current = null; // { row, instances, touched, editor }

const REASONS = {
  unknown: 'verdict unknown',
  low_confidence: 'low confidence',
  disagreement: 'detector and classifier disagree',
  other: 'lowest confidence',
};

async function loadQueue() {
  const res = await guarded('Loading the review queue', () => api(`/projects/${encodeURIComponent(project)}/review`, { query: { limit: 50 } }));
  queue = res?.items || [];
  renderQueue();
}

function renderQueue() {
  const list = $('queue');
  if (!queue.length) {
    mount(list, h('li', { class: 'muted' }, 'Nothing left to review.'));
    return;
  }
  mount(list, queue.map((it) => h('li', {}, h('button', {
    type: 'button', 'data-request-id': it.request_id, 'aria-current': current && current.row.request_id === it.request_id ? 'true' : false,
    onclick: () => open(it.request_id, it),
  }, verdictBadge(it.verdict), ' ', `${it.label ?? '—'} ${fmt.num(it.confidence, 2)}`, h('br'),
  h('span', { class: 'small muted' }, `${REASONS[it.review_reason] || it.review_reason || ''} · ${fmt.time(it.created_at)}`)))));
}

function labelSelect(id, value, onchange, text) {
  return [h('label', { for: id, class: text ? '' : 'sr-only' }, text || 'label'),
    h('select', { id, onchange: (e) => onchange(e.target.value) }, labels.map((l) => h('option', { value: l, selected: l === value }, l)))];
}

function renderInstances() {
  const c = current;
  const items = c.instances.map((inst, i) => h('li', { 'data-index': i },
    h('span', { class: 'mono' }, `${i + 1}.`),
    labelSelect(`inst-label-${i}`, inst.label, (v) => { inst.label = v; c.touched = true; c.editor.draw(); }, ''),
    h('span', { class: 'small muted' }, typeof inst.confidence === 'number' ? fmt.num(inst.confidence, 2) : 'added'),
    h('button', { type: 'button', class: 'secondary', onclick: () => c.editor.setInstances(c.instances, i), 'aria-label': `Highlight instance ${i + 1}` }, 'Show'),
    h('button', { type: 'button', class: 'danger', 'aria-label': `Delete instance ${i + 1} (${inst.label})`, onclick: () => {
      c.instances.splice(i, 1);
      c.touched = true;
      c.editor.setInstances(c.instances);
      renderInstances();
    } }, 'Delete')));
  mount($('instances'), items.length ? items : h('li', { class: 'muted' }, 'No instances (no defects).'));
}

async function submit(action) {
  const c = current;
  if (!c) return;
  const note = $('note').value.trim() || null;
  const body = { action, note };
  if (action === 'relabel') {
    body.image_label = $('image-label').value || null;
    if (c.touched) {
      body.instances = c.instances.map((i) => ({ label: i.label, polygons: i.polygons || [], box_xyxy: i.box || polygonsBox(i.polygons || []) }));
    }
  }
  const res = await guarded('Saving the correction', () => api(`/history/${encodeURIComponent(c.row.request_id)}/corrections`, { method: 'POST', body }));
  if (!res) return;
  showNotice(`Correction saved (${res.action}) by ${res.author} at ${fmt.time(res.created_at)}.`);
  const idx = queue.findIndex((q) => q.request_id === c.row.request_id);
  if (idx >= 0) queue.splice(idx, 1);
  renderQueue();
  await showCorrections(c.row.request_id);
  $('saved').textContent = `Saved: ${res.action}${res.image_label ? ` → ${res.image_label}` : ''} (correction #${res.id}).`;
  const next = queue[Math.max(0, idx)] || queue[0];
  if (next) {
    $('item').append(h('p', {}, h('button', { type: 'button', id: 'next-item', onclick: () => open(next.request_id, next) }, 'Next item ›')));
  }
}

async function showCorrections(id) {
  const list = await api(`/history/${encodeURIComponent(id)}/corrections`).catch(() => []);
  mount($('corrections'), list.length
    ? list.map((c) => h('li', {}, `${c.action}${c.image_label ? ` → ${c.image_label}` : ''}${c.instances ? `, ${c.instances.length} instance(s)` : ''} — by `,
      h('strong', {}, c.author), ` at ${fmt.time(c.created_at)}`, c.note ? ` — “${c.note}”` : '',
      c.dataset_version_id ? h('span', {}, ' — in dataset ', h('a', { href: pageUrl('datasets', project, { version: c.dataset_version_id }) }, fmt.short(c.dataset_version_id, 8))) : null))
    : h('li', { class: 'muted' }, 'No corrections yet.'));
}

async function open(id, queued) {
  const row = await guarded('Loading the inspection', () => api(`/history/${encodeURIComponent(id)}`));
  if (!row) return;
  setParams({ request: id });
  const resp = row.response || {};
  const imageLabel = resp.classification?.label ?? resp.classification?.top_label ?? row.label ?? labels[0];
  const canvas = h('canvas', { class: 'editor', id: 'editor', 'aria-label': 'Image with instances; in drawing mode click to add points, Enter to close the polygon, Escape to cancel', role: 'img' });
  const status = h('span', { id: 'draw-status', role: 'status', class: 'small' });
  current = { row, instances: responseInstances(resp), touched: false, editor: null };
  current.editor = new OverlayCanvas(canvas, {
    labels,
    onStatus: (t) => { status.textContent = t; },
    onPolygon: (pts) => {
      current.instances.push({ label: $('new-label').value, polygons: [pts], box: polygonsBox([pts]) });
      current.touched = true;
      current.editor.setInstances(current.instances, current.instances.length - 1);
      renderInstances();
    },
  });
  mount($('item'),
    h('h2', {}, 'Inspection ', h('span', { class: 'mono small' }, row.request_id), ' ', verdictBadge(row.verdict)),
    h('p', { class: 'small muted' }, `${fmt.time(row.created_at)} · ${queued?.review_reason ? REASONS[queued.review_reason] || queued.review_reason : ''} · `,
      `${[row.line, row.lot, row.camera].filter(Boolean).join(' / ') || 'no line/lot/camera'} · `,
      h('a', { href: pageUrl('history', project, { request: row.request_id }) }, 'in history')),
    h('div', { class: 'split' },
      h('div', {}, canvas, h('p', { class: 'small' }, status)),
      h('div', {},
        h('p', {}, `Model: ${row.label ?? '—'} at ${fmt.num(row.confidence, 3)}. ${(resp.reasons || []).join('; ')}`),
        h('div', { class: 'row' }, labelSelect('image-label', imageLabel, () => {}, 'Image label')),
        h('h3', {}, 'Instances'),
        h('ol', { class: 'instances', id: 'instances', style: 'padding-left:0;list-style:none' }),
        h('div', { class: 'row' }, labelSelect('new-label', labels.find((l) => l !== 'ok') || labels[0], () => {}, 'New instance label'),
          h('button', { type: 'button', id: 'draw', class: 'secondary', onclick: () => current.editor.startDrawing() }, 'Draw instance'),
          h('button', { type: 'button', class: 'secondary', onclick: () => current.editor.finish(), 'aria-label': 'Close the polygon being drawn' }, 'Close polygon')),
        h('div', { class: 'row', style: 'margin-top:.5rem' }, h('label', { for: 'note' }, 'Note'), h('input', { type: 'text', id: 'note', size: 30 })),
        h('div', { class: 'row', style: 'margin-top:.75rem' },
          h('button', { type: 'button', id: 'accept', onclick: () => submit('accept') }, 'Accept predictions'),
          h('button', { type: 'button', id: 'save', onclick: () => submit('relabel') }, 'Save correction'),
          h('button', { type: 'button', id: 'reject', class: 'danger', onclick: () => submit('reject') }, 'Reject as unusable')),
        h('p', { id: 'saved', role: 'status' }),
        h('h3', {}, 'Corrections'),
        h('ul', { id: 'corrections' }))));
  renderInstances();
  renderQueue();
  try {
    const img = await loadImage(row.image_url || `/history/${encodeURIComponent(id)}/image`);
    current.editor.setImage(img);
    current.editor.setInstances(current.instances);
  } catch (e) {
    showError(e, 'Loading the image');
  }
  await showCorrections(id);
  loaded();
}

async function fromCorrections() {
  const btn = $('from-corrections');
  btn.disabled = true;
  try {
    const res = await api(`/projects/${encodeURIComponent(project)}/datasets/from-corrections`, {
      method: 'POST', body: { message: 'corrections from the review page' },
    });
    const id = res.version?.id;
    if (res.created === false) {
      mount($('from-corrections-result'), `No new dataset version: only rejections (${res.rejected}); they are recorded against `,
        h('a', { href: pageUrl('datasets', project, { version: id }) }, fmt.short(id, 12)), '.');
      return;
    }
    mount($('from-corrections-result'), `Dataset version `,
      h('a', { href: pageUrl('datasets', project, { version: id }), id: 'new-dataset-link' }, fmt.short(id, 12)),
      ` created: ${res.images_added} image(s) added from ${res.corrections_used} correction(s)${res.rejected ? `, ${res.rejected} rejected left out` : ''}.`);
    showNotice('Dataset version created from corrections.');
  } catch (e) {
    showError(e, 'Creating a dataset version from corrections');
  } finally {
    btn.disabled = false;
  }
}

async function main() {
  ({ project } = await initPage('review'));
  if (!project) return loaded();
  labels = await api(`/projects/${encodeURIComponent(project)}/labels`).catch((e) => { showError(e, 'Loading labels'); return []; });
  $('from-corrections').addEventListener('click', fromCorrections);
  await loadQueue();
  const wanted = param('request');
  if (wanted) await open(wanted, queue.find((q) => q.request_id === wanted));
  else if (queue.length) await open(queue[0].request_id, queue[0]);
  else mount($('item'), h('p', { class: 'muted' }, 'Nothing to review. Inspections appear here once the line sends them.'));
  loaded();
}

main();
