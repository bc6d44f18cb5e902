// A bias-free linear layer in the checkpoint's layout:  y = x W^T,  W: [out, in].
//
// Computed as (W x^T)^T with both operands laid out as multiplied (no transpose flag): on the
// wasm backend that is XNNPACK's fast path (about 10x the transposed-operand kernel), and the
// large operand is the input, not a packed weight, so a weight widened for one call
// (src/weights.ts) is not repacked.

import * as tf from '@tensorflow/tfjs-core';

/** x: [batch, seq, in]; weight: [out, in] -> [batch, seq, out]. */
export function linear(x: tf.Tensor3D, weight: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, t, d] = x.shape;
    const xT = tf.transpose(tf.reshape(x, [b * t, d])); // [in, b*t]
    const yT = tf.matMul(weight, xT); // [out, b*t]
    return tf.reshape(tf.transpose(yT), [b, t, weight.shape[0]]);
  });
}
