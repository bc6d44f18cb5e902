// Exact sums: the one place where this implementation departs from plain tfjs kernels, and why.
//
// A float32 kernel that adds n terms one after another into a float32 accumulator (XNNPACK's
// GEMM, the wasm backend's reductions) loses about 2^-24 * sqrt(n / 6) relative: 1.4e-6 for the
// hidden size 3072 of Phi-4-mini, 2.2e-6 for its intermediate 8192, against 3e-8 for one float32
// rounding. Measured at full size, that made the default backend 30-80x less exact than an ideal
// float32 (exact sums, float32 storage) from layer 0 on (docs/fidelity.md). So every dot product
// and the softmax are taken in float64 (exact for float32 inputs: a product of two float32 values
// fits float64's 53 bits) and rounded to float32 once; layers/rmsnorm.ts does the same.
//
// Two independent implementations, as with the backends themselves: on the cpu backend the plain
// JavaScript loops below; elsewhere the WebAssembly SIMD kernel in ./kernels/ (dots.wat), which
// splits the work between threads. Both give float32(exact sum) up to float64's own rounding.

import * as tf from '@tensorflow/tfjs-core';
import { type DotsWeights, exactDots } from './kernels/dots.js';

export type { DotsWeights };
/** For weight holders (src/model/weights.ts): memories the kernel reads weights from in place. */
export { WEIGHT_MEMORY_SCRATCH, releaseWeightMemory, weightMemory } from './kernels/dots.js';

let exact = true;

/**
 * Training (src/teach/toy/train.ts) needs gradients, which host sums cannot give: with `false` the
 * products, the softmax and RMSNorm are plain (differentiable) tfjs ops, float32 sums and all.
 * The default, and everything but training, is exact.
 */
export function setExactSums(on: boolean): void {
  exact = on;
}

export function exactSums(): boolean {
  return exact;
}

/** Whether products go to the WebAssembly kernel (every backend but cpu, which keeps its own JavaScript loops). */
export function usesKernel(): boolean {
  return tf.getBackend() !== 'cpu';
}

/** y[m, n] = alpha * sum_k a[m, k] b[n, k] in JavaScript float64: a [M, K], b [N, K] (flat, from offsets). */
function dotsJs(A: Float32Array, aAt: number, M: number, K: number, B: Float32Array, bAt: number, N: number, alpha: number, y: Float32Array, yAt: number): void {
  for (let n = 0; n < N; n++) {
    const bn = bAt + n * K;
    for (let m = 0; m < M; m++) {
      const am = aAt + m * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let k = 0;
      for (; k + 4 <= K; k += 4) {
        s0 += A[am + k] * B[bn + k];
        s1 += A[am + k + 1] * B[bn + k + 1];
        s2 += A[am + k + 2] * B[bn + k + 2];
        s3 += A[am + k + 3] * B[bn + k + 3];
      }
      for (; k < K; k++) s0 += A[am + k] * B[bn + k];
      y[yAt + m * N + n] = alpha * ((s0 + s1) + (s2 + s3));
    }
  }
}

/** y[g, m, n] = alpha * sum_k a[g, m, k] b[g, n, k]:  a [G, M, K], b [G, N, K] -> [G, M, N], float32 rounded once. */
export function rowDots(a: tf.Tensor3D, b: tf.Tensor3D, alpha = 1): tf.Tensor3D {
  if (!exact) return tf.tidy(() => tf.mul(tf.matMul(a, b, false, true), alpha));
  const [G, M, K] = a.shape;
  const N = b.shape[1];
  if (b.shape[0] !== G || b.shape[2] !== K) throw new Error(`rowDots: shapes [${a.shape}] and [${b.shape}] do not match`);
  const A = a.dataSync() as Float32Array;
  const B = b.dataSync() as Float32Array;
  const y = new Float32Array(G * M * N);
  const kernel = usesKernel();
  for (let g = 0; g < G; g++) {
    if (kernel) {
      y.set(exactDots(A.subarray(g * M * K, (g + 1) * M * K), M, K, { f32: B.subarray(g * N * K, (g + 1) * N * K) }, N, alpha), g * M * N);
    } else {
      dotsJs(A, g * M * K, M, K, B, g * N * K, N, alpha, y, g * M * N);
    }
  }
  return tf.tensor3d(y, [G, M, N]);
}

/** x [M, K] times weight rows held on the host (float32 or bf16) [N, K]^T -> [M, N], by the kernel. */
export function hostDots(x: tf.Tensor2D, w: DotsWeights, N: number): tf.Tensor2D {
  const [M, K] = x.shape;
  return tf.tensor2d(exactDots(x.dataSync() as Float32Array, M, K, w, N), [M, N]);
}

/** softmax over the last axis, exactly: exp(x - max) / sum(exp(x - max)) in float64, rounded once. */
export function softmax<T extends tf.Tensor>(x: T): T {
  if (!exact) return tf.softmax(x, -1) as T;
  const n = x.shape[x.shape.length - 1];
  const X = x.dataSync() as Float32Array;
  const y = new Float32Array(X.length);
  const e = new Float64Array(n);
  for (let r = 0; r < X.length; r += n) {
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, X[r + i]);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += (e[i] = Math.exp(X[r + i] - max));
    for (let i = 0; i < n; i++) y[r + i] = e[i] / sum;
  }
  return tf.tensor(y, x.shape) as T;
}
