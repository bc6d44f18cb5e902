// A bias-free linear layer in the checkpoint's layout:  y = x W^T,  W: [out, in].
//
// Computed as (W x^T)^T with both operands laid out as multiplied (no transpose flag): on the
// wasm backend that is XNNPACK's fast path (about 10x the transposed-operand kernel), and the
// large operand is the input, not a packed weight, so a weight widened for one call
// (src/weights.ts) is not repacked.

import * as tf from '@tensorflow/tfjs-core';

/**
 * A weight kept outside the tensor heap (bf16 bytes on the host, src/weights.ts): widened to a
 * tensor for the one product that needs it, or, for a single row, multiplied where it lies.
 */
export interface HostMatrix {
  readonly shape: [number, number]; // [out, in]
  toTensor(): tf.Tensor2D;
  /** W x for one row: [in] -> [out], where the holder can do it without a tensor. */
  matVec?(x: Float32Array): Float32Array;
}

export type LinearWeight = tf.Tensor2D | HostMatrix;

/** x: [batch, seq, in]; weight: [out, in] -> [batch, seq, out]. */
export function linear(x: tf.Tensor3D, weight: LinearWeight): tf.Tensor3D {
  if (!(weight instanceof tf.Tensor)) return hostLinear(x, weight);
  return tf.tidy(() => {
    const [b, t, d] = x.shape;
    const xT = tf.transpose(tf.reshape(x, [b * t, d])); // [in, b*t]
    const yT = tf.matMul(weight, xT); // [out, b*t]
    return tf.reshape(tf.transpose(yT), [b, t, weight.shape[0]]);
  });
}

function hostLinear(x: tf.Tensor3D, w: HostMatrix): tf.Tensor3D {
  const [b, t] = x.shape;
  if (b * t === 1 && w.matVec) return tf.tensor3d(w.matVec(x.dataSync() as Float32Array), [1, 1, w.shape[0]]);
  const weight = w.toTensor(); // [out, in], for this product only
  try {
    return linear(x, weight);
  } finally {
    weight.dispose();
  }
}
