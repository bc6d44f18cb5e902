// `phi4 compare`: two sets of named tensors (a reference dump and a candidate runtime's dump)
// judged tap by tap in forward order. Pure: tensors come in as named entries, a report comes out.
// files.ts reads the files, render.ts prints the report; docs/compare.md documents the presets.

import { isAbsolute } from 'node:path';
import { InputError } from '../errors.js';
import type { Entries, Entry } from './entries.js';
import type { CompareOptions, CompareReport, QuantizedTap, TapResult } from './report.js';
import { INPUT_NAMES, PRESETS } from './report.js';
import { cosine, logitStats } from './measures.js';
import { describeMeta, diagnose } from './diagnosis.js';
import { fmt } from './format.js';
import { ropeFingerprint } from './diagnose/rope-fingerprint.js';
import { windowFromPositions, windowFromProbs } from './diagnose/sliding-window.js';
import { rowErrors } from './rows.js';
import { maxAbs, relL2, relL2Along, rmsOf, selectPositions } from '../oracle/metrics.js';
import { HEAD_TAPS, LAYER_TAPS, MODEL_TAPS, seqAxis, tapInfo } from '../../layers/taps.js';

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

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

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

/** Why two same-named tensors cannot be compared numerically, or null when they can. */
function incomparable(name: string, a: Entry, b: Entry): string | null {
  if (a.int !== b.int) return `dtypes differ: reference ${a.int ? 'integer' : 'float'}, candidate ${b.int ? 'integer' : 'float'}`;
  if (!sameShape(a.shape, b.shape)) {
    const layout = tapInfo(name)?.layout;
    // the same sizes in another order is a layout (a transpose fixes it); other sizes are another model or config
    const sorted = (x: number[]) => x.slice().sort((p, q) => p - q).join(',');
    const size = (x: number[]) => x.reduce((p, q) => p * q, 1);
    const fix = sorted(a.shape) === sorted(b.shape) ? 'transpose with --map' : size(a.shape) === size(b.shape) ? 'reshape with --map' : null;
    const sizes = a.shape.length === b.shape.length ? a.shape.flatMap((x, i) => (x === b.shape[i] ? [] : [`${x} vs ${b.shape[i]}`])) : [];
    let why = `shapes differ: reference [${a.shape}], candidate [${b.shape}]` + (fix
      ? (layout ? ` (layout ${layout}; ${fix})` : ` (${fix})`)
      : `${layout ? ` (layout ${layout})` : ''}: ${sizes.length ? `sizes ${sizes.join(', ')}` : 'different sizes'}, not a layout: a different model or config`);
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
  // --budget: each tap's own tolerance; a tap the emulation lacks keeps the preset's
  // (of the same shape: a selected reference dump keeps fewer rows than the emulation ran)
  const budgets = opts.budget ? new Map(opts.budget.taps.filter((t) => ref.has(t.name) && sameShape(t.shape, ref.get(t.name)!.shape)).map((t) => [t.name, t.budget])) : null;
  const tolOf = (name: string) => budgets?.get(name) ?? tol;
  if (opts.budget) report.budget = opts.budget;
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
    if ((padded || B > 1) && axis > 0) {
      const rows = rowErrors(a, b, shape, axis, padded ? mask : null);
      if (rows) r.rows = rows;
    }
    if (padded && axis > 0 && B * T === mask!.length) {
      a = selectPositions(a, shape, axis, mask!);
      b = selectPositions(b, shape, axis, mask!);
    }
    r.relL2 = relL2(a, b);
    r.maxAbs = maxAbs(a, b);
    r.cosine = cosine(a, b);
    const within = (t: number) => r.relL2 <= t && (r.positionRms ?? 0) <= t && Number.isFinite(r.maxAbs);
    r.ok = within(tolOf(name));
    if (budgets) {
      if (budgets.has(name)) r.budget = budgets.get(name);
      r.presetOk = within(tol);
    }
    if (!Number.isFinite(r.maxAbs)) r.relL2 = NaN;
    if (name === 'logits') r.logits = logitStats(a, b, shape[shape.length - 1]);
    report.taps.push(r);
  }
  const first = report.taps.find((t) => !t.ok);
  report.firstDivergent = first?.name ?? null;
  report.ok = !first && report.metadata?.sameConfig !== false;
  const rot = first && /^(rope\.(cos|sin)|layers\.(\d+)\.(q_rot|k_rot))$/.exec(first.name);
  let specific: string | undefined;
  let extra = '';
  if (rot && opts.rope) {
    const layer = rot[3] !== undefined ? Number(rot[3]) : 0;
    const qkv = cand.get(`layers.${layer}.qkv`);
    const q = cand.get(`layers.${layer}.q_rot`);
    if (qkv && q && !qkv.int && !q.int) {
      // the positions the reference rotated at: its position_ids, else 0..T-1 in every row
      const pe = ref.get('position_ids');
      const positions = pe?.int ? Int32Array.from(pe.read()) : undefined;
      const fp = ropeFingerprint(opts.rope, layer, { shape: qkv.shape, data: qkv.read() }, { shape: q.shape, data: q.read() },
        { positions, mask: padded ? mask! : undefined, ...(opts.rows ?? {}) });
      if (fp) {
        report.ropeFingerprint = fp;
        // a runtime that records its allocated context (phi4-tapdump's n_ctx) shows where the set came from
        const nCtx = Number(opts.metadata?.candidate.n_ctx);
        const allocated = fp.candidate === 'long' && fp.reference === 'short' && nCtx > opts.rope.originalMaxPositions;
        const text = `${fp.text}${allocated ? `; the candidate's dump records an allocated n_ctx of ${nCtx}, past the original ${opts.rope.originalMaxPositions}` : ''}`;
        // a fit that names the cause replaces the checklist; otherwise it follows the verdict
        if (fp.causes.length) specific = text;
        else extra = `; ${text}`;
      }
    }
  }
  report.diagnosis = diagnose(report, first, first ? tolOf(first.name) : tol, specific) + extra;
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
