// Images with instance overlays on a <canvas>, and polygon drawing.
//
// An instance is { label, polygons: [[x0, y0, x1, y1, …], …], box: [x1, y1, x2, y2] } in image
// pixels. Drawing: click to add points (or move the cross with the arrow keys and press Space),
// Backspace removes the last point, Enter or a double click closes the polygon (3 points at
// least), Escape cancels.

import { authHeaders } from './api.js';
import { PALETTE } from './chart.js';

/** A stable colour per label name. */
export function labelColor(label, labels = []) {
  const i = labels.indexOf(label);
  if (i >= 0) return PALETTE[i % PALETTE.length];
  let hash = 0;
  for (const c of String(label)) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** Load an image (with the API token, as an object URL) into an HTMLImageElement. */
export async function loadImage(url) {
  const res = await fetch(url, { headers: authHeaders() });
  if (!res.ok) throw new Error(`image ${url}: HTTP ${res.status}`);
  const blob = await res.blob();
  const img = new Image();
  img.alt = '';
  const src = URL.createObjectURL(blob);
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error(`cannot decode image ${url}`));
    img.src = src;
  });
  return img;
}

/** Bounding box of flat polygons. */
export function polygonsBox(polygons) {
  const xs = [], ys = [];
  for (const p of polygons) for (let i = 0; i + 1 < p.length; i += 2) { xs.push(p[i]); ys.push(p[i + 1]); }
  if (!xs.length) return null;
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

export class OverlayCanvas {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{labels?: string[], onPolygon?: (points: number[]) => void, onStatus?: (text: string) => void}} opts
   */
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.labels = opts.labels || [];
    this.onPolygon = opts.onPolygon || (() => {});
    this.onStatus = opts.onStatus || (() => {});
    this.image = null;
    this.instances = [];
    this.selected = -1;
    this.drawing = null; // points being drawn (image pixels)
    this.cursor = null; // [x, y] in image pixels
    this.scale = 1;
    canvas.tabIndex = 0;
    canvas.addEventListener('click', (e) => this.click(e));
    canvas.addEventListener('dblclick', (e) => { e.preventDefault(); this.finish(); });
    canvas.addEventListener('mousemove', (e) => { this.cursor = this.toImage(e); if (this.drawing) this.draw(); });
    canvas.addEventListener('keydown', (e) => this.key(e));
  }

  setImage(img, maxWidth = 640) {
    this.image = img;
    this.scale = Math.min(1, maxWidth / img.naturalWidth) || 1;
    if (img.naturalWidth < 480) this.scale = 480 / img.naturalWidth;
    this.canvas.width = Math.round(img.naturalWidth * this.scale);
    this.canvas.height = Math.round(img.naturalHeight * this.scale);
    this.draw();
  }

  setInstances(list, selected = -1) {
    this.instances = list;
    this.selected = selected;
    this.draw();
  }

  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const k = this.canvas.width / r.width;
    return [((e.clientX - r.left) * k) / this.scale, ((e.clientY - r.top) * k) / this.scale];
  }

  /** Enter drawing mode. */
  startDrawing() {
    this.drawing = [];
    this.cursor = this.image ? [this.image.naturalWidth / 2, this.image.naturalHeight / 2] : [0, 0];
    this.canvas.focus();
    this.onStatus('Drawing: click points (or arrows + Space), Enter or double-click to close, Escape to cancel.');
    this.draw();
  }

  cancel() {
    this.drawing = null;
    this.onStatus('');
    this.draw();
  }

  addPoint(p) {
    if (!this.drawing || !this.image) return;
    const x = Math.max(0, Math.min(this.image.naturalWidth, p[0]));
    const y = Math.max(0, Math.min(this.image.naturalHeight, p[1]));
    this.drawing.push(Math.round(x * 10) / 10, Math.round(y * 10) / 10);
    this.onStatus(`Drawing: ${this.drawing.length / 2} point(s).`);
    this.draw();
  }

  click(e) {
    if (this.drawing) this.addPoint(this.toImage(e));
  }

  /** Close the polygon being drawn (drops points repeated by a double click). */
  finish() {
    if (!this.drawing) return;
    const pts = [];
    for (let i = 0; i + 1 < this.drawing.length; i += 2) {
      const [x, y] = [this.drawing[i], this.drawing[i + 1]];
      const n = pts.length;
      if (n >= 2 && Math.abs(pts[n - 2] - x) < 1.5 && Math.abs(pts[n - 1] - y) < 1.5) continue;
      pts.push(x, y);
    }
    if (pts.length < 6) {
      this.onStatus('A polygon needs at least 3 points.');
      return;
    }
    this.drawing = null;
    this.onStatus('Polygon added.');
    this.onPolygon(pts);
    this.draw();
  }

  key(e) {
    if (!this.drawing) return;
    const step = e.shiftKey ? 16 : 4;
    const c = this.cursor || [0, 0];
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      e.preventDefault();
      this.cursor = [c[0] + moves[e.key][0] / this.scale, c[1] + moves[e.key][1] / this.scale];
      this.draw();
    } else if (e.key === ' ') {
      e.preventDefault();
      this.addPoint(c);
    } else if (e.key === 'Enter') {
      e.preventDefault();
      this.finish();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      this.cancel();
    } else if (e.key === 'Backspace') {
      e.preventDefault();
      this.drawing.splice(-2, 2);
      this.draw();
    }
  }

  draw() {
    const { ctx, canvas, scale: k } = this;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (this.image) ctx.drawImage(this.image, 0, 0, canvas.width, canvas.height);
    this.instances.forEach((inst, i) => {
      const color = labelColor(inst.label, this.labels);
      const sel = i === this.selected;
      ctx.lineWidth = sel ? 3 : 2;
      ctx.strokeStyle = color;
      ctx.fillStyle = `${color}${sel ? '66' : '33'}`;
      for (const poly of inst.polygons || []) {
        if (poly.length < 6) continue;
        ctx.beginPath();
        for (let j = 0; j + 1 < poly.length; j += 2) {
          const [x, y] = [poly[j] * k, poly[j + 1] * k];
          if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        }
        ctx.closePath();
        ctx.fill();
        ctx.stroke();
      }
      const box = inst.box || polygonsBox(inst.polygons || []);
      if (box) {
        ctx.setLineDash(sel ? [] : [5, 3]);
        ctx.strokeRect(box[0] * k, box[1] * k, (box[2] - box[0]) * k, (box[3] - box[1]) * k);
        ctx.setLineDash([]);
        const text = `${i + 1} ${inst.label}${typeof inst.confidence === 'number' ? ` ${inst.confidence.toFixed(2)}` : ''}`;
        ctx.font = '12px system-ui, sans-serif';
        const w = ctx.measureText(text).width + 6;
        ctx.fillStyle = color;
        ctx.fillRect(box[0] * k, Math.max(0, box[1] * k - 15), w, 15);
        ctx.fillStyle = '#fff';
        ctx.fillText(text, box[0] * k + 3, Math.max(11, box[1] * k - 3));
      }
    });
    if (this.drawing) {
      const pts = this.drawing;
      ctx.strokeStyle = '#ffbf47';
      ctx.fillStyle = '#ffbf47';
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (let j = 0; j + 1 < pts.length; j += 2) {
        if (j === 0) ctx.moveTo(pts[j] * k, pts[j + 1] * k); else ctx.lineTo(pts[j] * k, pts[j + 1] * k);
      }
      if (this.cursor && pts.length) ctx.lineTo(this.cursor[0] * k, this.cursor[1] * k);
      ctx.stroke();
      for (let j = 0; j + 1 < pts.length; j += 2) ctx.fillRect(pts[j] * k - 3, pts[j + 1] * k - 3, 6, 6);
      if (this.cursor) {
        const [cx, cy] = [this.cursor[0] * k, this.cursor[1] * k];
        ctx.beginPath();
        ctx.moveTo(cx - 8, cy); ctx.lineTo(cx + 8, cy);
        ctx.moveTo(cx, cy - 8); ctx.lineTo(cx, cy + 8);
        ctx.stroke();
      }
    }
  }
}

/** Instances of an inspection response (detections above threshold, with polygons and boxes). */
export function responseInstances(response) {
  return ((response && response.detections) || [])
    .filter((d) => d.above_threshold !== false)
    .map((d) => ({ label: d.label, polygons: d.polygons || [], box: d.box_xyxy, confidence: d.confidence }));
}
