// Rotary position embedding, with Phi-3 LongRoPE and partial rotary.
//
//   inv_freq[i] = 1 / (factor[i] * theta^(2i / rotaryDim))        i < rotaryDim / 2
//   angle[p, i] = p * inv_freq[i]
//   cos[p] = concat(cos(angle[p]), cos(angle[p])) * scaling      (sin likewise)
//   rope(x)  = x * cos + rotate_half(x) * sin   on the first rotaryDim dims of each head
//
// LongRoPE has two factor sets: `short` while every position fits in the original (pre-training)
// context, `long` once any position reaches past it, and scales cos and sin by
// sqrt(1 + ln(max/original) / ln(original)) so attention entropy keeps its trained range.
//
// The tables are built on the host, rounding each step to float32 exactly where transformers
// does (inv_freq and the angle p * inv_freq are float32 there). At positions of 1e4..1e5 one
// float32 ulp of the angle moves cos/sin by 1e-4..1e-3, so computing the angle in float64
// instead would disagree with transformers by that much; this way cos/sin agree to the
// rounding of the float32 cos itself (documented in golden/README.md).

import * as tf from '@tensorflow/tfjs-core';

/** The rotary part of the model config (src/config.ts builds it from config.json). */
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

/** The tables as tensors: [batch, seq, rotaryDim] each; `positionIds` is [batch * seq], row-major. */
export function rotaryTables(
  rope: RopeConfig, positionIds: Int32Array, batch: number, seq: number, forceLong?: boolean,
): { cos: tf.Tensor3D; sin: tf.Tensor3D; long: boolean } {
  const t = rotaryTableData(rope, positionIds, forceLong);
  const shape: [number, number, number] = [batch, seq, rope.rotaryDim];
  return { cos: tf.tensor3d(t.cos, shape), sin: tf.tensor3d(t.sin, shape), long: t.long };
}

/** rotate_half(x) = concat(-x2, x1), x split in halves on the last axis. */
function rotateHalf(x: tf.Tensor4D): tf.Tensor4D {
  const half = x.shape[3] / 2;
  const [x1, x2] = tf.split(x, [half, half], 3) as tf.Tensor4D[];
  return tf.concat([tf.neg(x2), x1], 3);
}

/**
 * Applies the rotation to the first rotaryDim dims of every head; the rest pass through.
 * x: [batch, heads, seq, headDim]; cos, sin: [batch, seq, rotaryDim].
 */
export function applyRotary(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  return tf.tidy(() => {
    const rot = cos.shape[2];
    const headDim = x.shape[3];
    const c = tf.expandDims(cos, 1) as tf.Tensor4D; // [batch, 1, seq, rot]
    const s = tf.expandDims(sin, 1) as tf.Tensor4D;
    const [xRot, xPass] = rot === headDim ? [x, null] : (tf.split(x, [rot, headDim - rot], 3) as tf.Tensor4D[]);
    const rotated = tf.add(tf.mul(xRot, c), tf.mul(rotateHalf(xRot), s)) as tf.Tensor4D;
    return xPass ? tf.concat([rotated, xPass], 3) : rotated;
  });
}
