// LongRoPE fingerprint: which factor set a candidate runtime rotated its queries with. Its own
// qkv (queries before rotary) is rotated with each candidate set, short, long, or none (plain
// RoPE), at positions 0..T-1, and compared with its own q_rot: the set that reproduces q_rot is
// the one it used. Runtimes have picked the set from the allocated context instead of the
// sequence (llama.cpp), from max_model_len at init (vLLM), or per prefill chunk (uzu).

import { type RopeConfig, cosSin, inverseFrequencies, usesLongFactors } from '../../../layers/rotary.js';
import type { Numeric } from '../../oracle/metrics.js';
import { relL2 } from '../../oracle/metrics.js';

export type FactorSet = 'short' | 'long' | 'none';

export interface RopeFingerprint {
  layer: number;
  positions: number;
  /** rel L2 of the candidate's q_rot against its qkv rotated with each set. */
  fits: { set: FactorSet; relL2: number }[];
  /** The set that reproduces the candidate's q_rot, or null when none does (to 1e-3). */
  candidate: FactorSet | null;
  /** The set the reference model uses for this sequence. */
  reference: FactorSet;
  /** One sentence for the diagnosis. */
  text: string;
}

/** Rotate-half over the first r dims of q [B,nh,T,d] taken from qkv [B,T,(nh+2nkv)d]. */
function rotated(qkv: Numeric, B: number, T: number, nh: number, d: number, width: number, cos: Float32Array, sin: Float32Array, r: number): Float64Array {
  const out = new Float64Array(B * nh * T * d);
  const half = r / 2;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nh; h++) {
      for (let t = 0; t < T; t++) {
        const src = (b * T + t) * width + h * d;
        const dst = ((b * nh + h) * T + t) * d;
        for (let i = 0; i < d; i++) {
          const x = qkv[src + i];
          if (i >= r) {
            out[dst + i] = x;
            continue;
          }
          const partner = i < half ? -qkv[src + i + half] : qkv[src + i - half];
          out[dst + i] = Math.fround(Math.fround(x * cos[t * r + i]) + Math.fround(partner * sin[t * r + i]));
        }
      }
    }
  }
  return out;
}

/**
 * The fingerprint from one layer's candidate qkv [B,T,W] and q_rot [B,nh,T,d]. The T rows are
 * positions `rows.first` .. first + T - 1 of a `rows.seqLen`-token sequence (default: the whole
 * sequence, from 0), so a dump that kept only some rows (`phi4 dump --positions`) can be judged.
 */
export function ropeFingerprint(rope: RopeConfig, layer: number, qkv: { shape: number[]; data: Numeric }, qRot: { shape: number[]; data: Numeric },
  rows: { first?: number; seqLen?: number } = {}): RopeFingerprint | null {
  const [B, nh, T, d] = qRot.shape;
  if (qRot.shape.length !== 4 || qkv.shape.length !== 3 || qkv.shape[0] !== B || qkv.shape[1] !== T || qkv.shape[2] < nh * d) return null;
  const first = rows.first ?? 0;
  const seqLen = rows.seqLen ?? first + T;
  const positions = Int32Array.from({ length: T }, (_, t) => first + t);
  const sets: FactorSet[] = rope.type === 'longrope' ? ['short', 'long', 'none'] : ['none'];
  const fits = sets.map((set) => {
    const plain: RopeConfig = { ...rope, type: 'default' };
    const inv = set === 'none' ? inverseFrequencies(plain, false) : inverseFrequencies(rope, set === 'long');
    const { cos, sin } = cosSin(inv, positions, set === 'none' ? 1 : rope.attentionScaling);
    return { set, relL2: relL2(rotated(qkv.data, B, T, nh, d, qkv.shape[2], cos, sin, rope.rotaryDim), qRot.data) };
  });
  const best = fits.reduce((a, b) => (b.relL2 < a.relL2 ? b : a));
  const candidate = best.relL2 <= 1e-3 ? best.set : null;
  const reference: FactorSet = rope.type !== 'longrope' ? 'none' : usesLongFactors(rope, seqLen - 1) ? 'long' : 'short';
  const table = fits.map((f) => `${f.set} ${f.relL2.toExponential(1)}`).join(', ');
  let text: string;
  if (candidate === null) {
    text = `LongRoPE fingerprint (layer ${layer}): no factor set at positions ${first}..${first + T - 1} reproduces the candidate's q_rot from its qkv (${table}): check rotate-half vs interleaved pairs, partial rotary and the positions`;
  } else if (candidate === reference) {
    text = `LongRoPE fingerprint (layer ${layer}): the candidate used the ${candidate} factors at positions ${first}..${first + T - 1}, as the reference does (${table}); the difference is elsewhere`;
  } else {
    const orig = rope.originalMaxPositions;
    const why = candidate === 'long' && reference === 'short' ? `long factors used for a sequence within the original context (T = ${seqLen} <= original_max_position_embeddings ${orig}): the set was picked from something other than the sequence length (an allocated context, max_model_len)`
      : candidate === 'short' && reference === 'long' ? `short factors used for a sequence past the original context (T = ${seqLen} > ${orig})`
      : `plain RoPE without the LongRoPE factors (the reference uses the ${reference} set)`;
    text = `LongRoPE fingerprint (layer ${layer}): the candidate's q_rot is its qkv rotated with the ${candidate} factors at positions ${first}..${first + T - 1} (${table}): ${why}`;
  }
  return { layer, positions: seqLen, fits, candidate, reference, text };
}
