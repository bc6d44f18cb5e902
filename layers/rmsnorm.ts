// RMSNorm:  y = weight * x / sqrt(mean(x^2) + eps)
//
// As transformers' Phi3RMSNorm: the statistics are taken in float32 and the weight is applied
// after normalising (weight * (x * rsqrt(var + eps))), with no mean subtraction and no bias.

import * as tf from '@tensorflow/tfjs-core';

/** x: [..., hidden]; weight: [hidden]. */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, eps: number): T {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true); // [..., 1]
    const normed = tf.mul(x, tf.rsqrt(tf.add(variance, eps))); // [..., hidden]
    return tf.mul(weight, normed) as T;
  });
}
