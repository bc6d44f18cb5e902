// The float32-block sums of the WebAssembly kernel (layers/kernels/dots.wat, "Float32 blocks";
// PHI4_SUMS=f32-blocks): against the same scheme written here in JavaScript, bit for bit, on the
// copying path and on weights read in place, one thread and every thread; and against float64
// sums, to show what the scheme costs and that it is not the float64 kernel under another name.

import { expect } from 'chai';
import { WEIGHT_MEMORY_SCRATCH, exactDots, releaseWeightMemory, setKernelSums, useKernelThreads, weightMemory } from '../layers/kernels/dots.js';
import { float32ToBf16Bits, bf16BitsToFloat32 } from '../weights/index.js';
import { rand } from './helpers.js';

/**
 * float32(alpha * sum) where, for each block of 64 values of k from k = 0, the products
 * float32(a * b) are summed in float32 in four lanes (k mod 4), and each block's lanes join two
 * float64 sums: lanes 0 and 2 into one, 1 and 3 into the other; the two added at the end.
 */
function blockSums(a: Float32Array, b: ArrayLike<number>, M: number, N: number, K: number, alpha = 1): Float32Array {
  const f = Math.fround;
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let even = 0, odd = 0;
      for (let k0 = 0; k0 < K; k0 += 64) {
        const lane = [0, 0, 0, 0];
        for (let k = k0; k < Math.min(k0 + 64, K); k++) lane[k % 4] = f(lane[k % 4]! + f(a[m * K + k]! * b[n * K + k]!));
        even += lane[0]! + lane[2]!;
        odd += lane[1]! + lane[3]!;
      }
      y[m * N + n] = alpha * (even + odd);
    }
  }
  return y;
}

/**
 * The one-row scheme (decoding): blocks of 128 values of k, products summed in float32 in eight
 * lanes (k mod 8); each block joins two float64 sums, (lanes 0 + 4, 2 + 6) then (1 + 5, 3 + 7).
 */
function rowBlockSums(a: Float32Array, b: ArrayLike<number>, N: number, K: number, alpha = 1): Float32Array {
  const f = Math.fround;
  const y = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let s0 = 0, s1 = 0;
    for (let k0 = 0; k0 < K; k0 += 128) {
      const l = [0, 0, 0, 0, 0, 0, 0, 0];
      for (let k = k0; k < Math.min(k0 + 128, K); k++) l[k % 8] = f(l[k % 8]! + f(a[k]! * b[n * K + k]!));
      s0 += l[0]! + l[4]!;
      s1 += l[2]! + l[6]!;
      s0 += l[1]! + l[5]!;
      s1 += l[3]! + l[7]!;
    }
    y[n] = alpha * (s0 + s1);
  }
  return y;
}

/** float32(alpha * the float64 sum), k ascending. */
function float64Sums(a: Float32Array, b: ArrayLike<number>, M: number, N: number, K: number, alpha = 1): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k]! * b[n * K + k]!;
      y[m * N + n] = alpha * s;
    }
  }
  return y;
}

const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

describe('float32-block sums (PHI4_SUMS=f32-blocks)', () => {
  let before: ReturnType<typeof setKernelSums>;
  beforeEach(() => { before = setKernelSums('f32-blocks'); });
  afterEach(() => { setKernelSums(before); });

  // K values the blocks (64) and the chunks (256) do not divide, rows the tile (4 x 2) does not divide
  for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [4, 2, 8], [5, 3, 100], [9, 130, 3072], [70, 37, 1004], [600, 3, 8192]]) {
    it(`copying path: [${M}, ${K}] x [${N}, ${K}]^T equals the scheme in JavaScript, float32 and bf16 weights`, () => {
      const a = rand(M * K, M + 1);
      const b = rand(N * K, N + 2).map((v) => v * 3);
      const h = Uint16Array.from(b, (v) => float32ToBf16Bits(v));
      const bAsBf16 = Float32Array.from(h, (v) => bf16BitsToFloat32(v));
      expect(bits(exactDots(a, M, K, { f32: b }, N, 0.25)).equals(bits(blockSums(a, b, M, N, K, 0.25)))).to.equal(true);
      expect(bits(exactDots(a, M, K, { bf16: new Uint8Array(h.buffer) }, N)).equals(bits(blockSums(a, bAsBf16, M, N, K)))).to.equal(true);
    });
  }

  // one row of a (decoding) goes through the one-row scheme: K values its blocks (128) do not divide
  for (const [M, N, K] of [[2, 3, 16], [9, 131, 3072], [70, 37, 1024], [130, 517, 256], [1, 1030, 3072], [1, 6, 1000], [1, 517, 8]]) {
    it(`weights read in place: [${M}, ${K}] x [${N}, ${K}]^T equals the scheme, one thread and every thread`, () => {
      const a = rand(M * K, M + 3);
      const h = Uint16Array.from(rand(N * K, N + 4), (v) => float32ToBf16Bits(v * 3));
      const memory = weightMemory(WEIGHT_MEMORY_SCRATCH + 2 + N * K * 2);
      new Uint16Array(memory.buffer, WEIGHT_MEMORY_SCRATCH + 2, N * K).set(h); // aligned to the element, not to 16
      const w = { resident: { memory, at: WEIGHT_MEMORY_SCRATCH + 2, bf16: true } };
      const threads = useKernelThreads(1);
      let one: Float32Array;
      try {
        one = exactDots(a, M, K, w, N, 0.5);
      } finally {
        useKernelThreads(threads);
      }
      const all = exactDots(a, M, K, w, N, 0.5);
      releaseWeightMemory(memory);
      const wf = Float32Array.from(h, (v) => bf16BitsToFloat32(v));
      const want = M === 1 ? rowBlockSums(a, wf, N, K, 0.5) : blockSums(a, wf, M, N, K, 0.5);
      // an odd last row of b goes through the copying path (the one-row kernel takes rows in pairs), whose tile sums in blocks of 64
      if (M === 1 && N % 2 === 1) want[N - 1] = blockSums(a, wf.subarray((N - 1) * K), 1, 1, K, 0.5)[0]!;
      expect(bits(one).equals(bits(want))).to.equal(true);
      expect(bits(all).equals(bits(want))).to.equal(true);
    });
  }

  it('differs from float64 sums, by about one float32 rounding: within 2x the float64 kernel\'s error against float64', () => {
    // rel L2 against float64 sums kept in float64 (not rounded): the float64 kernel's error is its
    // one rounding to float32; the float32 blocks add a rounding per product and per block sum.
    const [M, N, K] = [64, 64, 3072];
    const a = rand(M * K, 31);
    const b = rand(N * K, 32);
    const exact = new Float64Array(M * N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[m * K + k]! * b[n * K + k]!;
      exact[m * N + n] = s;
    }
    const relL2 = (y: Float32Array) => {
      let d = 0, r = 0;
      for (let i = 0; i < y.length; i++) { d += (y[i]! - exact[i]!) ** 2; r += exact[i]! ** 2; }
      return Math.sqrt(d / r);
    };
    const blocks = exactDots(a, M, K, { f32: b }, N);
    setKernelSums('f64');
    const f64 = exactDots(a, M, K, { f32: b }, N);
    expect(bits(f64).equals(bits(float64Sums(a, b, M, N, K)))).to.equal(true);
    expect(bits(blocks).equals(bits(f64))).to.equal(false);
    const [eb, e64] = [relL2(blocks), relL2(f64)];
    expect(e64).to.be.above(0);
    expect(eb).to.be.above(e64);
    expect(eb).to.be.below(2 * e64);
  });

  it('a setting other than f64 or f32-blocks is refused', () => {
    expect(() => setKernelSums('f16' as never)).to.throw(/f16.*not f64 or f32-blocks/);
  });
});
