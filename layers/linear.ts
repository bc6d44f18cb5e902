// A bias-free linear layer in the checkpoint's layout:  y = x W^T,  W: [out, in].
//
// Each output is a dot product of a row of x with a row of W, summed exactly and rounded once
// (./exact.ts says why): W is used in its [out, in] layout as it is, never transposed.

import * as tf from '@tensorflow/tfjs-core';
import { type DotsWeights, hostDots, rowDots, usesKernel } from './exact.js';

/**
 * A weight kept outside the tensor heap (bf16 bytes on the host, src/model/weights.ts): handed to the
 * exact kernel as it lies, or widened to a tensor for the one product that needs it.
 */
export interface HostMatrix {
  readonly shape: [number, number]; // [out, in]
  toTensor(): tf.Tensor2D;
  /** W x for one row: [in] -> [out], where the holder can do it without a tensor. */
  matVec?(x: Float32Array): Float32Array;
  /** The rows as the exact kernel takes them (float32 or bf16), where the holder can give them. */
  dotsWeights?(): DotsWeights | undefined;
}

export type LinearWeight = tf.Tensor2D | HostMatrix;

/** x: [batch, seq, in]; weight: [out, in] -> [batch, seq, out]. */
export function linear(x: tf.Tensor3D, weight: LinearWeight): tf.Tensor3D {
  if (!(weight instanceof tf.Tensor)) return hostLinear(x, weight);
  return tf.tidy(() => {
    const [b, t, d] = x.shape;
    const y = rowDots(tf.reshape(x, [1, b * t, d]), tf.expandDims(weight, 0) as tf.Tensor3D); // [1, b*t, out]
    return tf.reshape(y, [b, t, weight.shape[0]]);
  });
}

function hostLinear(x: tf.Tensor3D, w: HostMatrix): tf.Tensor3D {
  const [b, t, d] = x.shape;
  const held = usesKernel() ? w.dotsWeights?.() : undefined;
  if (held) return tf.tidy(() => tf.reshape(hostDots(tf.reshape(x, [b * t, d]), held, w.shape[0]), [b, t, w.shape[0]]));
  if (b * t === 1 && w.matVec) return tf.tensor3d(w.matVec(x.dataSync() as Float32Array), [1, 1, w.shape[0]]); // cpu: float32 sums
  const weight = w.toTensor(); // [out, in], for this product only
  try {
    return linear(x, weight);
  } finally {
    weight.dispose();
  }
}
