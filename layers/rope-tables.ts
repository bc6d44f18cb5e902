// Rotary tables on the host, with no tensor library: the frequencies and the cos/sin tables of
// Phi-3 (Lo)RoPE, rounded to float32 at the steps where transformers rounds (layers/rotary.ts
// explains why). Used by the tfjs forward pass (layers/rotary.ts) and by the float64 reference
// (src/oracle/reference/), which must build the very same tables.

/** The rotary part of the model config (src/model/config.ts builds it from config.json). */
export interface RopeConfig {
  /** "default": plain RoPE; "longrope": Phi-3 LongRoPE with short and long factor sets. */
  type: 'default' | 'longrope';
  theta: number;
  /** Dimensions of each head that are rotated (the first `rotaryDim`); the rest pass through. */
  rotaryDim: number;
  /** Context the model was pre-trained with; past it LongRoPE switches to the long factors. */
  originalMaxPositions: number;
  /** rotaryDim / 2 factors each (LongRoPE only). */
  shortFactor: number[] | null;
  longFactor: number[] | null;
  /** cos and sin are multiplied by this: sqrt(1 + ln(max/original) / ln(original)) for LongRoPE. */
  attentionScaling: number;
}

const f32 = Math.fround;

/** True when LongRoPE must use its long factors: some position reaches past the original context. */
export function usesLongFactors(rope: RopeConfig, maxPositionId: number): boolean {
  return rope.type === 'longrope' && maxPositionId + 1 > rope.originalMaxPositions;
}

/** inv_freq [rotaryDim / 2], float32-rounded as transformers computes it. */
export function inverseFrequencies(rope: RopeConfig, long: boolean): Float32Array {
  const half = rope.rotaryDim / 2;
  const factors = rope.type === 'longrope' ? (long ? rope.longFactor! : rope.shortFactor!) : null;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = f32((2 * i) / rope.rotaryDim); // arange(0, dim, 2).float() / dim
    const base = f32(Math.pow(rope.theta, exponent)); // theta ** exponent, in float32
    const denom = factors ? f32(f32(factors[i]) * base) : base;
    inv[i] = f32(1 / denom);
  }
  return inv;
}

/**
 * cos and sin for the given positions, [n, rotaryDim] each as flat float32 arrays, attention
 * scaling included. The factor set is chosen from the largest position (transformers takes
 * max(position_ids) over the whole batch), unless `forceLong` says otherwise.
 */
export function rotaryTableData(
  rope: RopeConfig, positionIds: Int32Array, forceLong?: boolean,
): { cos: Float32Array; sin: Float32Array; long: boolean } {
  let maxPos = 0;
  for (const p of positionIds) maxPos = Math.max(maxPos, p);
  const long = forceLong ?? usesLongFactors(rope, maxPos);
  return { ...cosSin(inverseFrequencies(rope, long), positionIds, rope.attentionScaling), long };
}

/** cos and sin [n, 2 * invFreq.length] from given frequencies, rounded as transformers rounds. */
export function cosSin(inv: Float32Array, positionIds: Int32Array, attentionScaling: number): { cos: Float32Array; sin: Float32Array } {
  const half = inv.length;
  const dim = 2 * half;
  const scale = f32(attentionScaling);
  const cos = new Float32Array(positionIds.length * dim);
  const sin = new Float32Array(positionIds.length * dim);
  for (let n = 0; n < positionIds.length; n++) {
    const p = positionIds[n];
    for (let i = 0; i < half; i++) {
      const angle = f32(p * inv[i]); // float32 product, as transformers' float32 matmul
      const c = f32(f32(Math.cos(angle)) * scale);
      const s = f32(f32(Math.sin(angle)) * scale);
      cos[n * dim + i] = c;
      cos[n * dim + half + i] = c; // emb = cat(freqs, freqs)
      sin[n * dim + i] = s;
      sin[n * dim + half + i] = s;
    }
  }
  return { cos, sin };
}

