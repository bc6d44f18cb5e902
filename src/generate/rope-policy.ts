// LongRoPE policy fingerprint of a generation: which policy (src/generate/generate.ts) a run's step logits
// follow. Each policy's step logits are recomputed with our own model on the run's own prompt and
// tokens (teacher forced), and compared with the run's logits step by step; the policy that
// reproduces them is the one the runtime used. The policies and the bugs behind them:
//
//   default      the model's semantics: every step equals transformers' forward over the whole
//                current sequence (the cache rebuilt once when the sequence passes the original)
//   stale        cached keys keep the short rotation after the crossing (vLLM#19489)
//   chunked      a chunked prefill choosing the set per chunk: the prompt's first s positions
//                short, the rest long (trymirai/uzu#604); s = floor(original / C) * C for chunk C
//   fixed-long   the long set from the first token: chosen from an allocated context past the
//                original (ggml-org/llama.cpp#24823), or fixed at load (vLLM after #27431)
//   fixed-short  the short set throughout (an allocated context within the original)

import { type RopePolicy, generate } from './generate.js';
import { relL2 } from '../oracle/metrics.js';
import { fmt, ranges } from '../compare/format.js';
import type { Phi3Model } from '../model/model.js';

export interface PolicyFit {
  /** default, stale, fixed-long, fixed-short, or chunked with its prefill chunk. */
  policy: RopePolicy;
  prefillChunk?: number;
  /** chunked: the first prompt position rotated long, and every chunk size tried that gives it. */
  split?: number;
  chunkSizes?: number[];
  /** rel L2 of the run's step logits against this policy's, per step. */
  steps: number[];
  worst: number;
  /** Mean over the steps: ranks the policies when none reproduces the run. */
  mean: number;
  /** First step over the tolerance (null: every step within it). */
  firstOver: number | null;
  /** First step at which this policy's own logits leave the default's (null: never, on this run). */
  leavesDefaultAt: number | null;
}

export interface PolicyMatch {
  /** The policies whose logits the run reproduces within the tolerance, best first (empty: none). */
  matching: string[];
  /** The best fit (smallest worst step), matching or not. */
  best: PolicyFit;
  /** Every policy tried, best first. */
  fits: PolicyFit[];
  /** One sentence. */
  text: string;
}

/** A policy as the report names it: `chunked (prefill 16)` for a chunked one. */
export function policyLabel(f: Pick<PolicyFit, 'policy' | 'prefillChunk'>): string {
  return f.policy === 'chunked' ? `chunked (prefill ${f.prefillChunk})` : f.policy;
}

const WHY: Record<string, string> = {
  default: "the model's own semantics (every step equals transformers' forward over the whole current sequence)",
  stale: 'keys cached before the sequence passed the original context keep the short rotation, new ones get the long one (vLLM#19489)',
  chunked: 'a chunked prefill that chose the factor set per chunk (trymirai/uzu#604)',
  'fixed-long': 'the long factors from the first token: the set chosen from an allocated context past the original (ggml-org/llama.cpp#24823) or fixed at load (vLLM after #27431)',
  'fixed-short': 'the short factors throughout: the set chosen from an allocated context within the original, or a graph exported with the short set',
};

/** Order of preference among policies that fit equally well (the model's semantics first). */
const ORDER = ['default', 'stale', 'chunked', 'fixed-long', 'fixed-short'];


/**
 * The chunk sizes to try for a prompt of P tokens: every size up to the original context when it is
 * at most 256 (a tiny model), else the powers of two up to it; plus `hints` (for example the
 * prefill_chunk a file records). Sizes giving the same split are one run. Empty when the prompt
 * fits the original context (then every chunked prefill is short throughout: `stale`).
 */
export function chunkCandidates(original: number, P: number, hints: number[] = []): { split: number; sizes: number[] }[] {
  if (P <= original) return [];
  const sizes = new Set<number>(hints.filter((c) => Number.isInteger(c) && c >= 1));
  if (original <= 256) for (let c = 1; c <= original; c++) sizes.add(c);
  else for (let c = 1; c <= original; c *= 2) sizes.add(c);
  const bySplit = new Map<number, number[]>();
  for (const c of [...sizes].sort((a, b) => a - b)) {
    const split = Math.floor(original / c) * c; // the first chunk that ends past the original starts here
    if (split === 0 || split >= P) continue; // 0: one long chunk, the default; >= P: never crosses
    bySplit.set(split, [...(bySplit.get(split) ?? []), c]);
  }
  return [...bySplit].map(([split, s]) => ({ split, sizes: s })).sort((a, b) => a.split - b.split);
}

/**
 * Recomputes every policy on (prompt, ids) and fits `logits` (one row per step) to them. `tol` is
 * the rel L2 under which a step counts as reproduced. Chunked prefills are first told apart by
 * their step 0 (a prefill), then only the best is run to the end.
 */
export function fitPolicies(model: Phi3Model, prompt: ArrayLike<number>, ids: ArrayLike<number>, logits: Float32Array[], tol: number, chunkHints: number[] = []): PolicyMatch {
  const N = ids.length;
  const run = (policy: RopePolicy, prefillChunk?: number, steps = N) =>
    generate(model, prompt, { maxNewTokens: steps, ropePolicy: policy, prefillChunk, forced: Array.from(ids).slice(0, steps) }).stepLogits;
  const distances = (rows: Float32Array[]) => rows.map((r, i) => relL2(logits[i], r));

  const fits: PolicyFit[] = [];
  const def = run('default');
  const add = (policy: RopePolicy, rows: Float32Array[], extra: Partial<PolicyFit> = {}) => {
    const steps = distances(rows);
    const over = steps.findIndex((x) => !(x <= tol));
    const leaves = rows.findIndex((r, i) => !(relL2(r, def[i]) <= tol));
    const finite = steps.map((x) => (Number.isNaN(x) ? Infinity : x));
    fits.push({
      policy, steps, worst: Math.max(...finite), mean: finite.reduce((a, b) => a + b, 0) / Math.max(1, steps.length),
      firstOver: over < 0 ? null : over, leavesDefaultAt: leaves < 0 ? null : leaves, ...extra,
    });
  };
  add('default', def);
  for (const p of ['stale', 'fixed-long', 'fixed-short'] as RopePolicy[]) add(p, run(p));
  const splits = chunkCandidates(model.config.rope.type === 'longrope' ? model.config.rope.originalMaxPositions : Infinity, prompt.length, chunkHints);
  if (splits.length) {
    // step 0 is the prefill: it tells the splits apart; the closest is run to the end
    const first = splits.map((s) => ({ ...s, d: relL2(logits[0], run('chunked', s.sizes[s.sizes.length - 1], 1)[0]) }));
    const best = first.reduce((a, b) => (b.d < a.d ? b : a));
    const c = chunkHints.find((h) => best.sizes.includes(h)) ?? best.sizes[best.sizes.length - 1];
    add('chunked', run('chunked', c), { prefillChunk: c, split: best.split, chunkSizes: best.sizes });
  }
  fits.sort((a, b) => a.worst - b.worst || ORDER.indexOf(a.policy) - ORDER.indexOf(b.policy));
  const matching = fits.filter((f) => f.worst <= tol).sort((a, b) => ORDER.indexOf(a.policy) - ORDER.indexOf(b.policy));
  // none reproduces it: the closest on average (a run that switches one position late, as vLLM's
  // `positions > original` did, is off by 0.9 at one step and close to stale after it)
  const best = matching[0] ?? fits.slice().sort((a, b) => a.mean - b.mean)[0];
  const others = fits.filter((f) => f !== best);
  const next = others.find((f) => !matching.includes(f));
  let text: string;
  if (matching.length) {
    text = `the step logits follow ${policyLabel(best)} (worst step rel L2 ${fmt(best.worst)}${next ? `; the next policy, ${policyLabel(next)}, ${fmt(next.worst)}` : ''}): ${WHY[best.policy]}`;
    if (best.policy === 'chunked') text += `; positions 0-${best.split! - 1} rotated short, ${best.split}-${prompt.length - 1} long (${best.chunkSizes!.length > 1 ? `prefill chunks of ${best.chunkSizes!.join(', ')} tokens give this` : `a prefill chunk of ${best.chunkSizes![0]} tokens gives this`})`;
    if (best.policy !== 'default') text += best.leavesDefaultAt === null ? '; on this run it never leaves the default' : `; it leaves the default at step ${best.leavesDefaultAt}`;
    const same = matching.slice(1).map(policyLabel);
    if (same.length) text += `; ${same.join(', ')} give${same.length === 1 ? 's' : ''} the same logits on this run`;
  } else {
    const agree = best.steps.flatMap((x, i) => (x <= tol ? [i] : []));
    text = `no LongRoPE policy reproduces the step logits within ${fmt(tol)}: the closest on average is ${policyLabel(best)} (mean step rel L2 ${fmt(best.mean)}, worst ${fmt(best.worst)}; ${agree.length ? `it agrees at step${agree.length > 1 ? 's' : ''} ${ranges(agree)}` : 'it agrees at no step'}), so the difference is not one of these policies alone`;
  }
  return { matching: matching.map(policyLabel), best, fits, text };
}
