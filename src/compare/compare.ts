// `phi4 compare`: two sets of named tensors (a reference dump and a candidate runtime's dump)
// judged tap by tap in forward order. Pure: tensors come in as named entries, a report comes out.
// The command (src/cli/commands/compare.ts) reads the files; docs/compare.md documents the presets.

import { isAbsolute } from 'node:path';
import { SafetensorsFile, isFloatDType } from '../../weights/index.js';
import { type MapSpec, applyMap } from './map.js';
import { F32_TOLERANCE } from '../oracle/golden.js';
import { InputError } from '../errors.js';
import { loadConfig } from '../model/config.js';
import { type RopeConfig } from '../../layers/rotary.js';
import { type RopeFingerprint, ropeFingerprint } from './diagnose/rope-fingerprint.js';
import { type WindowFingerprint, windowFromPositions, windowFromProbs } from './diagnose/sliding-window.js';
import { detectMap } from './maps/index.js';
import type { BlameReport } from './diagnose/blame.js';
import { type Numeric, maxAbs, relL2, relL2Along, rmsOf, selectPositions } from '../oracle/metrics.js';
import { HEAD_TAPS, LAYER_TAPS, MODEL_TAPS, seqAxis, tapInfo } from '../../layers/taps.js';

/** One named tensor, read on demand (a real model's dump is large; only two tensors live at a time). */
import type { Entries, Entry } from './entries.js';

export type { Entries, Entry };

/**
 * Relative-L2 tolerances per tap, from measurement (docs/compare.md, docs/fidelity.md):
 *  fp32  1e-5: the default backend is within 4.8e-7 of float64 on every tap of the full-size
 *        32-layer model (21x margin), an honest float32 with blocked sums within 2.6e-6 (3.8x).
 *  bf16  6e-2: the float64 reference storing its activations in bf16 reaches 3.0e-2 on the
 *        full-size 32-layer model (32 ids; 512 ids change a 4-layer model's worst by 1.02x), and
 *        transformers on CUDA in bf16 matched that emulation on the 4-layer tiny model; 2x margin.
 *  fp16  8e-3: the same emulation in float16 reaches 3.7e-3; 2x margin, rounded up.
 */
export const PRESETS = { fp32: F32_TOLERANCE, bf16: 6e-2, fp16: 8e-3 } as const;
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
  /**
   * Why the tap could not be compared numerically (shapes or dtypes differ). Such a tap is listed,
   * named in the verdict and never passes; its numbers are NaN.
   */
  finding?: string;
  /** rel L2 per query position (over the batch), for taps with a position axis. */
  positions?: number[];
  /** Root mean square of `positions`: a tap passes only when this is within tolerance too. */
  positionRms?: number;
  /** rel L2 per head, for taps with a head axis (q_rot, k_rot, attn_probs; attn_out split by heads). */
  heads?: number[];
}

/** The provenance our dumps record (src/oracle/dump.ts); another runtime's dump may have none. */
export interface DumpMeta {
  checkpoint?: string;
  config_hash?: string;
  /** The context a runtime allocated, where its dump records one (tools/llamacpp/phi4-tapdump). */
  n_ctx?: string;
}

export interface CompareReport {
  tolerance: number;
  preset: Preset | 'custom';
  /** Number of (batch, position) pairs compared, when an attention_mask restricted them. */
  maskedPositions?: { kept: number; total: number };
  taps: TapResult[];
  onlyReference: string[];
  onlyCandidate: string[];
  /** onlyCandidate with layer numbers folded: "blk.N.attn_norm" and how many names it stands for. */
  onlyCandidateSummary: { pattern: string; count: number }[];
  /** Taps that could not be compared numerically (shape, dtype), in forward order. */
  findings: string[];
  /** Both dumps' provenance, and whether they come from the same config / checkpoint. */
  metadata?: { reference: DumpMeta; candidate: DumpMeta; sameConfig: boolean | null; sameCheckpoint: boolean | null };
  firstDivergent: string | null;
  diagnosis: string;
  ok: boolean;
  /** Which LongRoPE factor set the candidate used, when a rotary tap diverges (and the config is known). */
  ropeFingerprint?: RopeFingerprint;
  /** Whether the candidate kept the sliding window, when a layer diverges and the config has one. */
  windowFingerprint?: WindowFingerprint;
  /** Per-step local errors (--blame): src/compare/diagnose/blame.ts. */
  blame?: BlameReport;
  /** With a reference run on the candidate's quantized weights (--weights-reference): see compareQuantized. */
  quantization?: QuantizationReport;
}

/** Per tap: the candidate's distance from the float reference and from the quantized-weights one. */
export interface QuantizedTap {
  name: string;
  /** rel L2 of the candidate against the float reference. */
  fromFloat: number;
  /** rel L2 of the candidate against the reference run on the same quantized weights. */
  fromQuantized: number;
  /** rel L2 of the quantized-weights reference against the float one: the quantization's own error. */
  quantizationError: number;
  /** What explains the candidate's error from the float reference at this tap. */
  explainedBy: 'nothing to explain' | 'weight quantization' | 'the candidate';
}

export interface QuantizationReport {
  taps: QuantizedTap[];
  /** The verdict's basis: the candidate against the quantized-weights reference. */
  worstFromFloat: { name: string; relL2: number } | null;
}

/**
 * Forward order: model taps, then each layer's taps in table order (layers by number), then the
 * head, then the rest by name. Computed from each name alone, so a name like layers.20000000.out
 * costs nothing (no table of every layer up to it is built).
 */
export function forwardOrder(names: string[]): string[] {
  const model = Object.keys(MODEL_TAPS);
  const layer = Object.keys(LAYER_TAPS);
  const head = Object.keys(HEAD_TAPS);
  const key = (n: string): [number, number, number] => {
    if (model.includes(n)) return [0, 0, model.indexOf(n)];
    const m = /^layers\.(\d+)\.(.+)$/.exec(n);
    if (m && layer.includes(m[2])) return [1, Number(m[1]), layer.indexOf(m[2])];
    if (head.includes(n)) return [2, 0, head.indexOf(n)];
    return [3, 0, 0];
  };
  const keys = new Map(names.map((n) => [n, key(n)]));
  return names.slice().sort((a, b) => {
    const ka = keys.get(a)!;
    const kb = keys.get(b)!;
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2] || (a < b ? -1 : a > b ? 1 : 0);
  });
}

/** Names with their numbers folded to N, each pattern with its count, most frequent first. */
export function summariseNames(names: string[]): { pattern: string; count: number }[] {
  const counts = new Map<string, number>();
  for (const n of names) {
    const p = n.replace(/\d+/g, 'N');
    counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  return [...counts].map(([pattern, count]) => ({ pattern, count })).sort((a, b) => b.count - a.count || (a.pattern < b.pattern ? -1 : 1));
}

/** cos(a, b), each side divided by its largest |x| first, so that no finite input overflows. */
export function cosine(a: Numeric, b: Numeric): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i]);
    const y = Math.abs(b[i]);
    if (!(x <= ma)) ma = x;
    if (!(y <= mb)) mb = y;
  }
  if (ma === 0 && mb === 0) return 1;
  if (ma === 0 || mb === 0) return 0;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] / ma;
    const y = b[i] / mb;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
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
  return 'not a tap of the table (layers/taps.ts); no diagnosis for it';
}

const fmt = (x: number) => (x === 0 ? '0' : Number.isFinite(x) ? x.toExponential(1) : String(x));

/** Indices as ranges: [1, 2, 3, 7] -> "1-3, 7". */
export function ranges(ix: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ix.length; i++) {
    let j = i;
    while (j + 1 < ix.length && ix[j + 1] === ix[j] + 1) j++;
    out.push(j > i ? `${ix[i]}-${ix[j]}` : String(ix[i]));
    i = j;
  }
  return out.join(', ');
}

/** Which heads / positions carry a divergent tap's error: those over tolerance (or NaN). */
export function detail(t: TapResult, tol: number): string {
  const over = (xs: number[]) => xs.flatMap((x, i) => (x <= tol ? [] : [i]));
  const parts: string[] = [];
  if (t.heads) {
    const h = over(t.heads);
    if (h.length && h.length < t.heads.length) parts.push(`head${h.length > 1 ? 's' : ''} ${ranges(h)} of ${t.heads.length} (worst ${fmt(Math.max(...h.map((i) => t.heads![i])))}; others <= ${fmt(Math.max(0, ...t.heads.filter((_, i) => !h.includes(i))))})`);
    else if (h.length) parts.push(`all ${t.heads.length} heads`);
  }
  if (t.positions) {
    const p = over(t.positions);
    if (p.length && p.length < t.positions.length) parts.push(`position${p.length > 1 ? 's' : ''} ${ranges(p)} of ${t.positions.length}`);
    else if (p.length) parts.push(`all ${t.positions.length} positions`);
  }
  return parts.join('; ');
}

function describeMeta(m: DumpMeta): string {
  return `${m.checkpoint ?? 'unknown checkpoint'} (config ${m.config_hash ?? 'unknown'})`;
}

function diagnose(r: CompareReport, first: TapResult | undefined, tol: number): string {
  const taps = r.taps;
  const parts: string[] = [];
  if (r.metadata?.sameConfig === false) {
    parts.push(`different checkpoint/config: reference ${describeMeta(r.metadata.reference)}, candidate ${describeMeta(r.metadata.candidate)}; the dumps come from different models, so differences below are expected`);
  }
  if (!first) {
    const worst = taps.reduce((w, t) => (t.relL2 > w.relL2 ? t : w), taps[0]);
    parts.push(`all ${taps.length} common taps within rel L2 ${fmt(tol)}; worst ${worst.name} at ${fmt(worst.relL2)}`);
    return parts.join('; ');
  }
  const i = taps.indexOf(first);
  const prev = i > 0 ? taps[i - 1] : undefined;
  const before = prev ? `; the tap before it, ${prev.name}, ${prev.ok ? `agrees (${fmt(prev.relL2)})` : 'could not be compared'}` : '';
  let size: string;
  if (first.finding) size = `cannot compare: ${first.finding}`;
  else if (Number.isNaN(first.relL2)) size = 'non-finite values (NaN or Inf)';
  else if (first.relL2 <= tol) size = `rel L2 ${fmt(first.relL2)} overall, but the per-position rel L2 (RMS ${fmt(first.positionRms!)}) > ${fmt(tol)}: a few large values hide the error elsewhere`;
  else size = `rel L2 ${fmt(first.relL2)} > ${fmt(tol)}, max|d| ${fmt(first.maxAbs)}`;
  const where = first.finding ? '' : detail(first, tol);
  parts.push(`first divergence at ${first.name} (${size}${where ? `; ${where}` : ''})${before}: ${hint(first.name)}`);
  const others = r.findings.filter((n) => n !== first.name);
  if (others.length) parts.push(`${others.length} more tap${others.length > 1 ? 's' : ''} could not be compared numerically: ${others.slice(0, 6).join(', ')}${others.length > 6 ? ', ...' : ''}`);
  return parts.join('; ');
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
  /** The reference model's rotary config, for the LongRoPE fingerprint (compareFiles reads it from the reference's checkpoint). */
  rope?: RopeConfig;
  /** The reference model's sliding window, for the sliding-window fingerprint (compareFiles reads it too). */
  slidingWindow?: number | null;
  /** Each dump's recorded provenance (compareFiles reads it from the files' metadata). */
  metadata?: { reference: DumpMeta; candidate: DumpMeta };
}

/** Why two same-named tensors cannot be compared numerically, or null when they can. */
function incomparable(name: string, a: Entry, b: Entry): string | null {
  if (a.int !== b.int) return `dtypes differ: reference ${a.int ? 'integer' : 'float'}, candidate ${b.int ? 'integer' : 'float'}`;
  if (!sameShape(a.shape, b.shape)) {
    const layout = tapInfo(name)?.layout;
    let why = `shapes differ: reference [${a.shape}], candidate [${b.shape}]${layout ? ` (layout ${layout}; transpose with --map)` : ''}`;
    if (/^rope\.(cos|sin)$/.test(name) && a.shape.length === b.shape.length && a.shape.slice(0, -1).every((x, i) => x === b.shape[i])) {
      why += `; the candidate rotates ${b.shape.at(-1)} dims where the reference rotates ${a.shape.at(-1)}: check partial_rotary_factor`;
    }
    return why;
  }
  return null;
}

/** The head axis of a tap as a view of its shape: [shape, axis], or null when it has none. */
function headView(name: string, shape: number[], ref: Entries): [number[], number] | null {
  const m = /^layers\.(\d+)\.(q_rot|k_rot|attn_probs|attn_out)$/.exec(name);
  if (!m) return null;
  if (m[2] !== 'attn_out') return shape.length === 4 ? [shape, 1] : null;
  // [B,T,nh*d] is [B,T,nh,d] in memory; nh comes from the same layer's queries
  const q = ref.get(`layers.${m[1]}.q_rot`) ?? ref.get(`layers.${m[1]}.attn_probs`);
  const nh = q?.shape.length === 4 ? q.shape[1] : 0;
  if (shape.length !== 3 || !nh || shape[2] % nh) return null;
  return [[shape[0], shape[1], nh, shape[2] / nh], 2];
}

/**
 * Every tap present in both, in forward order: rel L2, max |diff|, cosine, per-position and
 * per-head rel L2 (and for logits top-1 agreement and KL). Where an attention_mask with padding is
 * present, only its real positions count. A tap whose shapes or dtypes differ is a finding: listed,
 * named in the verdict, never passing. Different inputs are bad input (InputError).
 */
export function compare(ref: Entries, cand: Entries, opts: CompareOptions = {}): CompareReport {
  const preset = opts.preset ?? 'fp32';
  const tol = opts.tolerance ?? PRESETS[preset];
  try {
    checkInputs(ref, cand);
  } catch (e) {
    const m = opts.metadata;
    if (!(e instanceof InputError) || !m?.reference.config_hash || !m.candidate.config_hash || m.reference.config_hash === m.candidate.config_hash) throw e;
    throw new InputError(`different checkpoint/config: reference ${describeMeta(m.reference)}, candidate ${describeMeta(m.candidate)}; and ${e.message}`);
  }
  const isTap = (n: string) => !INPUT_NAMES.includes(n);
  const refNames = [...ref.keys()].filter(isTap);
  const candNames = [...cand.keys()].filter(isTap);
  const common = forwardOrder(refNames.filter((n) => cand.has(n)));
  if (common.length === 0) {
    throw new InputError(`no tensor name in common (reference: ${refNames.slice(0, 4).join(', ') || 'none'}...; candidate: ${candNames.slice(0, 4).join(', ') || 'none'}...); rename with --map`);
  }

  const maskEntry = ref.get('attention_mask') ?? cand.get('attention_mask');
  const mask = maskEntry ? maskEntry.read() : null;
  const padded = mask !== null && mask.some((v) => v === 0);
  const onlyCandidate = forwardOrder(candNames.filter((n) => !ref.has(n)));
  const report: CompareReport = {
    tolerance: tol, preset: opts.tolerance !== undefined ? 'custom' : preset, taps: [],
    onlyReference: forwardOrder(refNames.filter((n) => !cand.has(n))),
    onlyCandidate, onlyCandidateSummary: summariseNames(onlyCandidate), findings: [],
    firstDivergent: null, diagnosis: '', ok: true,
  };
  if (opts.metadata) {
    const { reference: mr, candidate: mc } = opts.metadata;
    const same = (x?: string, y?: string) => (x === undefined || y === undefined ? null : x === y);
    // a runtime that records the checkpoint as it was given (a relative name) is matched by file name
    const base = (x?: string) => x?.split(/[\\/]/).pop();
    const absolute = (x?: string) => x !== undefined && isAbsolute(x);
    const sameCheckpoint = absolute(mr.checkpoint) && absolute(mc.checkpoint) ? same(mr.checkpoint, mc.checkpoint) : same(base(mr.checkpoint), base(mc.checkpoint));
    report.metadata = { reference: mr, candidate: mc, sameConfig: same(mr.config_hash, mc.config_hash), sameCheckpoint };
  }
  if (padded) {
    let kept = 0;
    for (const v of mask!) if (v) kept++;
    report.maskedPositions = { kept, total: mask!.length };
  }

  for (const name of common) {
    const re = ref.get(name)!;
    const ce = cand.get(name)!;
    const shape = re.shape;
    const finding = incomparable(name, re, ce);
    if (finding) {
      report.taps.push({ name, shape, relL2: NaN, maxAbs: NaN, cosine: NaN, ok: false, finding });
      report.findings.push(name);
      continue;
    }
    let a = ce.read();
    let b = re.read();
    const axis = tapInfo(name) ? seqAxis(name) : -1;
    const r: TapResult = { name, shape, relL2: 0, maxAbs: 0, cosine: 0, ok: true };
    if (!padded && axis >= 0) {
      r.positions = relL2Along(a, b, shape, axis);
      r.positionRms = rmsOf(r.positions);
      const hv = headView(name, shape, ref);
      if (hv) r.heads = relL2Along(a, b, hv[0], hv[1]);
    }
    const [B, T] = [shape[0], axis >= 0 ? shape[axis] : -1];
    if (padded && axis > 0 && B * T === mask!.length) {
      a = selectPositions(a, shape, axis, mask!);
      b = selectPositions(b, shape, axis, mask!);
    }
    r.relL2 = relL2(a, b);
    r.maxAbs = maxAbs(a, b);
    r.cosine = cosine(a, b);
    r.ok = r.relL2 <= tol && (r.positionRms ?? 0) <= tol && Number.isFinite(r.maxAbs);
    if (!Number.isFinite(r.maxAbs)) r.relL2 = NaN;
    if (name === 'logits') r.logits = logitStats(a, b, shape[shape.length - 1]);
    report.taps.push(r);
  }
  const first = report.taps.find((t) => !t.ok);
  report.firstDivergent = first?.name ?? null;
  report.ok = !first && report.metadata?.sameConfig !== false;
  report.diagnosis = diagnose(report, first, tol);
  const rot = first && /^(rope\.(cos|sin)|layers\.(\d+)\.(q_rot|k_rot))$/.exec(first.name);
  if (rot && opts.rope) {
    const layer = rot[3] !== undefined ? Number(rot[3]) : 0;
    const qkv = cand.get(`layers.${layer}.qkv`);
    const q = cand.get(`layers.${layer}.q_rot`);
    if (qkv && q && !qkv.int && !q.int) {
      const fp = ropeFingerprint(opts.rope, layer, { shape: qkv.shape, data: qkv.read() }, { shape: q.shape, data: q.read() });
      if (fp) {
        report.ropeFingerprint = fp;
        // a runtime that records its allocated context (phi4-tapdump's n_ctx) shows where the set came from
        const nCtx = Number(opts.metadata?.candidate.n_ctx);
        const allocated = fp.candidate === 'long' && fp.reference === 'short' && nCtx > opts.rope.originalMaxPositions;
        report.diagnosis += `; ${fp.text}${allocated ? `; the candidate's dump records an allocated n_ctx of ${nCtx}, past the original ${opts.rope.originalMaxPositions}` : ''}`;
      }
    }
  }
  const W = opts.slidingWindow;
  const inLayer = first && !first.finding ? /^layers\.(\d+)\.(.+)$/.exec(first.name) : null;
  if (W && inLayer && !report.ropeFingerprint) {
    const probs = `layers.${inLayer[1]}.attn_probs`;
    const rp = ref.get(probs);
    const cp = cand.get(probs);
    const fp = rp && cp && !rp.int && !cp.int && sameShape(rp.shape, cp.shape)
      ? windowFromProbs(W, Number(inLayer[1]), rp.read(), cp.read(), rp.shape)
      : first!.positions ? windowFromPositions(W, first!.name, first!.positions, tol) : null;
    if (fp && (fp.ignored || inLayer[2] === 'attn_probs')) {
      report.windowFingerprint = fp;
      report.diagnosis += `; ${fp.text}`;
    }
  }
  return report;
}

/**
 * Quantization told apart from bugs. `quant` is our reference run on the candidate's own quantized
 * weights (for example `phi4 dump model.Q4_K_M.gguf` on the same inputs): exact math on those
 * weights. The verdict is the candidate against it, so weight quantization is not an error and a
 * kernel bug under quantization noise still diverges; beside it, per tap, the candidate's distance
 * from the float reference and the quantization's own error (quantized reference vs float), and
 * which of the two explains the candidate's error.
 */
export function compareQuantized(ref: Entries, quant: Entries, cand: Entries, opts: CompareOptions = {}): CompareReport {
  const noMeta = { ...opts, metadata: undefined };
  const report = compare(quant, cand, opts.metadata ? { ...opts, metadata: { reference: opts.metadata.reference, candidate: opts.metadata.candidate } } : opts);
  const fromFloat = compare(ref, cand, noMeta);
  const qErr = compare(ref, quant, noMeta);
  const by = (r: CompareReport) => new Map(r.taps.map((t) => [t.name, t]));
  const ff = by(fromFloat);
  const qe = by(qErr);
  const tol = report.tolerance;
  const taps: QuantizedTap[] = [];
  for (const t of report.taps) {
    const f = ff.get(t.name);
    const q = qe.get(t.name);
    if (!f || !q || t.finding) continue;
    const explainedBy = !t.ok ? 'the candidate' : f.ok ? 'nothing to explain' : 'weight quantization';
    taps.push({ name: t.name, fromFloat: f.relL2, fromQuantized: t.relL2, quantizationError: q.relL2, explainedBy });
  }
  const worst = taps.reduce<QuantizedTap | null>((w, t) => (w === null || t.fromFloat > w.fromFloat ? t : w), null);
  report.quantization = { taps, worstFromFloat: worst ? { name: worst.name, relL2: worst.fromFloat } : null };
  const quantized = taps.filter((t) => t.explainedBy === 'weight quantization').length;
  if (report.ok) {
    report.diagnosis = `the candidate matches the reference run on the same quantized weights (${report.diagnosis})` +
      (quantized ? `; its error from the float reference is weight quantization at ${quantized} tap${quantized > 1 ? 's' : ''} (worst ${worst!.name}: ${fmt(worst!.fromFloat)} from float, the quantized reference itself ${fmt(taps.find((t) => t.name === worst!.name)!.quantizationError)})` : '; it is within tolerance of the float reference too');
  } else {
    report.diagnosis = `not explained by weight quantization: the candidate diverges from the reference run on its own quantized weights; ${report.diagnosis}`;
  }
  return report;
}

/** The rotary config and sliding window of the checkpoint our reference dump names, when it can still be read. */
function referenceConfig(f: SafetensorsFile): { rope?: RopeConfig; slidingWindow?: number | null } {
  const ckpt = f.metadata.checkpoint;
  if (f.metadata.format !== 'phi4-ts.dump' || !ckpt) return {};
  try {
    const c = loadConfig(ckpt);
    return { rope: c.rope, slidingWindow: c.slidingWindow };
  } catch {
    return {}; // moved or deleted: compare without the fingerprints
  }
}

/** A dump's provenance for the report header: its path, and who wrote it when it is ours. */
function describe(path: string, f: SafetensorsFile): string {
  const m = f.metadata;
  if (m.format !== 'phi4-ts.dump') return path;
  return m.producer && !m.project_version ? `${path} (${m.producer}: ${m.backend})` : `${path} (phi4-ts ${m.project_version}, backend ${m.backend})`;
}

export interface FileComparison {
  report: CompareReport;
  labels: { reference: string; candidate: string };
  /** The map applied: the one given, or a built-in one detected from the candidate's names. */
  map: MapSpec | null;
}

/**
 * Opens both files (bad or missing files are WeightsErrors naming them), maps and compares.
 * `map` undefined: a built-in map is applied when the candidate's names call for one (src/compare/maps/);
 * null: no map.
 */
export function compareFiles(refPath: string, candPath: string, opts: CompareOptions & { map?: MapSpec | null; weightsReference?: string } = {}): FileComparison {
  const ref = SafetensorsFile.open(refPath);
  const quant = opts.weightsReference !== undefined ? SafetensorsFile.open(opts.weightsReference) : null;
  try {
    const cand = SafetensorsFile.open(candPath);
    try {
      let a = fileEntries(ref);
      let b = fileEntries(cand);
      const map = opts.map === undefined ? detectMap(b) : opts.map;
      if (map && map.applyTo !== 'candidate') a = applyMap(a, map, 'reference');
      if (map && map.applyTo !== 'reference') b = applyMap(b, map, 'candidate');
      const meta = (f: SafetensorsFile): DumpMeta => ({ checkpoint: f.metadata.checkpoint, config_hash: f.metadata.config_hash, n_ctx: f.metadata.n_ctx });
      opts = { ...referenceConfig(ref), ...opts };
      const metadata = { reference: meta(ref), candidate: meta(cand) };
      const labels = { reference: describe(refPath, ref), candidate: describe(candPath, cand) + (map?.name ? `; map: ${map.name}` : '') };
      if (quant) {
        let q = fileEntries(quant);
        if (map && map.applyTo !== 'candidate') q = applyMap(q, map, 'reference');
        labels.reference += `; quantized-weights reference: ${describe(opts.weightsReference!, quant)}`;
        return { report: compareQuantized(a, q, b, { ...opts, metadata: { reference: meta(quant), candidate: metadata.candidate } }), labels, map };
      }
      return { report: compare(a, b, { ...opts, metadata }), labels, map };
    } finally {
      cand.close();
    }
  } finally {
    ref.close();
    quant?.close();
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
    if (t.finding) {
      out.push(`  ${pad(t.name, w)}${pad(t.shape.join('x'), 16)}  CANNOT COMPARE: ${t.finding}`);
      continue;
    }
    let line = `  ${pad(t.name, w)}${pad(t.shape.join('x'), 16)}${lpad(fmt(t.relL2), 9)}${lpad(fmt(t.maxAbs), 9)}${lpad(t.cosine.toFixed(8), 12)}  ${t.ok ? 'ok' : 'DIVERGES'}`;
    if (t.logits) line += `   top-1 ${t.logits.top1}/${t.logits.positions}, KL mean ${fmt(t.logits.klMean)} max ${fmt(t.logits.klMax)}`;
    if (!t.ok) {
      const d = detail(t, r.tolerance);
      if (d) line += `   ${d}`;
    }
    out.push(line);
  }
  const list = (names: string[]) => (names.length <= 10 ? names.join(', ') : `${names.slice(0, 8).join(', ')}, ... (${names.length - 8} more; --json lists all)`);
  if (r.onlyReference.length) out.push(`only in reference (${r.onlyReference.length}): ${list(r.onlyReference)}`);
  if (r.onlyCandidate.length) {
    const s = r.onlyCandidateSummary;
    const shown = s.slice(0, 8).map((p) => (p.count > 1 ? `${p.pattern} (x${p.count})` : p.pattern)).join(', ');
    out.push(`only in candidate (${r.onlyCandidate.length} tensors matching no tap, ${s.length} pattern${s.length > 1 ? 's' : ''}): ${shown}${s.length > 8 ? `, ... (--json lists all)` : ''}`);
  }
  if (r.metadata && r.metadata.sameCheckpoint === false && r.metadata.sameConfig !== false) {
    const files = `(reference ${r.metadata.reference.checkpoint}, candidate ${r.metadata.candidate.checkpoint})`;
    out.push(r.metadata.sameConfig ? `note: different checkpoint files with the same config ${files}` : `note: different checkpoint files ${files}; a dump without config_hash, so the configs were not compared`);
  }
  if (r.blame) {
    const shown = r.blame.taps.filter((t) => !(t.local <= r.tolerance / 10));
    out.push(`per-step blame (--blame): each step re-run on the candidate's own input; the ${shown.length} of ${r.blame.taps.length} steps whose local error is over ${fmt(r.tolerance / 10)}`);
    out.push(`  ${pad('tap', w)}${lpad('accumulated', 12)}${lpad('local', 12)}`);
    for (const t of shown.slice(0, 16)) out.push(`  ${pad(t.name, w)}${lpad(fmt(t.accumulated), 12)}${lpad(fmt(t.local), 12)}${t.name === r.blame.blamed ? '  <- blamed' : ''}`);
  }
  if (r.quantization) {
    out.push(`quantization (--weights-reference): rel L2 of the candidate from the float reference, from the reference on the same quantized weights (the verdict), and the quantization's own error`);
    out.push(`  ${pad('tap', w)}${lpad('from float', 12)}${lpad('from quant', 12)}${lpad('quant err', 12)}  explained by`);
    for (const t of r.quantization.taps) out.push(`  ${pad(t.name, w)}${lpad(fmt(t.fromFloat), 12)}${lpad(fmt(t.fromQuantized), 12)}${lpad(fmt(t.quantizationError), 12)}  ${t.explainedBy}`);
  }
  out.push(`${r.ok ? 'PASS' : 'FAIL'}: ${r.diagnosis}`);
  return out.join('\n');
}
