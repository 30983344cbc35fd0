// Page chrome shared by every page: navigation, project selection (?project=), API token.

import { api, setToken, showError, showNotice, token } from './api.js';
import { h, mount } from './dom.js';

export const PAGES = [
  ['dashboard', 'Dashboard'],
  ['history', 'History'],
  ['review', 'Review'],
  ['experiments', 'Experiments'],
  ['models', 'Models'],
  ['datasets', 'Datasets'],
];

/** URL of a page for a project (with extra query parameters). */
export function pageUrl(page, project, extra = {}) {
  const sp = new URLSearchParams();
  if (project) sp.set('project', project);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null && v !== '') sp.set(k, v);
  const q = sp.toString();
  return `/ui/${page}/${q ? `?${q}` : ''}`;
}

/** A query parameter of the current URL. */
export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

/** Replace query parameters of the current URL without reloading (null/'' removes). */
export function setParams(values) {
  const sp = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || v === null || v === '') sp.delete(k);
    else sp.set(k, v);
  }
  const q = sp.toString();
  history.replaceState(null, '', `${location.pathname}${q ? `?${q}` : ''}`);
}

function tokenForm() {
  const input = h('input', {
    id: 'api-token', type: 'password', autocomplete: 'off', size: 14,
    placeholder: token() ? 'saved' : 'none', 'aria-describedby': 'api-token-help',
  });
  const form = h('form', { class: 'row', onsubmit: (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    input.value = '';
    input.placeholder = token() ? 'saved' : 'none';
    showNotice(token() ? 'API token saved in this browser.' : 'API token cleared.');
  } },
  h('label', { for: 'api-token' }, 'API token'),
  input,
  h('span', { id: 'api-token-help', class: 'sr-only' }, 'Sent as a Bearer token; stored in this browser only. Submit empty to clear.'),
  h('button', { type: 'submit', class: 'secondary', id: 'save-token' }, 'Save token'));
  return form;
}

/**
 * Draw the header for `page` and resolve the project: `?project=` or the first one.
 * Returns `{ project, projects }`; `project` is null when there is none (a message says so).
 */
export async function initPage(page) {
  const header = document.getElementById('top');
  let projects = [];
  try {
    projects = await api('/projects');
  } catch (e) {
    showError(e, 'Loading projects');
  }
  const names = projects.map((p) => p.name);
  let project = param('project');
  if (!project || !names.includes(project)) {
    if (project && !names.includes(project)) showError(new Error(`project \`${project}\` does not exist`));
    project = names[0] || null;
  }
  const select = h('select', { id: 'project-select', onchange: () => {
    location.href = pageUrl(page, select.value);
  } }, names.map((n) => h('option', { value: n, selected: n === project }, n)));
  if (header) {
    mount(header,
      h('span', { class: 'brand' }, 'Sightline'),
      h('nav', { 'aria-label': 'Pages' }, h('ul', {}, PAGES.map(([id, label]) => h('li', {},
        h('a', { href: pageUrl(id, project), 'aria-current': id === page ? 'page' : false }, label))))),
      h('div', { class: 'controls' },
        h('div', { class: 'row' }, h('label', { for: 'project-select' }, 'Project'), select),
        tokenForm()));
  }
  if (!project) {
    const main = document.getElementById('main');
    main?.append(h('p', { class: 'panel' },
      'No project yet. Create one with ', h('code', {}, 'sightline project apply models/configs/<name>.yaml'), '.'));
  }
  document.title = `${PAGES.find(([id]) => id === page)?.[1] ?? page}${project ? ` · ${project}` : ''} · Sightline`;
  return { project, projects };
}

/** Mark the page as rendered (browser tests wait for `body[data-loaded]`). */
export function loaded() {
  document.body.dataset.loaded = String(Date.now());
}
