// Exact sums (layers/exact.ts, layers/kernels/): the WebAssembly kernel and the JavaScript loops
// against float64 sums computed here, the committed module against its source, and both backends
// against each other.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { rowDots, softmax } from '../layers/exact.js';
import { rmsNorm } from '../layers/rmsnorm.js';
import { WEIGHT_MEMORY_SCRATCH, exactDots, releaseWeightMemory, useKernelThreads, weightMemory } from '../layers/kernels/dots.js';
import { DOTS_WASM } from '../layers/kernels/dots-wasm.js';
import { KERNEL_DIR, assemble, kernelSource, moduleSource } from '../tools/assemble-kernels.js';
import { BF16_SHARED_WASM, BF16_WASM } from '../layers/kernels/bf16-wasm.js';
import { float32ToBf16Bits, bf16BitsToFloat32 } from '../weights/index.js';
import { rand, useBackend } from './helpers.js';

/** float32(alpha * sum_k a[m, k] b[n, k]) with the sum in float64, k ascending. */
function expected(a: Float32Array, b: ArrayLike<number>, M: number, N: number, K: number, alpha = 1): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k] * b[n * K + k];
      y[m * N + n] = alpha * s;
    }
  }
  return y;
}

/** Elements further apart than one float32 ulp (float64 sums in another order may round the other way, rarely). */
function offByMoreThanUlp(x: Float32Array, y: Float32Array): number {
  let bad = 0;
  for (let i = 0; i < x.length; i++) {
    const ulp = Math.max(2 ** -149, 2 ** (Math.floor(Math.log2(Math.abs(y[i]) || 2 ** -149)) - 23));
    if (!(Math.abs(x[i] - y[i]) <= ulp)) bad++;
  }
  return bad;
}

describe('exact sums', () => {
  it('the committed kernel module is the assembly of layers/kernels/dots.wat (npm run kernels)', async () => {
    const bytes = await assemble(join(KERNEL_DIR, 'dots.wat'));
    expect(Buffer.from(DOTS_WASM, 'base64').equals(Buffer.from(bytes))).to.equal(true);
    expect(readFileSync(join(KERNEL_DIR, 'dots-wasm.ts'), 'utf8')).to.equal(moduleSource('dots', bytes));
  });

  it('the committed bf16 modules (unshared and shared memory) are the assembly of layers/kernels/bf16.wat', async () => {
    const file = join(KERNEL_DIR, 'bf16.wat');
    const [bytes, shared] = [await assemble(file), await assemble(file, true)];
    expect(Buffer.from(BF16_WASM, 'base64').equals(Buffer.from(bytes))).to.equal(true);
    expect(Buffer.from(BF16_SHARED_WASM, 'base64').equals(Buffer.from(shared))).to.equal(true);
    expect(Buffer.from(shared).equals(Buffer.from(bytes))).to.equal(false); // the import differs
    expect(readFileSync(join(KERNEL_DIR, 'bf16-wasm.ts'), 'utf8')).to.equal(await kernelSource('bf16'));
  });

  // the last shape passes the rows of a kernel call (512 rows of 8192) and is done in two
  for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [5, 3, 13], [4, 2, 8], [7, 33, 100], [9, 130, 3072], [600, 3, 8192]]) {
    it(`the WebAssembly kernel gives float32(float64 sum) for [${M}, ${K}] x [${N}, ${K}]^T, float32 and bf16 weights`, () => {
      const a = rand(M * K, M + 1);
      const b = rand(N * K, N + 2).map((v) => v * 3);
      const bits = Uint16Array.from(b, (v) => float32ToBf16Bits(v));
      const bAsBf16 = Float32Array.from(bits, (h) => bf16BitsToFloat32(h));
      expect(offByMoreThanUlp(exactDots(a, M, K, { f32: b }, N, 0.25), expected(a, b, M, N, K, 0.25))).to.equal(0);
      expect(offByMoreThanUlp(exactDots(a, M, K, { bf16: new Uint8Array(bits.buffer) }, N), expected(a, bAsBf16, M, N, K))).to.equal(0);
    });
  }

  // Weights read in place from a weight memory, after bytes of another tensor (odd offsets, odd
  // row counts, a K the kernel's step does not divide, more rows of a than the scratch holds at
  // once, panels of rows that do not divide N, rows of a and values of k that the kernel's blocks
  // (64 rows, 256 values) do not divide, and one row of a: the decoding kernel).
  for (const [M, N, K] of [[1, 1, 8], [3, 5, 7], [5, 3, 16], [7, 33, 100], [9, 131, 3072], [700, 3, 8192], [6, 517, 1024], [70, 37, 1004], [1, 130, 3072], [1, 517, 1024]]) {
    it(`the kernel reads weights in place: [${M}, ${K}] x [${N}, ${K}]^T, float32 and bf16`, () => {
      const a = rand(M * K, M + 3);
      const b = rand(N * K, N + 4).map((v) => v * 3);
      const bits = Uint16Array.from(b, (v) => float32ToBf16Bits(v));
      const bAsBf16 = Float32Array.from(bits, (h) => bf16BitsToFloat32(h));
      const at = WEIGHT_MEMORY_SCRATCH + 6; // aligned to the element, not to 16
      const f32At = Math.ceil((at + N * K * 2) / 4) * 4 + 4;
      const memory = weightMemory(f32At + N * K * 4);
      new Uint8Array(memory.buffer, at, N * K * 2).set(new Uint8Array(bits.buffer));
      new Uint8Array(memory.buffer, f32At, N * K * 4).set(new Uint8Array(b.buffer));
      const dotsBf16 = exactDots(a, M, K, { resident: { memory, at, bf16: true } }, N, 0.5);
      expect(offByMoreThanUlp(dotsBf16, expected(a, bAsBf16, M, N, K, 0.5))).to.equal(0);
      const dotsF32 = exactDots(a, M, K, { resident: { memory, at: f32At, bf16: false } }, N);
      expect(offByMoreThanUlp(dotsF32, expected(a, b, M, N, K))).to.equal(0);
    });
  }

  // The threads take chunks of rows from a shared counter: which thread sums a row must not change
  // its value. One thread and every thread, the tile path and the one-row path, many chunks.
  for (const [M, N, K] of [[1, 1030, 3072], [13, 700, 256]]) {
    it(`one thread and every thread give the same bits: [${M}, ${K}] x [${N}, ${K}]^T, bf16 in place`, () => {
      const a = rand(M * K, 21);
      const bits = Uint16Array.from(rand(N * K, 22), (v) => float32ToBf16Bits(v * 3));
      const memory = weightMemory(WEIGHT_MEMORY_SCRATCH + N * K * 2);
      new Uint16Array(memory.buffer, WEIGHT_MEMORY_SCRATCH, N * K).set(bits);
      const w = { resident: { memory, at: WEIGHT_MEMORY_SCRATCH, bf16: true } };
      const before = useKernelThreads(1);
      let one: Float32Array;
      try {
        one = exactDots(a, M, K, w, N);
      } finally {
        useKernelThreads(before);
      }
      const all = exactDots(a, M, K, w, N);
      expect(Buffer.from(all.buffer).equals(Buffer.from(one.buffer))).to.equal(true);
      expect(offByMoreThanUlp(all, expected(a, Float32Array.from(bits, (h) => bf16BitsToFloat32(h)), M, N, K))).to.equal(0);
      releaseWeightMemory(memory);
    });
  }

  it('a product that fails on the threads throws, and the kernel goes on working; a released memory is registered afresh when used again', () => {
    const [M, N, K] = [4, 64, 1024];
    const memory = weightMemory(WEIGHT_MEMORY_SCRATCH + 16 * K * 2); // room for 16 rows, not 64
    const a = rand(M * K, 5);
    const past = { resident: { memory, at: WEIGHT_MEMORY_SCRATCH, bf16: true } };
    expect(() => exactDots(a, M, K, past, N)).to.throw(); // every thread reads past the memory's end
    const b = rand(N * K, 6);
    expect(offByMoreThanUlp(exactDots(a, M, K, { f32: b }, N), expected(a, b, M, N, K))).to.equal(0);
    const fits = { resident: { memory, at: WEIGHT_MEMORY_SCRATCH, bf16: true } };
    expect(exactDots(a, M, K, fits, 16)).to.have.length(M * 16);
    releaseWeightMemory(memory);
    expect(exactDots(a, M, K, fits, 16)).to.have.length(M * 16); // registered again, as a new memory
    expect(exactDots(a, 0, K, fits, 16)).to.have.length(0);
  });

  it('sums exactly where float32 accumulation would not', () => {
    // 2^24, then ones, then -2^24: a float32 accumulator loses every one (2^24 + 1 rounds back to 2^24).
    const K = 4097;
    const a = new Float32Array(K).fill(1);
    const b = new Float32Array(2 * K).fill(1);
    b[K - 1] = -(2 ** 24);
    b[2 * K - 1] = 2 ** 24;
    b[0] = 2 ** 24;
    const y = exactDots(a, 1, K, { f32: b }, 2);
    expect(Array.from(y)).to.deep.equal([K - 2, 2 ** 24 + K - 1]);
  });

  for (const backend of ['wasm', 'cpu']) {
    it(`${backend}: rowDots, RMSNorm and softmax against float64 computed here`, async () => {
      await useBackend(backend);
      const [G, M, N, K] = [3, 5, 6, 37];
      const a = rand(G * M * K, 11), b = rand(G * N * K, 12);
      const y = tf.tidy(() => rowDots(tf.tensor3d(a, [G, M, K]), tf.tensor3d(b, [G, N, K]), 0.5).dataSync() as Float32Array);
      const want = new Float32Array(G * M * N);
      for (let g = 0; g < G; g++) want.set(expected(a.subarray(g * M * K), b.subarray(g * N * K), M, N, K, 0.5), g * M * N);
      expect(offByMoreThanUlp(y, want)).to.equal(0);

      const x = rand(4 * 3072, 13);
      const w = rand(3072, 15);
      const normed = tf.tidy(() => rmsNorm(tf.tensor2d(x, [4, 3072]), tf.tensor1d(w), 1e-5).dataSync() as Float32Array);
      for (let r = 0; r < 4; r++) {
        let s = 0;
        for (let i = 0; i < 3072; i++) s += x[r * 3072 + i] ** 2;
        const scale = 1 / Math.sqrt(s / 3072 + 1e-5);
        for (let i = 0; i < 3072; i += 97) expect(normed[r * 3072 + i]).to.equal(Math.fround(w[i] * x[r * 3072 + i] * scale));
      }

      const z = Float32Array.from(rand(2 * 50, 14), (v) => v * 30);
      const p = tf.tidy(() => softmax(tf.tensor2d(z, [2, 50])).dataSync() as Float32Array);
      for (let r = 0; r < 2; r++) {
        const row = Array.from(z.subarray(r * 50, (r + 1) * 50));
        const max = Math.max(...row);
        const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
        row.forEach((v, i) => expect(p[r * 50 + i]).to.equal(Math.fround(Math.exp(v - max) / sum)));
      }
    });
  }
});
