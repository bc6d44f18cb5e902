// The exact dot-product kernel (dots.wat) over a shared WebAssembly memory of its own: the
// operands are copied in (the activations widened to float64, the weights as they are, float32
// or bf16 bytes) and padded with zeros to the kernel's tile, a block of weight rows at a time;
// the block's rows are split between this thread and worker threads (./dots-worker.ts), which run
// the same module over the same memory. XNNPACK runs on one thread here, so the second core pays
// for float64 sums.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DOTS_WASM } from './dots-wasm.js';

export interface DotsExports {
  dots(a: number, b: number, y: number, M: number, N: number, K: number, ldy: number, alpha: number): void;
  dots_bf16(a: number, b: number, y: number, M: number, N: number, K: number, ldy: number, alpha: number): void;
}

/** Weight rows: float32 values, or the little-endian bytes of bf16 values. */
export type DotsWeights = { f32: Float32Array } | { bf16: Uint8Array };

const BLOCK_BYTES = 32 * 2 ** 20; // weight rows, and outputs, copied per kernel call
const PAGE = 65536;
const up = (n: number, m: number) => Math.ceil(n / m) * m;

/**
 * The control block at the start of the memory: one 16-word slot per worker thread,
 *   [state, bf16, a, b, y, M, N, K, ldy, (pad), alpha as float64 at word 10]
 * state: 0 idle, 1 a job is posted, 2 done.
 */
export const SLOT_WORDS = 16;
const MAX_WORKERS = 7;
const DATA_AT = SLOT_WORDS * 4 * MAX_WORKERS;

interface Kernel {
  memory: WebAssembly.Memory;
  fns: DotsExports;
  ctl: Int32Array;
  workers: number;
}

let kernelState: Kernel | undefined;

/** Threads for the kernel: PHI4_THREADS, else the machine's cores (at most 8). */
export function kernelThreads(): number {
  const env = Number(process.env.PHI4_THREADS);
  const n = Number.isInteger(env) && env >= 1 ? env : availableParallelism();
  return Math.min(n, MAX_WORKERS + 1);
}

function kernel(bytes: number): Kernel {
  if (!kernelState) {
    const module = new WebAssembly.Module(Buffer.from(DOTS_WASM, 'base64'));
    const memory = new WebAssembly.Memory({ initial: Math.ceil(DATA_AT / PAGE), maximum: 65536, shared: true });
    const fns = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as DotsExports;
    const workers = kernelThreads() - 1;
    for (let i = 0; i < workers; i++) {
      const w = new Worker(new URL('./dots-worker.js', import.meta.url), { workerData: { module, memory, slot: i } });
      w.unref(); // never keeps the process alive
    }
    kernelState = { memory, fns, ctl: new Int32Array(memory.buffer, 0, DATA_AT / 4), workers };
  }
  const have = kernelState.memory.buffer.byteLength;
  if (bytes > have) kernelState.memory.grow(Math.ceil((bytes - have) / PAGE));
  return kernelState;
}

/** Runs one block: rows [0, N) of b split between this thread and the workers. */
function runBlock(k: Kernel, bf16: boolean, a: number, b: number, y: number, M: number, N: number, K: number, alpha: number): void {
  const parts = Math.min(k.workers + 1, N / 2);
  const share = up(Math.ceil(N / parts), 2);
  const esize = bf16 ? 2 : 4;
  const posted: number[] = [];
  for (let p = 1; p < parts; p++) {
    const n0 = p * share;
    if (n0 >= N) break;
    const s = (p - 1) * SLOT_WORDS;
    k.ctl.set([bf16 ? 1 : 0, a, b + n0 * K * esize, y + 4 * n0, M, Math.min(share, N - n0), K, N], s + 1);
    new Float64Array(k.memory.buffer, (s + 10) * 4, 1)[0] = alpha;
    Atomics.store(k.ctl, s, 1);
    Atomics.notify(k.ctl, s);
    posted.push(s);
  }
  (bf16 ? k.fns.dots_bf16 : k.fns.dots)(a, b, y, M, Math.min(share, N), K, N, alpha);
  for (const s of posted) {
    while (Atomics.load(k.ctl, s) === 1) Atomics.wait(k.ctl, s, 1);
    Atomics.store(k.ctl, s, 0);
  }
}

/**
 * y [M, N] = alpha * a [M, K] w[N, K]^T, every product and sum in float64, rounded to float32
 * once. `a` is float32, row-major. Rows of `a` go through the kernel a bounded block at a time.
 */
export function exactDots(a: Float32Array, M: number, K: number, w: DotsWeights, N: number, alpha = 1): Float32Array {
  const rowsPerBlock = Math.max(4, Math.floor(BLOCK_BYTES / (up(K, 8) * 8) / 4) * 4);
  if (M <= rowsPerBlock) return dotsBlock(a, M, K, w, N, alpha);
  const y = new Float32Array(M * N);
  for (let m0 = 0; m0 < M; m0 += rowsPerBlock) {
    const m = Math.min(rowsPerBlock, M - m0);
    y.set(dotsBlock(a.subarray(m0 * K, (m0 + m) * K), m, K, w, N, alpha), m0 * N);
  }
  return y;
}

function dotsBlock(a: Float32Array, M: number, K: number, w: DotsWeights, N: number, alpha: number): Float32Array {
  const bf16 = 'bf16' in w;
  const esize = bf16 ? 2 : 4;
  const Kp = up(K, 8);
  const Mp = up(M, 4);
  const Nb = Math.max(2, Math.min(up(N, 2), Math.floor(BLOCK_BYTES / (Kp * esize) / 2) * 2, Math.floor(BLOCK_BYTES / (Mp * 4) / 2) * 2));
  const aAt = DATA_AT;
  const bAt = aAt + Mp * Kp * 8;
  const yAt = bAt + Nb * Kp * esize;
  const k = kernel(yAt + Mp * Nb * 4);
  const buf = k.memory.buffer;

  const A = new Float64Array(buf, aAt, Mp * Kp);
  A.fill(0);
  for (let m = 0; m < M; m++) for (let i = 0; i < K; i++) A[m * Kp + i] = a[m * K + i];

  const src = bf16 ? new Uint16Array(w.bf16.buffer, w.bf16.byteOffset, N * K) : w.f32;
  const B = bf16 ? new Uint16Array(buf, bAt, Nb * Kp) : new Float32Array(buf, bAt, Nb * Kp);
  const Y = new Float32Array(buf, yAt, Mp * Nb);
  const y = new Float32Array(M * N);
  for (let n0 = 0; n0 < N; n0 += Nb) {
    const rows = Math.min(Nb, N - n0);
    const rowsP = up(rows, 2);
    if (Kp === K) {
      B.set(src.subarray(n0 * K, (n0 + rows) * K));
      B.fill(0, rows * Kp, rowsP * Kp);
    } else {
      B.fill(0, 0, rowsP * Kp);
      for (let r = 0; r < rows; r++) B.set(src.subarray((n0 + r) * K, (n0 + r + 1) * K), r * Kp);
    }
    runBlock(k, bf16, aAt, bAt, yAt, Mp, rowsP, Kp, alpha);
    for (let m = 0; m < M; m++) y.set(Y.subarray(m * rowsP, m * rowsP + rows), m * N + n0);
  }
  return y;
}
