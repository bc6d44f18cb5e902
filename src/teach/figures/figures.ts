// The walkthrough's pictures, as small hand-written SVG: one function per figure, each returning
// a self-contained <svg> string (no script, no external font or style). tools/gen-docs.ts writes
// them to docs/figures/ and `phi4 walkthrough --html` inlines them. Every figure names, in its
// caption, the model or config and the command that produced it.

import { attentionBias } from '../../../layers/mask.js';
import { inverseFrequencies, usesLongFactors } from '../../../layers/rotary.js';
import type { Phi3Config } from '../../model/config.js';

import { Phi3Model } from '../../model/model.js';
import { loadTokenizer } from '../../text/tokenizer.js';
import { TOY_DIR } from '../toy/train.js';
import { loadRealConfig } from '../walkthrough.js';
import { captureTaps } from '../../capture/host.js';
import type { TapName } from '../../../layers/taps.js';

import { esc, heatmap, line, r1, shadeLegend, svg, text } from './svg.js';
import { type AttentionRun, attentionFigure, attentionRun } from './attention.js';

export { type AttentionRun, attentionFigure, attentionRun };

// ---- 1. rotary pairs of the real config ----

/** Wavelength 2 pi / inv_freq of every rotary pair, short and long factors, on a log axis. */
export function ropeFigure(real: Phi3Config, source: string): string {
  const r = real.rope;
  const half = r.rotaryDim / 2;
  const short = inverseFrequencies(r, false);
  const long = inverseFrequencies(r, true);
  const wl = (f: number) => (2 * Math.PI) / f;
  const W = 760;
  const H = 470;
  const L = 70;
  const R = W - 150;
  const T = 40;
  const B = 300;
  const lo = 0; // log10 axis from 1 to 10^8 positions
  const hi = 8;
  const y = (v: number) => B - ((Math.log10(v) - lo) / (hi - lo)) * (B - T);
  const x = (i: number) => L + ((i + 0.5) / half) * (R - L);
  const out: string[] = [];
  out.push(text(L, 20, `Rotary pairs of Phi-4-mini (${source}): wavelength 2\u03c0 / inv_freq per pair`, 'font-weight="bold"'));
  for (let e = lo; e <= hi; e++) {
    out.push(line(L - 4, y(10 ** e), R, y(10 ** e), 'stroke="#ddd"'), text(L - 8, y(10 ** e) + 4, `1e${e}`, 'text-anchor="end"'));
  }
  out.push(line(L, T, L, B), line(L, B, R, B));
  out.push(text(14, (T + B) / 2, 'wavelength (positions, log scale)', `transform="rotate(-90 14 ${(T + B) / 2})" text-anchor="middle"`));
  for (let i = 0; i < half; i += 8) out.push(line(x(i), B, x(i), B + 4), text(x(i), B + 16, String(i), 'text-anchor="middle"'));
  out.push(text((L + R) / 2, B + 32, `rotary pair i (0 .. ${half - 1}); pair i turns dims i and i + ${half} of each head`, 'text-anchor="middle"'));
  for (const [v, label] of [[r.originalMaxPositions, `original context ${r.originalMaxPositions}: long factors past it`], [real.maxPositions, `max positions ${real.maxPositions}`]] as const) {
    out.push(line(L, y(v), R, y(v), 'stroke="#c00" stroke-dasharray="4 3"'), text(R + 4, y(v) + 4, String(label).split(':')[0], 'fill="#c00"'));
  }
  const pts = (f: Float32Array) => Array.from(f, (v, i) => `${r1(x(i))},${r1(y(wl(v)))}`).join(' ');
  out.push(`<polyline class="series" data-series="short" points="${pts(short)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>`);
  out.push(`<polyline class="series" data-series="long" points="${pts(long)}" fill="none" stroke="#ff7f0e" stroke-width="1.5"/>`);
  for (let i = 0; i < half; i++) out.push(`<circle class="pair" cx="${r1(x(i))}" cy="${r1(y(wl(short[i])))}" r="2" fill="#1f77b4"/>`);
  for (let i = 0; i < half; i++) out.push(`<circle class="pair" cx="${r1(x(i))}" cy="${r1(y(wl(long[i])))}" r="2" fill="#ff7f0e"/>`);
  out.push(`<rect x="${R - 190}" y="${T + 4}" width="186" height="40" fill="#fff" stroke="#ccc"/>`);
  out.push(line(R - 182, T + 16, R - 162, T + 16, 'stroke="#1f77b4" stroke-width="2"'), text(R - 156, T + 20, 'short factors (T \u2264 ' + r.originalMaxPositions + ')'));
  out.push(line(R - 182, T + 34, R - 162, T + 34, 'stroke="#ff7f0e" stroke-width="2"'), text(R - 156, T + 38, 'long factors (T > ' + r.originalMaxPositions + ')'));
  // the head's dims: which rotate
  const d = real.headDim;
  const sy = 370;
  const cw = (R - L) / d;
  out.push(text(L, sy - 10, `One head's ${d} dims: the first ${r.rotaryDim} rotate (pairs i, i + ${half}), the last ${d - r.rotaryDim} pass through unchanged`));
  for (let k = 0; k < d; k++) {
    const rot = k < r.rotaryDim;
    out.push(`<rect class="dim" x="${r1(L + k * cw)}" y="${sy}" width="${r1(cw - 0.5)}" height="16" fill="${rot ? (k < half ? '#9ecae1' : '#3182bd') : '#ddd'}"/>`);
  }
  for (const k of [0, half, r.rotaryDim, d]) out.push(line(L + k * cw, sy + 16, L + k * cw, sy + 22), text(L + k * cw, sy + 34, String(k), 'text-anchor="middle"'));
  out.push(text(L, sy + 52, `cos and sin are multiplied by the attention scaling ${r.attentionScaling.toFixed(4)} = sqrt(1 + ln(${real.maxPositions} / ${r.originalMaxPositions}) / ln(${r.originalMaxPositions})), under both factor sets`));
  out.push(text(L, sy + 70, 'Computed from the config by layers/rotary.ts inverseFrequencies (npm run docs).', 'fill="#555"'));
  return svg(W, H, 'LongRoPE wavelengths of Phi-4-mini', out, 'rope');
}

// ---- 3. residual stream by layer ----

export interface ResidualRun {
  /** RMS over all positions and channels, after the embedding and after each sublayer. */
  stream: { label: string; rms: number }[];
  /** RMS of what each sublayer adds: attention (o_proj) and MLP (mlp_out), per layer. */
  attn: number[];
  mlp: number[];
}

const rmsOf = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);

export function residualRun(model: Phi3Model, ids: number[]): ResidualRun {
  const L = model.config.numLayers;
  const names: TapName[] = ['embed'];
  for (let l = 0; l < L; l++) names.push(`layers.${l}.o_proj`, `layers.${l}.post_attn_residual`, `layers.${l}.mlp_out`, `layers.${l}.out`);
  const got = captureTaps(model, { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length }, names);
  const g = (n: string) => rmsOf(got.get(n)!.data);
  const stream = [{ label: 'embed', rms: g('embed') }];
  const attn: number[] = [];
  const mlp: number[] = [];
  for (let l = 0; l < L; l++) {
    stream.push({ label: `${l}: + attn`, rms: g(`layers.${l}.post_attn_residual`) }, { label: `${l}: + mlp`, rms: g(`layers.${l}.out`) });
    attn.push(g(`layers.${l}.o_proj`));
    mlp.push(g(`layers.${l}.mlp_out`));
  }
  return { stream, attn, mlp };
}

export function residualFigure(run: ResidualRun, source: string, command: string): string {
  const n = run.stream.length;
  const W = 640;
  const H = 330;
  const L = 60;
  const R = W - 20;
  const T = 50;
  const B = 240;
  const max = Math.max(...run.stream.map((s) => s.rms), ...run.attn, ...run.mlp);
  const top = Math.pow(10, Math.ceil(Math.log10(max) * 4) / 4); // a round-ish axis end
  const y = (v: number) => B - (v / top) * (B - T);
  const slot = (R - L) / n;
  const out: string[] = [];
  out.push(text(10, 18, `Residual stream RMS and sublayer contributions by layer, ${source}`, 'font-weight="bold"'));
  out.push(text(10, 36, 'RMS = sqrt(mean of squares) over every position and channel; grey bars: the stream, coloured: what the sublayer added'));
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    out.push(line(L - 4, y(v), R, y(v), 'stroke="#eee"'), text(L - 8, y(v) + 4, Number(v.toPrecision(3)).toString(), 'text-anchor="end"'));
  }
  out.push(line(L, T, L, B), line(L, B, R, B));
  out.push(text(14, (T + B) / 2, 'RMS (activation units)', `transform="rotate(-90 14 ${(T + B) / 2})" text-anchor="middle"`));
  run.stream.forEach((s, i) => {
    const x0 = L + i * slot;
    out.push(`<rect class="bar" data-kind="stream" x="${r1(x0 + slot * 0.1)}" y="${r1(y(s.rms))}" width="${r1(slot * 0.4)}" height="${r1(B - y(s.rms))}" fill="#bbb"/>`);
    out.push(text(x0 + slot * 0.3, y(s.rms) - 3, Number(s.rms.toPrecision(3)).toString(), 'text-anchor="middle" font-size="9"'));
    if (i > 0) {
      const l = Math.floor((i - 1) / 2);
      const isAttn = (i - 1) % 2 === 0;
      const v = isAttn ? run.attn[l] : run.mlp[l];
      out.push(`<rect class="bar" data-kind="${isAttn ? 'attn' : 'mlp'}" x="${r1(x0 + slot * 0.5)}" y="${r1(y(v))}" width="${r1(slot * 0.4)}" height="${r1(B - y(v))}" fill="${isAttn ? '#1f77b4' : '#2ca02c'}"/>`);
      out.push(text(x0 + slot * 0.7, y(v) - 3, Number(v.toPrecision(3)).toString(), 'text-anchor="middle" font-size="9"'));
    }
    out.push(text(x0 + slot / 2, B + 16, s.label, 'text-anchor="middle"'));
  });
  out.push(text(L, B + 40, 'layer: after the sublayer', 'fill="#555"'));
  out.push(`<rect x="${L + 200}" y="${B + 30}" width="10" height="10" fill="#1f77b4"/>`, text(L + 214, B + 39, 'attention out (o_proj)'));
  out.push(`<rect x="${L + 360}" y="${B + 30}" width="10" height="10" fill="#2ca02c"/>`, text(L + 374, B + 39, 'MLP out (down_proj)'));
  out.push(text(L, B + 70, command, 'fill="#555" font-family="monospace"'));
  return svg(W, H, 'Residual stream RMS by layer', out, 'residual');
}

// ---- 4. masks ----

/** Allowed (1) or masked (0) for T queries and keys, from layers/mask.ts. */
export function maskGrid(T: number, slidingWindow: number | null, padding: Int32Array | null): number[] {
  const bias = attentionBias({ batch: 1, queryLen: T, keyLen: T, slidingWindow, attentionMask: padding });
  const data = bias.dataSync();
  bias.dispose();
  return Array.from(data, (x) => (x === 0 ? 1 : 0));
}

export function maskFigure(T = 8, window = 3, pad = 2): string {
  const padding = Int32Array.from({ length: T }, (_, k) => (k < pad ? 0 : 1));
  const grids = [
    { name: 'causal', note: 'key k <= query q', g: maskGrid(T, null, null) },
    { name: `sliding window ${window}`, note: `and q - k < ${window}`, g: maskGrid(T, window, null) },
    { name: `left padding (${pad} pad tokens)`, note: 'and attention_mask[k] = 1', g: maskGrid(T, null, padding) },
  ];
  const cell = 18;
  const side = T * cell;
  const gap = 60;
  const left = 40;
  const top = 70;
  const W = Math.max(left + grids.length * (side + gap), 800);
  const H = top + side + 90;
  const out: string[] = [];
  out.push(text(10, 18, `Which keys each query may see: layers/mask.ts attentionBias for ${T} positions`, 'font-weight="bold"'));
  out.push(text(10, 36, 'dark = allowed (bias 0), white = masked (bias = lowest float32, so softmax gives it 0)'));
  grids.forEach((m, n) => {
    const x0 = left + n * (side + gap);
    out.push(text(x0, top - 18, m.name, 'font-weight="bold"'), text(x0, top - 5, m.note));
    for (let q = 0; q < T; q++) {
      for (let k = 0; k < T; k++) {
        out.push(`<rect class="maskcell" data-allowed="${m.g[q * T + k]}" x="${x0 + k * cell}" y="${top + q * cell}" width="${cell - 1}" height="${cell - 1}" fill="${m.g[q * T + k] ? '#08306b' : '#fff'}" stroke="#bbb" stroke-width="0.5"/>`);
      }
    }
    out.push(text(x0, top + side + 16, 'key position k \u2192'), text(x0 - 6, top + side / 2, 'q', 'text-anchor="end"'));
  });
  out.push(text(10, H - 42, 'Row 0 has one allowed key, itself: causal attention gives position 0 nothing else to weigh, so its output is its own value vector.'));
  out.push(text(10, H - 24, 'A padding query row (rows 0-1, right) has no allowed key: softmax sees equal masked values; that output belongs to padding and is never used.'));
  out.push(text(10, H - 6, 'Phi-4-mini\'s sliding_window (262144) is longer than its context, so its window never bites; the window of 3 here is for illustration.', 'fill="#555"'));
  return svg(W, H, 'Attention masks as grids', out, 'masks');
}

// ---- 5. GQA ----

export function gqaFigure(cfgs: { name: string; cfg: Phi3Config }[]): string {
  const W = 760;
  const rowH = 120;
  const H = 40 + rowH * cfgs.length + 20;
  const out: string[] = [];
  out.push(text(10, 18, 'Grouped-query attention: query head h reads key/value head floor(h / g), g = query heads / kv heads', 'font-weight="bold"'));
  cfgs.forEach(({ name, cfg }, n) => {
    const nh = cfg.numHeads;
    const nkv = cfg.numKvHeads;
    const g = nh / nkv;
    const y0 = 40 + n * rowH;
    out.push(text(10, y0 + 12, `${name}: ${nh} query heads, ${nkv} key/value heads, g = ${g}`));
    const qw = (W - 40) / nh;
    const kw = (W - 40) / nkv;
    const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
    for (let k = 0; k < nkv; k++) {
      out.push(`<rect class="kvhead" x="${r1(20 + k * kw + 2)}" y="${y0 + 80}" width="${r1(kw - 4)}" height="18" fill="${colors[k % 8]}" fill-opacity="0.35" stroke="${colors[k % 8]}"/>`);
      out.push(text(20 + k * kw + kw / 2, y0 + 93, `kv ${k}`, 'text-anchor="middle"'));
    }
    for (let h = 0; h < nh; h++) {
      const k = Math.floor(h / g);
      const cx = 20 + h * qw + qw / 2;
      out.push(`<rect class="qhead" x="${r1(20 + h * qw + 1)}" y="${y0 + 22}" width="${r1(qw - 2)}" height="18" fill="${colors[k % 8]}" fill-opacity="0.8"/>`);
      out.push(text(cx, y0 + 35, String(h), 'text-anchor="middle" fill="#fff" font-size="9"'));
      out.push(line(cx, y0 + 40, 20 + k * kw + kw / 2, y0 + 80, `stroke="${colors[k % 8]}" stroke-opacity="0.6"`));
    }
  });
  out.push(text(10, H - 6, 'From the configs (num_attention_heads, num_key_value_heads); layers/attention.ts stacks each group\'s g query heads against their one key head.', 'fill="#555"'));
  return svg(W, H, 'GQA head sharing', out, 'gqa');
}

/** Element counts a rendered figure must have (the browser test and the unit test check them). */
export function expectedCounts(cfg: Phi3Config, real: Phi3Config, T = 8): Record<string, Record<string, number>> {
  return {
    rope: { 'circle.pair': real.rope.rotaryDim, 'polyline.series': 2, 'rect.dim': real.headDim },
    masks: { 'rect.maskcell': 3 * T * T },
    gqa: { 'rect.qhead': real.numHeads + cfg.numHeads, 'rect.kvhead': real.numKvHeads + cfg.numKvHeads },
    residual: { 'rect.bar': 1 + 4 * cfg.numLayers },
    'attention-short': { 'g[data-map]': cfg.numLayers * cfg.numHeads },
    'attention-long': { 'g[data-map]': cfg.numLayers * cfg.numHeads },
  };
}

// ---- the set the walkthrough shows ----

/** The toy model's two prompts: 12 letters twice (25 tokens, short factors), 20 twice (41, long). */
export const TOY_PROMPTS = {
  short: '<s> q u i c k b r o w n f x q u i c k b r o w n f x',
  long: '<s> q u i c k b r o w n f x j m p s v l a z q u i c k b r o w n f x j m p s v l a z',
};
export const TOY_SOURCE = 'golden/models/phi4-toy-induction';
export const REAL_SOURCE = 'golden/configs/phi-4-mini-instruct.json';

export interface FigureSet {
  svgs: Map<string, string>;
  runs: { short: AttentionRun; long: AttentionRun };
  /** The toy model's config. */
  config: Phi3Config;
}

/** Every figure of the walkthrough, from running the toy model (backend as set) and from the real config. */
export function walkthroughFigures(): FigureSet {
  const real = loadRealConfig();
  const model = Phi3Model.load(TOY_DIR);
  try {
    const tok = loadTokenizer(TOY_DIR)!;
    const run = (prompt: string) => {
      const ids = tok.encode(prompt);
      return attentionRun(model, ids, prompt.split(' '));
    };
    const runs = { short: run(TOY_PROMPTS.short), long: run(TOY_PROMPTS.long) };

    const svgs = new Map<string, string>([
      ['rope', ropeFigure(real, REAL_SOURCE)],
      ['attention-short', attentionFigure(runs.short, model.config, TOY_SOURCE, 'npm run docs (src/teach/figures/figures.ts), cpu backend')],
      ['attention-long', attentionFigure(runs.long, model.config, TOY_SOURCE, 'npm run docs (src/teach/figures/figures.ts), cpu backend')],
      ['residual', residualFigure(residualRun(model, runs.long.ids), `${TOY_SOURCE}, the 41-token prompt`, 'npm run docs (src/teach/figures/figures.ts), cpu backend')],
      ['masks', maskFigure()],
      ['gqa', gqaFigure([{ name: `Phi-4-mini (${REAL_SOURCE})`, cfg: real }, { name: `toy (${TOY_SOURCE})`, cfg: model.config }])],
    ]);

    return { svgs, runs, config: model.config };
  } finally {
    model.dispose();
  }
}


