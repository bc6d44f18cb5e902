// RMSNorm:  y = weight * x / sqrt(mean(x^2) + eps)
//
// As transformers' Phi3RMSNorm: the statistics are taken in float32 and the weight is applied
// after normalising (weight * (x * rsqrt(var + eps))), with no mean subtraction and no bias.

import * as tf from '@tensorflow/tfjs-core';
import { rmsScale } from './exact.js';

/** x: [..., hidden]; weight: [hidden]. */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, eps: number): T {
  return tf.tidy(() => {
    const scale = rmsScale(x, eps); // [..., 1]: 1 / sqrt(mean(x^2) + eps)
    const normed = tf.mul(x, scale); // [..., hidden]
    return tf.mul(weight, normed) as T;
  });
}
