// Tiny SVG charts: line curves (experiment metrics) and bar histograms (confidence).

import { h } from './dom.js';

export const PALETTE = ['#1f5fbf', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0e7490', '#a16207', '#be185d'];

function svg(tag, attrs = {}, ...children) {
  return h(`svg:${tag}`, attrs, ...children);
}

function niceTicks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const step0 = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toFixed(10)));
  return ticks;
}

function label(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return v.toExponential(1);
  return String(Number(v.toFixed(3)));
}

/**
 * Line chart. `series`: [{ name, points: [[x, y], …] }]. Returns a figure with an SVG and legend.
 */
export function lineChart({ series, title, xLabel = '', yLabel = '', width = 520, height = 260 }) {
  const pad = { l: 52, r: 12, t: 12, b: 36 };
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const fig = h('figure', { class: 'chart-figure', style: 'margin:0' });
  if (title) fig.append(h('figcaption', { class: 'small' }, h('strong', {}, title)));
  if (!pts.length) {
    fig.append(h('p', { class: 'muted' }, 'No data.'));
    return fig;
  }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  if (y0 > 0 && y0 < (y1 - y0)) y0 = 0;
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `${title || 'chart'}: ${series.map((s) => s.name).join(', ')}` });
  for (const t of niceTicks(y0, y1)) {
    root.append(svg('line', { class: 'grid-line', x1: pad.l, x2: width - pad.r, y1: sy(t), y2: sy(t) }));
    root.append(svg('text', { x: pad.l - 6, y: sy(t) + 4, 'text-anchor': 'end' }, label(t)));
  }
  for (const t of niceTicks(x0, x1, 6)) {
    root.append(svg('text', { x: sx(t), y: height - pad.b + 14, 'text-anchor': 'middle' }, label(t)));
  }
  root.append(svg('line', { class: 'axis', x1: pad.l, x2: pad.l, y1: pad.t, y2: height - pad.b }));
  root.append(svg('line', { class: 'axis', x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }));
  if (xLabel) root.append(svg('text', { x: (width + pad.l) / 2, y: height - 4, 'text-anchor': 'middle' }, xLabel));
  if (yLabel) root.append(svg('text', { x: 12, y: pad.t + 4, 'text-anchor': 'start' }, yLabel));
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const d = good.map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    root.append(svg('path', { d, fill: 'none', stroke: color, 'stroke-width': 2 }, svg('title', {}, s.name)));
    if (good.length <= 40) {
      for (const [x, y] of good) root.append(svg('circle', { cx: sx(x), cy: sy(y), r: 2.5, fill: color }, svg('title', {}, `${s.name}: ${label(x)}, ${label(y)}`)));
    }
  });
  fig.append(root, legend(series.map((s, i) => [s.name, s.color || PALETTE[i % PALETTE.length]])));
  return fig;
}

/** Legend row: [[name, color]]. */
export function legend(items) {
  return h('div', { class: 'legend' }, items.map(([name, color]) => h('span', {}, h('span', { class: 'swatch', style: `background:${color}` }), name)));
}

/**
 * Histogram / bar chart. `bars`: [{ label, value, color? }]; optional `overlay`: [{ value }] drawn
 * as a line over the bars (e.g. an evaluation baseline).
 */
export function barChart({ bars, title, overlay, yLabel = '', width = 360, height = 180, color = PALETTE[0], overlayName = 'baseline' }) {
  const pad = { l: 40, r: 8, t: 10, b: 30 };
  const fig = h('figure', { class: 'chart-figure', style: 'margin:0' });
  if (title) fig.append(h('figcaption', { class: 'small' }, h('strong', {}, title)));
  if (!bars.length) {
    fig.append(h('p', { class: 'muted' }, 'No data.'));
    return fig;
  }
  const max = Math.max(1e-12, ...bars.map((b) => b.value), ...(overlay || []).map((b) => b.value));
  const bw = (width - pad.l - pad.r) / bars.length;
  const sy = (v) => height - pad.b - (v / max) * (height - pad.t - pad.b);
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `${title || 'histogram'}: ${bars.map((b) => `${b.label} ${label(b.value)}`).join(', ')}` });
  for (const t of niceTicks(0, max, 4)) {
    root.append(svg('line', { class: 'grid-line', x1: pad.l, x2: width - pad.r, y1: sy(t), y2: sy(t) }));
    root.append(svg('text', { x: pad.l - 4, y: sy(t) + 4, 'text-anchor': 'end' }, label(t)));
  }
  const every = Math.ceil(bars.length / 10);
  bars.forEach((b, i) => {
    const x = pad.l + i * bw;
    root.append(svg('rect', { x: x + 1, y: sy(b.value), width: Math.max(1, bw - 2), height: Math.max(0, height - pad.b - sy(b.value)), fill: b.color || color },
      svg('title', {}, `${b.label}: ${label(b.value)}`)));
    if (i % every === 0) root.append(svg('text', { x: x + bw / 2, y: height - pad.b + 13, 'text-anchor': 'middle' }, b.label));
  });
  if (overlay && overlay.length === bars.length) {
    const d = overlay.map((o, i) => `${i ? 'L' : 'M'}${(pad.l + (i + 0.5) * bw).toFixed(1)},${sy(o.value).toFixed(1)}`).join(' ');
    root.append(svg('path', { d, fill: 'none', stroke: '#c2410c', 'stroke-width': 2, 'stroke-dasharray': '4 3' }, svg('title', {}, overlayName)));
  }
  root.append(svg('line', { class: 'axis', x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }));
  if (yLabel) root.append(svg('text', { x: 4, y: pad.t, 'text-anchor': 'start' }, yLabel));
  fig.append(root);
  if (overlay) fig.append(legend([['this window', color], [overlayName, '#c2410c']]));
  return fig;
}
