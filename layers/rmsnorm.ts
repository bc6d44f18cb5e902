// RMSNorm:  y = weight * x / sqrt(mean(x^2) + eps)
//
// As transformers' Phi3RMSNorm: no mean subtraction, no bias, the weight applied after
// normalising. Taken as one operation in float64 and rounded to float32 once, as an ideal float32
// runtime would (layers/exact.ts says why): as three float32 tensor ops (the scale, x * scale,
// weight * that) its three roundings alone came to 2.1x an ideal float32's error at Phi-4-mini's
// width, where the first layer's norm sees nothing else.

import * as tf from '@tensorflow/tfjs-core';
import { exactSums } from './exact.js';

/** x: [..., hidden]; weight: [hidden]. */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, eps: number): T {
  if (!exactSums()) return tf.tidy(() => tf.mul(weight, tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)))) as T); // training
  const H = weight.shape[0];
  const xs = x.dataSync() as Float32Array; // [rows * H]
  const w = weight.dataSync() as Float32Array; // [H]
  const y = new Float32Array(xs.length);
  for (let r = 0; r < xs.length; r += H) {
    let sumSq = 0;
    for (let i = 0; i < H; i++) sumSq += xs[r + i] * xs[r + i]; // exact: a float32 square fits float64
    const scale = 1 / Math.sqrt(sumSq / H + eps);
    for (let i = 0; i < H; i++) y[r + i] = w[i] * xs[r + i] * scale; // rounded to float32 once, here
  }
  return tf.tensor(y, x.shape, 'float32') as T;
}
