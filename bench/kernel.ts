// The exact kernel alone (layers/kernels/dots.ts), on full-size shapes, one thread and then every
// thread: how close its products come to the roofline and the read floor that bench/limits.ts
// measures, apart from everything else a forward pass does.
//   prefill: [T, 3072] x [8192, 3072]^T, bf16 weights read in place (Phi-4-mini's down projection
//            transposed: the shape of most of a pass's work), T the bench's prompt length;
//   decode:  [1, 3072] x [65536, 3072]^T, bf16 in place (384 MiB, far past any cache), the
//            one-row variant a decoding step runs.

import { WEIGHT_MEMORY_SCRATCH, exactDots, kernelThreads, releaseWeightMemory, useKernelThreads, weightMemory } from '../layers/kernels/dots.js';

export interface KernelRates {
  threads: number;
  prefill_shape: [number, number, number]; // [M, N, K]
  prefill_flops_per_s_one_thread: number;
  prefill_flops_per_s: number;
  decode_shape: [number, number, number];
  decode_bytes_per_s_one_thread: number;
  decode_bytes_per_s: number;
}

/** Best of `reps` calls, after one unmeasured call. */
function best(reps: number, f: () => void): number {
  f();
  let t = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    f();
    t = Math.min(t, (performance.now() - t0) / 1000);
  }
  return t;
}

/** Weights of N rows of K bf16 values (finite, varied) at the start of a weight memory's data. */
function bf16Weights(N: number, K: number): WebAssembly.Memory {
  const memory = weightMemory(WEIGHT_MEMORY_SCRATCH + N * K * 2);
  const w = new Uint16Array(memory.buffer, WEIGHT_MEMORY_SCRATCH, N * K);
  for (let i = 0; i < w.length; i++) w[i] = 0x3c00 + ((i * 2654435761) >>> 22); // positive, from 2^-7 to 2
  return memory;
}

export function measureKernel(promptTokens: number): KernelRates {
  const threads = kernelThreads();
  const [M, N, K] = [Math.max(4, promptTokens), 8192, 3072];
  const [dN, dK] = [65536, 3072];
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
  const prefillW = bf16Weights(N, K);
  const decodeW = bf16Weights(dN, dK);
  const before = useKernelThreads(undefined);
  try {
    const rates = (n: number) => {
      useKernelThreads(n);
      const tp = best(2, () => exactDots(a, M, K, { resident: { memory: prefillW, at: WEIGHT_MEMORY_SCRATCH, bf16: true } }, N));
      const td = best(5, () => exactDots(a.subarray(0, dK), 1, dK, { resident: { memory: decodeW, at: WEIGHT_MEMORY_SCRATCH, bf16: true } }, dN));
      return { prefill: (2 * M * N * K) / tp, decode: (dN * dK * 2) / td };
    };
    const one = rates(1);
    const all = rates(threads);
    return {
      threads,
      prefill_shape: [M, N, K],
      prefill_flops_per_s_one_thread: one.prefill,
      prefill_flops_per_s: all.prefill,
      decode_shape: [1, dN, dK],
      decode_bytes_per_s_one_thread: one.decode,
      decode_bytes_per_s: all.decode,
    };
  } finally {
    useKernelThreads(before);
    releaseWeightMemory(prefillW);
    releaseWeightMemory(decodeW);
  }
}
