// The verdict in words: where the first divergent tap sits, how large its error is, which heads and
// positions carry it, and what usually goes wrong at that step (HINTS, one line per tap of the table).

import type { CompareReport, DumpMeta, TapResult } from './report.js';
import { fmt, ranges } from './format.js';
import { describeRows } from './rows.js';

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
  [/^final_norm$/, 'the final RMSNorm differs: check eps and float32 statistics'],
  [/^logits$/, 'the head differs: check lm_head (tied to embed_tokens for Phi-4-mini) and its dtype'],
];

/** What usually goes wrong at a tap's step: the checklist, for when nothing more specific is known. */
export function hint(name: string): string {
  for (const [re, text] of HINTS) if (re.test(name)) return text;
  return 'not a tap of the table (layers/taps.ts); no diagnosis for it';
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
  if (t.rows) {
    const rows = describeRows(t.rows, tol, t.ok);
    if (rows) parts.push(rows);
  }
  return parts.join('; ');
}

export function describeMeta(m: DumpMeta): string {
  return `${m.checkpoint ?? 'unknown checkpoint'} (config ${m.config_hash ?? 'unknown'})`;
}

/**
 * The verdict. `specific`, where a diagnosis found the cause (the rotary fit), stands in place of
 * the tap's checklist (HINTS), which is only for when nothing more specific is known.
 */
export function diagnose(r: CompareReport, first: TapResult | undefined, tol: number, specific?: string): string {
  const taps = r.taps;
  const parts: string[] = [];
  if (r.metadata?.sameConfig === false) {
    parts.push(`different checkpoint/config: reference ${describeMeta(r.metadata.reference)}, candidate ${describeMeta(r.metadata.candidate)}; the dumps come from different models, so differences below are expected`);
  }
  if (!first) {
    const worst = taps.reduce((w, t) => (t.relL2 > w.relL2 ? t : w), taps[0]);
    const b = r.budget;
    // under a budget the worst tap is the one nearest its own budget
    const of = (t: TapResult) => t.budget ?? tol;
    const near = taps.reduce((w, t) => (t.relL2 / of(t) > w.relL2 / of(w) ? t : w), taps[0]);
    parts.push(b
      ? `all ${taps.length} common taps within their ${b.rounding} budgets (${b.k} x the float64 reference's own error with ${b.rounding} storage, at least ${fmt(b.floor)}); nearest its budget ${near.name} at ${fmt(near.relL2)} of ${fmt(of(near))}`
      : `all ${taps.length} common taps within rel L2 ${fmt(tol)}; worst ${worst.name} at ${fmt(worst.relL2)}`);
    const padOnly = taps.filter((t) => t.rows && describeRows(t.rows, tol, true));
    if (padOnly.length) parts.push(`${padOnly[0].name}: ${describeRows(padOnly[0].rows!, tol, true)}${padOnly.length > 1 ? ` (and ${padOnly.length - 1} more tap${padOnly.length > 2 ? 's' : ''})` : ''}`);
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
  parts.push(`first divergence at ${first.name} (${size}${where ? `; ${where}` : ''})${before}: ${specific ?? hint(first.name)}`);
  const others = r.findings.filter((n) => n !== first.name);
  if (others.length) parts.push(`${others.length} more tap${others.length > 1 ? 's' : ''} could not be compared numerically: ${others.slice(0, 6).join(', ')}${others.length > 6 ? ', ...' : ''}`);
  return parts.join('; ');
}
