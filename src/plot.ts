// `phi4 compare --plot FILE.svg`: relative L2 error per layer, one curve per tap kind, on a log
// scale, with the tolerance as a dashed line. Hand-written SVG 1.1, no dependencies.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { CompareReport } from './compare.js';
import { LAYER_TAPS } from './taps.js';

const W = 760;
const H = 440;
const M = { left: 70, right: 170, top: 52, bottom: 50 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#843c39', '#000000'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Series {
  label: string;
  points: { x: number; y: number }[];
}

/** The report's rel L2 errors as an SVG document. x: embed, layer 0 .. L-1, head. */
export function plotSvg(report: CompareReport, title: string): string {
  let layers = 0;
  for (const t of report.taps) {
    const m = /^layers\.(\d+)\./.exec(t.name);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  const xHead = layers + 1;
  const series = new Map<string, Series>();
  const add = (label: string, x: number, y: number) => {
    if (!series.has(label)) series.set(label, { label, points: [] });
    series.get(label)!.points.push({ x, y });
  };
  for (const t of report.taps) {
    const m = /^layers\.(\d+)\.(.+)$/.exec(t.name);
    if (m) add(m[2], Number(m[1]) + 1, t.relL2);
    else if (t.name === 'embed') add('out', 0, t.relL2); // the residual stream: embed, layers.N.out, final_norm
    else if (t.name === 'final_norm') add('out', xHead, t.relL2);
    else if (t.name === 'logits') add('logits', xHead, t.relL2);
    else if (t.name.startsWith('rope.')) add(t.name, 0, t.relL2);
    else add(t.name, xHead, t.relL2);
  }
  const order = ['out', ...Object.keys(LAYER_TAPS).filter((k) => k !== 'out'), 'logits', 'rope.cos', 'rope.sin'];
  const all = [...series.values()].sort((a, b) => {
    const ia = order.indexOf(a.label);
    const ib = order.indexOf(b.label);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.label.localeCompare(b.label);
  });

  const finite = report.taps.map((t) => t.relL2).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.max(-12, Math.floor(Math.log10(Math.min(report.tolerance, ...finite))) - 1);
  const hi = Math.max(Math.ceil(Math.log10(Math.max(report.tolerance, ...finite))), lo + 1);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const X = (x: number) => M.left + (xHead === 0 ? pw / 2 : (x / xHead) * pw);
  // zeros sit on the bottom edge, non-finite values on the top edge
  const Y = (v: number) => {
    const l = !Number.isFinite(v) ? hi : v <= 0 ? lo : Math.min(hi, Math.max(lo, Math.log10(v)));
    return M.top + ((hi - l) / (hi - lo)) * ph;
  };

  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="18" font-size="13">${esc(title)}</text>`);
  for (let e = lo; e <= hi; e++) {
    const y = Y(10 ** e).toFixed(1);
    out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + pw}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">1e${e}</text>`);
  }
  for (let x = 0; x <= xHead; x++) {
    const label = x === 0 ? 'embed' : x === xHead ? 'head' : String(x - 1);
    out.push(`<text x="${X(x).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle">${label}</text>`);
  }
  out.push(`<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">layer</text>`);
  out.push(`<text x="${W - M.right + 12}" y="${H - 10}" font-size="10" fill="#555">zero error: bottom edge</text>`);
  const verdict = report.ok ? 'PASS' : `FAIL: first divergence at ${report.firstDivergent}`;
  out.push(`<text x="${M.left}" y="38" font-size="13" fill="${report.ok ? '#2ca02c' : '#d62728'}">${esc(verdict)}</text>`);
  out.push(`<text x="16" y="${M.top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${M.top + ph / 2})">relative L2 error</text>`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  const ty = Y(report.tolerance).toFixed(1);
  out.push(`<line x1="${M.left}" y1="${ty}" x2="${M.left + pw}" y2="${ty}" stroke="#d62728" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${M.left + pw - 4}" y="${Number(ty) - 5}" text-anchor="end" fill="#d62728">tolerance ${report.tolerance.toExponential(0)} (${esc(report.preset)})</text>`);

  all.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const dash = i >= COLORS.length ? ' stroke-dasharray="3 2"' : '';
    const pts = s.points.sort((a, b) => a.x - b.x).map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`);
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.5"${dash} points="${pts.join(' ')}"/>`);
    for (const p of s.points) {
      const tip = `${s.label} @ ${p.x === 0 ? 'embed' : p.x === xHead ? 'head' : `layer ${p.x - 1}`}: ${Number.isFinite(p.y) ? p.y.toExponential(2) : 'non-finite'}`;
      out.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3" fill="${c}"><title>${esc(tip)}</title></circle>`);
    }
    const ly = M.top + 8 + i * 16;
    out.push(`<line x1="${W - M.right + 12}" y1="${ly}" x2="${W - M.right + 32}" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${W - M.right + 38}" y="${ly}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Writes `text` to `path` atomically: a temporary file in the same directory, fsync, rename. */
export function writeTextAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, 'wx');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
