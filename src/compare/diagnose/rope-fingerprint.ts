// LongRoPE fingerprint: which factor set a candidate runtime rotated its queries with, and what
// else its rotation did. Its own qkv (queries before rotary) is rotated with each candidate set,
// short, long, or none (plain RoPE), at the reference's positions, and compared with its own
// q_rot: the set that reproduces q_rot is the one it used. Runtimes have picked the set from the
// allocated context instead of the sequence (llama.cpp), from max_model_len at init (vLLM), or per
// prefill chunk (uzu). Beyond the set, ./rope-fit.ts solves for rope_theta, the position of each
// token, the pairing and the rotary dims, and the verdict names what differs from the config.

import { type RopeConfig, inverseFrequencies, usesLongFactors } from '../../../layers/rotary.js';
import type { Numeric } from '../../oracle/metrics.js';
import { relL2 } from '../../oracle/metrics.js';
import { type FactorSet, type RotaryFit, fitRotary, rotateWith } from './rope-fit.js';

export type { FactorSet, RotaryFit };

export interface RopeFingerprint {
  layer: number;
  positions: number;
  /** rel L2 of the candidate's q_rot against its qkv rotated with each set at the reference's positions. */
  fits: { set: FactorSet; relL2: number }[];
  /** The set that reproduces the candidate's q_rot, or null when none does (to 1e-3). */
  candidate: FactorSet | null;
  /** The set the reference model uses for this sequence. */
  reference: FactorSet;
  /** What the candidate's rotation was, solved for (null when there is too little to fit). */
  fit: RotaryFit | null;
  /** The causes the fit names, each a phrase ("rope_theta ≈ 5.0e5, the config says 1.0e4"). */
  causes: string[];
  /** One sentence for the diagnosis. */
  text: string;
}

const sci = (x: number) => x.toExponential(1).replace('e+', 'e');

/**
 * The positions the candidate used, against the reference's, in words; null when they agree.
 * `mask` [B*T] (1 = token) restricts the story to real tokens and names padded rows.
 */
export function describePositions(got: (number | null)[], want: ArrayLike<number>, B: number, T: number, mask?: ArrayLike<number>): string | null {
  const real = (b: number, t: number) => !mask || mask[b * T + t] !== 0;
  const rowText: string[] = [];
  const offsets: (number | null)[] = [];
  let anyDiff = false;
  for (let b = 0; b < B; b++) {
    const ts = Array.from({ length: T }, (_, t) => t).filter((t) => real(b, t));
    const diff = ts.filter((t) => got[b * T + t] !== want[b * T + t]);
    if (!diff.length) {
      offsets.push(0);
      continue;
    }
    anyDiff = true;
    const pad = T - ts.length;
    const delta = ts.map((t) => (got[b * T + t] ?? NaN) - want[b * T + t]);
    if (delta.every((x) => x === delta[0]) && Number.isFinite(delta[0])) {
      offsets.push(delta[0]);
      const k = delta[0];
      if (pad > 0 && k === pad) rowText.push(`row ${b} (left-padded by ${pad}): its tokens were rotated at unshifted positions (counting the ${pad} pad tokens), ${k > 0 ? '+' : ''}${k} from the reference's position_ids`);
      else rowText.push(`${B > 1 ? `row ${b}: ` : ''}positions offset by ${k > 0 ? '+' : ''}${k} (token at position ${want[b * T + ts[0]]} rotated at ${got[b * T + ts[0]]})`);
      continue;
    }
    offsets.push(null);
    if (ts.every((t) => got[b * T + t] === 0)) {
      rowText.push(`${B > 1 ? `row ${b}: ` : ''}every token rotated at position 0`);
      continue;
    }
    // restarts: the candidate's position is the reference's modulo C, C the position where it first resets
    const t0 = diff[0];
    const C = want[b * T + t0];
    if (got[b * T + t0] === 0 && C > 0 && ts.every((t) => got[b * T + t] === want[b * T + t] % C)) {
      rowText.push(`${B > 1 ? `row ${b}: ` : ''}positions restart at 0 every ${C} tokens from position ${C}`);
      continue;
    }
    const shown = diff.slice(0, 4).map((t) => `token ${t} at ${got[b * T + t] ?? '?'} (reference ${want[b * T + t]})`).join(', ');
    rowText.push(`${B > 1 ? `row ${b}: ` : ''}positions differ at ${diff.length} of ${ts.length} tokens: ${shown}${diff.length > 4 ? ', ...' : ''}`);
  }
  if (!anyDiff) return null;
  // one offset shared by every row reads as one phrase
  if (B > 1 && offsets.every((o) => o !== null && o === offsets[0]) && !mask) return rowText[0].replace(/^row 0: /, '');
  const agree = offsets.flatMap((o, b) => (o === 0 ? [b] : []));
  return rowText.join('; ') + (B > 1 && agree.length ? `; row${agree.length > 1 ? 's' : ''} ${agree.join(', ')} at the reference's positions` : '');
}

/** What the fit found that differs from the config and the reference, one phrase each. */
function causesOf(rope: RopeConfig, fit: RotaryFit, reference: FactorSet, want: ArrayLike<number>, B: number, T: number, mask?: ArrayLike<number>): string[] {
  const out: string[] = [];
  if (fit.rotaryDims !== rope.rotaryDim) out.push(`the candidate rotates ${fit.rotaryDims} dims of each head where the config rotates ${rope.rotaryDim} (partial_rotary_factor)`);
  if (fit.pairing !== 'rotate-half') out.push('interleaved pairs (2i, 2i+1) where the model rotates halves (i, i + r/2): a GPT-J / ggml "normal" rope instead of NeoX rotate-half');
  if (fit.frequencies) out.push(`its frequencies (${fit.frequencies.map((v) => v.toPrecision(3)).join(', ')}) are no factor set of the config at any rope_theta`);
  else if (fit.theta !== rope.theta) out.push(`rope_theta ≈ ${sci(fit.theta)}, the config says ${sci(rope.theta)}`);
  const pos = describePositions(fit.positions, want, B, T, mask);
  if (pos) out.push(pos);
  if (fit.set !== reference && fit.theta === rope.theta && !fit.frequencies) {
    out.push(fit.set === 'none' ? `plain RoPE without the LongRoPE factors (the reference uses the ${reference} set)` : `the ${fit.set} factors where the reference uses the ${reference} set`);
  }
  return out;
}

/**
 * The fingerprint from one layer's candidate qkv [B,T,W] and q_rot [B,nh,T,d]. The T rows are
 * positions `rows.first` .. first + T - 1 of a `rows.seqLen`-token sequence (default: the whole
 * sequence, from 0), so a dump that kept only some rows (`phi4 dump --positions`) can be judged;
 * `rows.positions` [B*T] gives the reference's positions outright (its position_ids), and
 * `rows.mask` [B*T] its attention mask (padded rows are named).
 */
export function ropeFingerprint(rope: RopeConfig, layer: number, qkv: { shape: number[]; data: Numeric }, qRot: { shape: number[]; data: Numeric },
  rows: { first?: number; seqLen?: number; positions?: Int32Array; mask?: ArrayLike<number> } = {}): RopeFingerprint | null {
  const [B, nh, T, d] = qRot.shape;
  if (qRot.shape.length !== 4 || qkv.shape.length !== 3 || qkv.shape[0] !== B || qkv.shape[1] !== T || qkv.shape[2] < nh * d) return null;
  const first = rows.first ?? 0;
  const want = rows.positions && rows.positions.length === B * T ? rows.positions : Int32Array.from({ length: B * T }, (_, i) => first + (i % T));
  let maxPos = 0;
  for (const p of want) maxPos = Math.max(maxPos, p);
  const seqLen = rows.seqLen ?? maxPos + 1;
  const mask = rows.mask && rows.mask.length === B * T ? rows.mask : undefined;
  const sets: FactorSet[] = rope.type === 'longrope' ? ['short', 'long', 'none'] : ['none'];
  const shape = { B, T, W: qkv.shape[2], nh, d };
  const fits = sets.map((set) => {
    const inv = set === 'none' ? inverseFrequencies({ ...rope, type: 'default' }, false) : inverseFrequencies(rope, set === 'long');
    const scale = set === 'none' ? 1 : rope.attentionScaling;
    return { set, relL2: relL2(rotateWith(qkv.data, shape, 'rotate-half', inv, want, scale), qRot.data) };
  });
  const best = fits.reduce((a, b) => (b.relL2 < a.relL2 ? b : a));
  const reference: FactorSet = rope.type !== 'longrope' ? 'none' : usesLongFactors(rope, seqLen - 1) ? 'long' : 'short';
  const fit = fitRotary(rope, qkv, qRot, reference);
  const trusted = fit && fit.relL2 <= 1e-3 ? fit : null;
  const candidate = best.relL2 <= 1e-3 ? best.set : trusted && !trusted.frequencies ? trusted.set : null;
  const table = fits.map((f) => `${f.set} ${f.relL2.toExponential(1)}`).join(', ');
  const span = `positions ${first}..${first + T - 1}`;
  const causes = trusted && best.relL2 > 1e-3 ? causesOf(rope, trusted, reference, want, B, T, mask) : [];
  let text: string;
  if (causes.length) {
    text = `rotary fit (layer ${layer}): ${causes.join('; ')} (the fitted rotation reproduces the candidate's q_rot from its qkv to ${sci(trusted!.relL2)}; ${trusted!.frequencies ? 'measured frequencies' : `${trusted!.set} factors`}, ${trusted!.pairing}, ${trusted!.rotaryDims} dims)`;
  } else if (candidate === null) {
    text = `LongRoPE fingerprint (layer ${layer}): no factor set at ${span} reproduces the candidate's q_rot from its qkv (${table}), and no rotation fits it${fit ? ` (best fit ${sci(fit.relL2)})` : ''}: the q_rot is not a rotation of the qkv; check the order of the q, k, v split and what is rotated`;
  } else if (candidate === reference) {
    text = `LongRoPE fingerprint (layer ${layer}): the candidate used the ${candidate} factors at ${span}, as the reference does (${table}); the difference is elsewhere`;
  } else {
    const orig = rope.originalMaxPositions;
    const why = candidate === 'long' && reference === 'short' ? `long factors used for a sequence within the original context (T = ${seqLen} <= original_max_position_embeddings ${orig}): the set was picked from something other than the sequence length (an allocated context, max_model_len)`
      : candidate === 'short' && reference === 'long' ? `short factors used for a sequence past the original context (T = ${seqLen} > ${orig})`
      : `plain RoPE without the LongRoPE factors (the reference uses the ${reference} set)`;
    text = `LongRoPE fingerprint (layer ${layer}): the candidate's q_rot is its qkv rotated with the ${candidate} factors at ${span} (${table}): ${why}`;
  }
  return { layer, positions: seqLen, fits, candidate, reference, fit, causes, text };
}
