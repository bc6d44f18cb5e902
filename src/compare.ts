// `phi4 compare`: two sets of named tensors (a reference dump and a candidate runtime's dump)
// judged tap by tap in forward order. Pure: tensors come in as named entries, a report comes out.
// The command (src/commands/compare.ts) reads the files; docs/compare.md documents the presets.

import { SafetensorsFile, isFloatDType } from '../weights/index.js';
import { type MapSpec, applyMap } from './compare-map.js';
import { F32_TOLERANCE } from './golden.js';
import { InputError } from './model.js';
import { type Numeric, maxAbs, relL2, selectPositions } from './metrics.js';
import { seqAxis, tapInfo, tapNames } from './taps.js';

/** One named tensor, read on demand (a real model's dump is large; only two tensors live at a time). */
export interface Entry {
  shape: number[];
  /** Integer dtype (ids, masks): compared exactly, never as a tap. */
  int: boolean;
  read(): Numeric;
}
export type Entries = Map<string, Entry>;

/**
 * Relative-L2 tolerances per tap, from measurement (docs/compare.md):
 *  fp32  float32 noise: transformers' own float32 error against float64 is <= 1.1e-6 on every
 *        golden tap; F32_TOLERANCE (src/golden.ts) is 1e-5, and ONNX Runtime meets it.
 *  bf16  transformers on CUDA in bf16 against float32 reaches 1.2e-2 (phi4-mini-tiny, 4 layers);
 *        the preset is 4x that, rounded: 5e-2.
 *  fp16  not measured: fp16 has 3 more mantissa bits than bf16 (unit roundoff 2^-11 vs 2^-8),
 *        so its rounding noise is 8x smaller; the bf16 preset / 8, rounded up: 7e-3.
 */
export const PRESETS = { fp32: F32_TOLERANCE, bf16: 5e-2, fp16: 7e-3 } as const;
export type Preset = keyof typeof PRESETS;

export const INPUT_NAMES = ['input_ids', 'attention_mask', 'position_ids'];

export interface LogitStats {
  /** Positions whose argmax agrees, of `positions`. */
  top1: number;
  positions: number;
  /** KL(softmax(reference) || softmax(candidate)) per position, in nats: mean and max. */
  klMean: number;
  klMax: number;
}

export interface TapResult {
  name: string;
  shape: number[];
  relL2: number;
  maxAbs: number;
  cosine: number;
  ok: boolean;
  logits?: LogitStats;
}

export interface CompareReport {
  tolerance: number;
  preset: Preset | 'custom';
  /** Number of (batch, position) pairs compared, when an attention_mask restricted them. */
  maskedPositions?: { kept: number; total: number };
  taps: TapResult[];
  onlyReference: string[];
  onlyCandidate: string[];
  firstDivergent: string | null;
  diagnosis: string;
  ok: boolean;
}

/** Forward order: the tap table's order for as many layers as either side has, then the rest by name. */
export function forwardOrder(names: string[]): string[] {
  let layers = 0;
  for (const n of names) {
    const m = /^layers\.(\d+)\./.exec(n);
    if (m) layers = Math.max(layers, Number(m[1]) + 1);
  }
  const rank = new Map(tapNames(layers).map((n, i) => [n, i]));
  return names.slice().sort((a, b) => {
    const ra = rank.get(a) ?? Infinity;
    const rb = rank.get(b) ?? Infinity;
    return ra !== rb ? ra - rb : a < b ? -1 : a > b ? 1 : 0;
  });
}

export function cosine(a: Numeric, b: Numeric): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa === 0 && bb === 0) return 1;
  return ab / Math.sqrt(aa * bb);
}

/** log softmax of row `x[off .. off + V)` in float64 (max subtracted first). */
function logSoftmax(x: Numeric, off: number, V: number, out: Float64Array): void {
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, x[off + i]);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(x[off + i] - m);
  const lse = m + Math.log(s);
  for (let i = 0; i < V; i++) out[i] = x[off + i] - lse;
}

/** Top-1 agreement and KL(P_ref || P_cand) over the rows of [rows, V] logits. */
export function logitStats(cand: Numeric, ref: Numeric, V: number): LogitStats {
  const rows = ref.length / V;
  const lp = new Float64Array(V);
  const lq = new Float64Array(V);
  let top1 = 0;
  let klSum = 0;
  let klMax = 0;
  for (let r = 0; r < rows; r++) {
    logSoftmax(ref, r * V, V, lp);
    logSoftmax(cand, r * V, V, lq);
    let kl = 0;
    let ap = 0;
    let aq = 0;
    for (let i = 0; i < V; i++) {
      const p = Math.exp(lp[i]);
      if (p > 0) kl += p * (lp[i] - lq[i]);
      if (lp[i] > lp[ap]) ap = i;
      if (lq[i] > lq[aq]) aq = i;
    }
    kl = Math.max(kl, 0); // rounding can leave -1e-17 when the two agree
    if (ap === aq) top1++;
    klSum += kl;
    if (!(kl <= klMax)) klMax = kl;
  }
  return { top1, positions: rows, klMean: rows ? klSum / rows : 0, klMax };
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Where the first divergent tap sits, and what usually goes wrong there. */
const HINTS: [RegExp, string][] = [
  [/^embed$/, 'the embedding lookup differs: check the tokens, the embedding table and its dtype'],
  [/^rope\.(cos|sin)$/, 'the rotary tables differ: check rope_theta, partial_rotary_factor, the LongRoPE factor set chosen for this length and the attention scaling'],
  [/\.input_norm$/, "the pre-attention RMSNorm differs: check eps, float32 statistics and that the weight multiplies after normalising"],
  [/\.qkv$/, 'the fused qkv projection differs: check the weight layout [(nh+2nkv)d, H] and the split order q, k, v'],
  [/\.(q_rot|k_rot)$/, 'the rotary embedding differs: check rotate-half vs interleaved pairs, partial rotary (only the first r dims rotate), the factor set and the positions'],
  [/\.attn_probs$/, 'the attention weights differ: check the 1/sqrt(d) scale, the causal / sliding-window / padding mask and GQA head sharing (query head h reads key head h / (nh/nkv))'],
  [/\.attn_out$/, 'the attention output differs: check probs x V, GQA sharing and the head concatenation order [B,T,nh,d] -> [B,T,nh*d]'],
  [/\.o_proj$/, 'the o_proj output differs: check its weight layout [H, nh*d]'],
  [/\.post_attn_residual$/, 'the residual add after attention differs'],
  [/\.post_attn_norm$/, 'the post-attention RMSNorm differs: check eps and float32 statistics'],
  [/\.gate_up$/, 'the fused gate_up projection differs: check the layout (I gate rows, then I up rows)'],
  [/\.mlp_act$/, 'the MLP activation differs: silu(gate) * up, gate first'],
  [/\.mlp_out$/, 'the down projection differs: check its weight layout [H, I]'],
  [/\.out$/, 'the decoder layer output differs; dump the layer\'s inner taps (input_norm .. mlp_out) to see which step'],
  [/^final_norm$/, 'the final RMSNorm differs'],
  [/^logits$/, 'the head differs: check lm_head (tied to embed_tokens for Phi-4-mini) and its dtype'],
];

function hint(name: string): string {
  for (const [re, text] of HINTS) if (re.test(name)) return text;
  return 'not a tap of the table (src/taps.ts); no diagnosis for it';
}

const fmt = (x: number) => (x === 0 ? '0' : Number.isFinite(x) ? x.toExponential(1) : String(x));

function diagnose(taps: TapResult[], first: TapResult | undefined, tol: number): string {
  if (!first) {
    const worst = taps.reduce((w, t) => (t.relL2 > w.relL2 ? t : w), taps[0]);
    return `all ${taps.length} common taps within rel L2 ${fmt(tol)}; worst ${worst.name} at ${fmt(worst.relL2)}`;
  }
  const i = taps.indexOf(first);
  const before = i > 0 ? `; the tap before it, ${taps[i - 1].name}, agrees (${fmt(taps[i - 1].relL2)})` : '';
  const size = Number.isNaN(first.relL2) ? 'non-finite values (NaN or Inf)' : `rel L2 ${fmt(first.relL2)} > ${fmt(tol)}, max|d| ${fmt(first.maxAbs)}`;
  return `first divergence at ${first.name} (${size})${before}: ${hint(first.name)}`;
}

/** Compares exactly; throws an InputError when the two runs were not given the same inputs. */
function checkInputs(ref: Entries, cand: Entries): void {
  for (const name of INPUT_NAMES) {
    const a = ref.get(name);
    const b = cand.get(name);
    if (!a || !b) continue;
    if (!sameShape(a.shape, b.shape)) throw new InputError(`${name}: the two dumps were run on different inputs (shape [${a.shape}] vs [${b.shape}])`);
    const x = a.read();
    const y = b.read();
    for (let i = 0; i < x.length; i++) {
      if (x[i] !== y[i]) throw new InputError(`${name}: the two dumps were run on different inputs (element ${i}: ${x[i]} vs ${y[i]})`);
    }
  }
}

export interface CompareOptions {
  tolerance?: number;
  preset?: Preset;
}

/**
 * Every tap present in both, in forward order: rel L2, max |diff|, cosine (and for logits top-1
 * agreement and KL). Where an attention_mask with padding is present, only its real positions
 * count. Different shapes or different inputs are bad input (InputError).
 */
export function compare(ref: Entries, cand: Entries, opts: CompareOptions = {}): CompareReport {
  const preset = opts.preset ?? 'fp32';
  const tol = opts.tolerance ?? PRESETS[preset];
  checkInputs(ref, cand);
  const isTap = (n: string, e: Entry) => !e.int && !INPUT_NAMES.includes(n);
  const refNames = [...ref].filter(([n, e]) => isTap(n, e)).map(([n]) => n);
  const candNames = [...cand].filter(([n, e]) => isTap(n, e)).map(([n]) => n);
  const common = forwardOrder(refNames.filter((n) => cand.has(n) && isTap(n, cand.get(n)!)));
  if (common.length === 0) {
    throw new InputError(`no tensor name in common (reference: ${refNames.slice(0, 4).join(', ') || 'none'}...; candidate: ${candNames.slice(0, 4).join(', ') || 'none'}...); rename with --map`);
  }
  for (const n of common) {
    const a = ref.get(n)!.shape;
    const b = cand.get(n)!.shape;
    if (!sameShape(a, b)) throw new InputError(`${n}: shapes differ: reference [${a}], candidate [${b}] (layout ${tapInfo(n)?.layout ?? 'unknown'}; transpose with --map)`);
  }

  const maskEntry = ref.get('attention_mask') ?? cand.get('attention_mask');
  const mask = maskEntry ? maskEntry.read() : null;
  const padded = mask !== null && mask.some((v) => v === 0);
  const report: CompareReport = {
    tolerance: tol, preset: opts.tolerance !== undefined ? 'custom' : preset, taps: [],
    onlyReference: forwardOrder(refNames.filter((n) => !cand.has(n))),
    onlyCandidate: forwardOrder(candNames.filter((n) => !ref.has(n))),
    firstDivergent: null, diagnosis: '', ok: true,
  };
  if (padded) {
    let kept = 0;
    for (const v of mask!) if (v) kept++;
    report.maskedPositions = { kept, total: mask!.length };
  }

  for (const name of common) {
    const shape = ref.get(name)!.shape;
    let a = cand.get(name)!.read();
    let b = ref.get(name)!.read();
    const axis = tapInfo(name) ? seqAxis(name) : -1;
    const [B, T] = [shape[0], axis >= 0 ? shape[axis] : -1];
    if (padded && axis > 0 && B * T === mask!.length) {
      a = selectPositions(a, shape, axis, mask!);
      b = selectPositions(b, shape, axis, mask!);
    }
    const r: TapResult = { name, shape, relL2: relL2(a, b), maxAbs: maxAbs(a, b), cosine: cosine(a, b), ok: true };
    r.ok = r.relL2 <= tol && Number.isFinite(r.maxAbs);
    if (!Number.isFinite(r.maxAbs)) r.relL2 = NaN;
    if (name === 'logits') r.logits = logitStats(a, b, shape[shape.length - 1]);
    report.taps.push(r);
  }
  const first = report.taps.find((t) => !t.ok);
  report.firstDivergent = first?.name ?? null;
  report.ok = !first;
  report.diagnosis = diagnose(report.taps, first, tol);
  return report;
}

/** A dump's provenance for the report header: its path, and who wrote it when it is ours. */
function describe(path: string, f: SafetensorsFile): string {
  const m = f.metadata;
  return m.format === 'phi4-ts.dump' ? `${path} (phi4-ts ${m.project_version}, backend ${m.backend})` : path;
}

export interface FileComparison {
  report: CompareReport;
  labels: { reference: string; candidate: string };
}

/** Opens both files (bad or missing files are WeightsErrors naming them), maps and compares. */
export function compareFiles(refPath: string, candPath: string, opts: CompareOptions & { map?: MapSpec | null } = {}): FileComparison {
  const ref = SafetensorsFile.open(refPath);
  try {
    const cand = SafetensorsFile.open(candPath);
    try {
      let a = fileEntries(ref);
      let b = fileEntries(cand);
      const map = opts.map;
      if (map && map.applyTo !== 'candidate') a = applyMap(a, map, 'reference');
      if (map && map.applyTo !== 'reference') b = applyMap(b, map, 'candidate');
      return { report: compare(a, b, opts), labels: { reference: describe(refPath, ref), candidate: describe(candPath, cand) } };
    } finally {
      cand.close();
    }
  } finally {
    ref.close();
  }
}

/** The tensors of an open safetensors file as entries (floats read as float32, F64 as float64). */
export function fileEntries(f: SafetensorsFile): Entries {
  const out: Entries = new Map();
  for (const t of f.tensors()) {
    const int = !isFloatDType(t.dtype);
    out.set(t.name, {
      shape: t.shape,
      int,
      read: () => (int ? f.readInt32(t.name) : t.dtype === 'F64' ? f.readFloat64(t.name) : f.readFloat32(t.name)),
    });
  }
  return out;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** The report as the lines `phi4 compare` prints. */
export function formatReport(r: CompareReport, labels: { reference: string; candidate: string }): string {
  const out: string[] = [];
  out.push(`reference: ${labels.reference}`);
  out.push(`candidate: ${labels.candidate}`);
  out.push(`tolerance: rel L2 <= ${r.tolerance.toExponential(1)} on every tap (${r.preset === 'custom' ? '--rtol' : `preset ${r.preset}`})` +
    (r.maskedPositions ? `; padded batch: ${r.maskedPositions.kept} of ${r.maskedPositions.total} positions compared (attention_mask = 1)` : ''));
  const w = Math.max(24, ...r.taps.map((t) => t.name.length + 2));
  out.push(`  ${pad('tap', w)}${pad('shape', 16)}${lpad('rel L2', 9)}${lpad('max|d|', 9)}${lpad('cosine', 12)}  ok`);
  for (const t of r.taps) {
    let line = `  ${pad(t.name, w)}${pad(t.shape.join('x'), 16)}${lpad(fmt(t.relL2), 9)}${lpad(fmt(t.maxAbs), 9)}${lpad(t.cosine.toFixed(8), 12)}  ${t.ok ? 'ok' : 'DIVERGES'}`;
    if (t.logits) line += `   top-1 ${t.logits.top1}/${t.logits.positions}, KL mean ${fmt(t.logits.klMean)} max ${fmt(t.logits.klMax)}`;
    out.push(line);
  }
  const list = (names: string[]) => (names.length <= 10 ? names.join(', ') : `${names.slice(0, 8).join(', ')}, ... (${names.length - 8} more; --json lists all)`);
  if (r.onlyReference.length) out.push(`only in reference (${r.onlyReference.length}): ${list(r.onlyReference)}`);
  if (r.onlyCandidate.length) out.push(`only in candidate (${r.onlyCandidate.length}): ${list(r.onlyCandidate)}`);
  out.push(`${r.ok ? 'PASS' : 'FAIL'}: ${r.diagnosis}`);
  return out.join('\n');
}
