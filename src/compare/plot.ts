// `phi4 compare --plot FILE.svg`: relative L2 error per layer, one curve per tap kind, on a log
// scale, with the tolerance as a dashed line. Hand-written SVG 1.1, no dependencies.

import { writeFileAtomic } from '../safety/outputs.js';
import type { CompareReport } from './report.js';
import { LAYER_TAPS } from '../../layers/taps.js';

const W = 820;
const H = 440;
const DH = 170; // the detail panel under the main one: per-position / per-head error of the first divergent tap
const M = { left: 70, right: 190, top: 52, bottom: 50 };
// one colour per series, none reused: 13 layer taps, logits, rope.cos, rope.sin, and spares
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#393b79', '#637939', '#843c39', '#000000', '#7b4173', '#3182bd', '#e6550d', '#31a354', '#756bb1', '#636363'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Series {
  label: string;
  points: { x: number; y: number; where: string }[];
}

/**
 * The report's rel L2 errors as an SVG document. x: embed, one slot per layer present, head; inside
 * a layer slot each tap has its own x in forward order (input_norm first, out last), so a layer's
 * 13 taps read left to right as the computation runs. Under it, the first divergent tap's error per
 * position (and per head, when it has heads).
 */
export function plotSvg(report: CompareReport, title: string): string {
  const inLayer = Object.keys(LAYER_TAPS);
  const layerIds = [...new Set(report.taps.flatMap((t) => {
    const m = /^layers\.(\d+)\./.exec(t.name);
    return m ? [Number(m[1])] : [];
  }))].sort((a, b) => a - b);
  const slot = new Map(layerIds.map((l, i) => [l, i + 1]));
  const xHead = layerIds.length + 1;
  const series = new Map<string, Series>();
  const add = (label: string, x: number, y: number, where: string) => {
    if (!series.has(label)) series.set(label, { label, points: [] });
    series.get(label)!.points.push({ x, y, where });
  };
  const within = (k: number) => (k + 0.5) / inLayer.length - 0.5; // offset of tap k inside its slot, in (-0.5, 0.5)
  for (const t of report.taps) {
    if (t.finding) continue;
    const m = /^layers\.(\d+)\.(.+)$/.exec(t.name);
    const k = m ? inLayer.indexOf(m[2]) : -1;
    if (m && k >= 0) add(m[2], slot.get(Number(m[1]))! + within(k), t.relL2, `layer ${m[1]}`);
    else if (t.name === 'embed') add('out', 0, t.relL2, 'embed'); // the residual stream: embed, layers.N.out, final_norm
    else if (t.name === 'final_norm') add('out', xHead, t.relL2, 'final_norm');
    else if (t.name === 'logits') add('logits', xHead + 0.25, t.relL2, 'head');
    else if (t.name.startsWith('rope.')) add(t.name, t.name === 'rope.cos' ? -0.25 : 0.25, t.relL2, 'rope');
    else add(m ? m[2] : t.name, m ? slot.get(Number(m[1]))! : xHead, t.relL2, m ? `layer ${m[1]}` : 'head');
  }
  const order = [...inLayer, 'logits', 'rope.cos', 'rope.sin'];
  const all = [...series.values()].sort((a, b) => {
    const ia = order.indexOf(a.label);
    const ib = order.indexOf(b.label);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.label.localeCompare(b.label);
  });
  const first = report.taps.find((t) => t.name === report.firstDivergent && (t.positions || t.heads));

  const finite = report.taps.map((t) => t.relL2).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.max(-12, Math.floor(Math.log10(Math.min(report.tolerance, ...finite))) - 1);
  const hi = Math.max(Math.ceil(Math.log10(Math.max(report.tolerance, ...finite))), lo + 1);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const X = (x: number) => M.left + ((x + 0.5) / (xHead + 1)) * pw;
  // zeros sit on the bottom edge, non-finite values on the top edge
  const level = (v: number) => (!Number.isFinite(v) ? hi : v <= 0 ? lo : Math.min(hi, Math.max(lo, Math.log10(v))));
  const Y = (v: number) => M.top + ((hi - level(v)) / (hi - lo)) * ph;

  const out: string[] = [];
  const height = H + (first ? DH : 0);
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${height}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="18" font-size="13">${esc(title)}</text>`);
  for (let e = lo; e <= hi; e++) {
    const y = Y(10 ** e).toFixed(1);
    out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + pw}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">1e${e}</text>`);
  }
  const every = Math.max(1, Math.ceil(xHead / 30)); // at most ~30 labels
  for (let x = 0; x <= xHead; x++) {
    if (x !== 0 && x !== xHead && (x - 1) % every) continue;
    const label = x === 0 ? 'embed' : x === xHead ? 'head' : String(layerIds[x - 1]);
    out.push(`<text x="${X(x).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle">${label}</text>`);
    if (x > 0 && x < xHead) out.push(`<line x1="${X(x - 0.5).toFixed(1)}" y1="${M.top}" x2="${X(x - 0.5).toFixed(1)}" y2="${M.top + ph}" stroke="#eee"/>`);
  }
  out.push(`<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">layer (inside each: input_norm .. out, left to right)</text>`);
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
      const tip = `${s.label} @ ${p.where}: ${Number.isFinite(p.y) ? p.y.toExponential(2) : 'non-finite'}`;
      out.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3" fill="${c}"><title>${esc(tip)}</title></circle>`);
    }
    const ly = M.top + 8 + i * 16;
    out.push(`<line x1="${W - M.right + 12}" y1="${ly}" x2="${W - M.right + 32}" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${W - M.right + 38}" y="${ly}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  if (first) out.push(...detailPanel(first, report.tolerance, H, lo, hi));
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Bars of a tap's rel L2 per position (left) and per head (right), same log scale as above. */
function detailPanel(t: CompareReport['taps'][number], tol: number, top: number, lo: number, hi: number): string[] {
  const out: string[] = [];
  const y0 = top + 24;
  const ph = DH - 54;
  const Y = (v: number) => y0 + ((hi - (!Number.isFinite(v) ? hi : v <= 0 ? lo : Math.min(hi, Math.max(lo, Math.log10(v))))) / (hi - lo)) * ph;
  out.push(`<text x="${M.left}" y="${top + 12}" font-size="13">${esc(`${t.name}: rel L2 per position${t.heads ? ' and per head' : ''} (red: over tolerance)`)}</text>`);
  const panels: [string, number[]][] = [];
  if (t.positions) panels.push(['position', t.positions]);
  if (t.heads) panels.push(['head', t.heads]);
  const pw = (W - M.left - M.right - 20 * (panels.length - 1)) / panels.length;
  panels.forEach(([axis, xs], p) => {
    const x0 = M.left + p * (pw + 20);
    out.push(`<rect x="${x0}" y="${y0}" width="${pw.toFixed(1)}" height="${ph}" fill="none" stroke="#333"/>`);
    const bw = pw / xs.length;
    xs.forEach((v, i) => {
      const y = Y(v);
      const c = v <= tol ? '#1f77b4' : '#d62728';
      out.push(`<rect x="${(x0 + i * bw + bw * 0.1).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw * 0.8).toFixed(1)}" height="${(y0 + ph - y).toFixed(1)}" fill="${c}"><title>${axis} ${i}: ${Number.isFinite(v) ? v.toExponential(2) : 'non-finite'}</title></rect>`);
    });
    const ty = Y(tol).toFixed(1);
    out.push(`<line x1="${x0}" y1="${ty}" x2="${(x0 + pw).toFixed(1)}" y2="${ty}" stroke="#d62728" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${(x0 + pw / 2).toFixed(1)}" y="${y0 + ph + 16}" text-anchor="middle">${axis} 0 .. ${xs.length - 1}</text>`);
  });
  return out;
}

/** Writes `text` to `path` atomically (src/safety/outputs.ts: the one temporary-file scheme). */
export function writeTextAtomic(path: string, text: string): void {
  writeFileAtomic(path, text);
}
