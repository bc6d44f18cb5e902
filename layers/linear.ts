// A bias-free linear layer in the checkpoint's layout:  y = x W^T,  W: [out, in].

import * as tf from '@tensorflow/tfjs-core';

/** x: [batch, seq, in]; weight: [out, in] -> [batch, seq, out]. */
export function linear(x: tf.Tensor3D, weight: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, t, d] = x.shape;
    const y = tf.matMul(tf.reshape(x, [b * t, d]), weight, false, true); // [b*t, out]
    return tf.reshape(y, [b, t, weight.shape[0]]);
  });
}
