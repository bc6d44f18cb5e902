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
import { type RopeConfig, rotaryTableData } from './rope-tables.js';

export { type RopeConfig, cosSin, inverseFrequencies, rotaryTableData, usesLongFactors } from './rope-tables.js';

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
