// The exact dot-product kernel (dots.wat) over shared WebAssembly memories. Weights that already
// lie in such a memory (a `weightMemory`, where src/model/weights.ts keeps the bf16 checkpoint) are read
// in place: only the activations (widened to float64) and the outputs pass through the scratch
// room at the memory's front. Other weights are copied into the kernel's own memory a block of
// rows at a time and padded with zeros to the kernel's tile. Either way the rows are split between
// this thread and worker threads (./dots-worker.ts), which run the same module over the same
// memories. XNNPACK runs on one thread here, so the second core pays for float64 sums.
// How workers start and how this thread waits for them is ./threads.ts's (worker_threads under
// Node; Web Workers in a cross-origin-isolated page, ./threads-browser.ts).

import { DOTS_WASM } from './dots-wasm.js';
import { type KernelWorker, startWorker, threadCount, waitWhile, workersStarted } from './threads.js';

export interface DotsExports {
  dots(a: number, b: number, y: number, M: number, N: number, K: number, ldy: number, alpha: number, panel: number, rows: number): void;
  dots_bf16(a: number, b: number, y: number, M: number, N: number, K: number, ldy: number, alpha: number, panel: number, rows: number): void;
  dots_row_bf16(a: number, b: number, y: number, M: number, N: number, K: number, ldy: number, alpha: number, panel: number, rows: number): void;
}

/** Which of the module's functions a job runs: float32 rows, bf16 rows, or one row of a by bf16 rows. */
export const Kind = { F32: 0, Bf16: 1, RowBf16: 2 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** The function of `fns` for a job of this kind. */
export function kernelFn(fns: DotsExports, kind: number): DotsExports['dots'] {
  return kind === Kind.RowBf16 ? fns.dots_row_bf16 : kind === Kind.Bf16 ? fns.dots_bf16 : fns.dots;
}

/**
 * Weight rows: float32 values, the little-endian bytes of bf16 values, or rows lying in a
 * `weightMemory` at byte `at` (row-major, [N, K]), which the kernel reads where they are.
 */
export type DotsWeights =
  | { f32: Float32Array }
  | { bf16: Uint8Array }
  | { resident: { memory: WebAssembly.Memory; at: number; bf16: boolean } };

/** Bytes at the front of a weight memory that belong to the kernel during a call: activations and outputs. */
export const WEIGHT_MEMORY_SCRATCH = 32 * 2 ** 20;

/**
 * A shared memory of `bytes` (a multiple of 64 KiB, at most 4 GiB) whose weights the kernel can
 * read in place. Its first WEIGHT_MEMORY_SCRATCH bytes are the kernel's scratch during each call;
 * the holder may use them between calls.
 */
export function weightMemory(bytes: number): WebAssembly.Memory {
  const pages = Math.ceil(bytes / PAGE);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

const BLOCK_BYTES = 32 * 2 ** 20; // weight rows, and outputs, copied per kernel call
// A thread's float64 panel of weight rows (dots.wat): every block of rows of a is read once per
// panel, so the more rows it holds the fewer times a is read; the tiles walk it 256 values of k at a
// time, so only that slice (at most 128 rows: 256 KiB) has to stay in a core's second-level cache.
const PANEL_BYTES = 1536 * 2 ** 10;
const PANEL_MAX_ROWS = 128;
const SUMS_BYTES_PER_ROW = 64 * 16; // the tiles' sums between chunks of k: 64 rows of a (a block) by 2 lanes of float64
const PAGE = 65536;
const up = (n: number, m: number) => Math.ceil(n / m) * m;

/**
 * The control block at the start of the kernel's own memory: one 16-word slot per worker thread,
 *   [state, kind, a, b, y, M, N, K, ldy, memory, alpha as float64 at word 10, panel, chunk, chunks]
 * state: 0 idle, 1 a job is posted, 2 done, 3 failed (the worker caught an error). `memory`
 * numbers the memory the job's addresses are in: 0 the kernel's own, then each weight memory in
 * the order first used (sent to the workers over their ports before the first job that names it).
 * chunks (CHUNKS_WORD): how many chunks of rows the worker has claimed since it started (kernelChunks).
 * After the slots, CLAIM_WORD: the next row of b not yet taken by a thread (see claimRows).
 */
export const SLOT_WORDS = 16;
export const FAILED = 3;
export const CHUNKS_WORD = 14;
const MAX_WORKERS = 7;
export const CLAIM_WORD = SLOT_WORDS * MAX_WORKERS;
export const CONTROL_WORDS = CLAIM_WORD + SLOT_WORDS;
const DATA_AT = CONTROL_WORDS * 4;

interface Kernel {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  /** This thread's instance over each memory, by number. */
  fns: Map<number, DotsExports>;
  /** The number the next weight memory gets (numbers are not reused). */
  next: number;
  numbers: WeakMap<WebAssembly.Memory, number>;
  threads: KernelWorker[];
  ctl: Int32Array;
  workers: number;
}

let kernelState: Kernel | undefined;
let activeThreads = 0; // 0: every thread started (useKernelThreads)
let callerChunks = 0; // chunks the calling thread claimed (kernelChunks)

/** Threads for the kernel (threadCount(): PHI4_THREADS or the cores; in a page, see ./threads-browser.ts), at most 8. */
export function kernelThreads(): number {
  return Math.min(threadCount(), MAX_WORKERS + 1);
}

/** Starts the kernel and its workers; resolves to the threads it runs on, once all of them run. */
export async function kernelStarted(): Promise<number> {
  const k = kernel(0);
  await workersStarted();
  return 1 + k.threads.filter((t) => t.started()).length;
}

/**
 * Chunks of weight rows each thread has claimed since the kernel started: the calling thread's,
 * then each worker's. Shows how many threads took part (test/browser-threads.test.ts).
 */
export function kernelChunks(): number[] {
  const k = kernelState;
  if (!k) return [];
  return [callerChunks, ...k.threads.map((_, i) => Atomics.load(k.ctl, i * SLOT_WORDS + CHUNKS_WORD))];
}

/**
 * Runs the following products on at most `n` threads (at least 1; 0 or undefined: every thread
 * the kernel starts, kernelThreads()). For measuring how the threads scale (bench/kernel.ts).
 * Returns the setting it replaces.
 */
export function useKernelThreads(n: number | undefined): number {
  const before = activeThreads;
  activeThreads = n === undefined || n <= 0 ? 0 : Math.max(1, Math.floor(n));
  return before;
}

/** Rows of b a thread takes at a time for one row of a (a decoding step): 64 KiB of bf16 at K = 3072. */
const ROW_CHUNK = 32;

/**
 * Dynamic sharing: each thread, the caller's included, takes the next `chunk` rows of b from the
 * shared counter (CLAIM_WORD, an atomic add) until none are left, and runs the kernel on them. A
 * thread that another process slows down, or that starts late, takes fewer chunks instead of
 * holding the others back at the end, as fixed equal shares did.
 */
export function claimRows(fn: DotsExports['dots'], ctl: Int32Array, kind: number, a: number, b: number, y: number, M: number, N: number, K: number, ldy: number, alpha: number, panel: number, chunk: number): number {
  const rowBytes = K * (kind === Kind.F32 ? 4 : 2);
  let chunks = 0;
  for (let n0 = Atomics.add(ctl, CLAIM_WORD, chunk); n0 < N; n0 = Atomics.add(ctl, CLAIM_WORD, chunk)) {
    fn(a, b + n0 * rowBytes, y + 4 * n0, M, Math.min(chunk, N - n0), K, ldy, alpha, panel, chunk);
    chunks++;
  }
  return chunks; // the chunks this thread took
}

function kernel(bytes: number): Kernel {
  if (!kernelState) {
    const module = new WebAssembly.Module(Buffer.from(DOTS_WASM, 'base64'));
    const memory = new WebAssembly.Memory({ initial: Math.ceil(DATA_AT / PAGE), maximum: 65536, shared: true });
    const fns = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as DotsExports;
    const workers = kernelThreads() - 1;
    const threads = Array.from({ length: workers }, (_, slot) => startWorker({ module, memory, slot }));
    kernelState = { memory, module, fns: new Map([[0, fns]]), next: 1, numbers: new WeakMap([[memory, 0]]), threads, ctl: new Int32Array(memory.buffer, 0, CONTROL_WORDS), workers };
  }
  const have = kernelState.memory.buffer.byteLength;
  if (bytes > have) kernelState.memory.grow(Math.ceil((bytes - have) / PAGE));
  return kernelState;
}

/** The number of a weight memory, sending it to the workers the first time. */
function memoryNumber(k: Kernel, memory: WebAssembly.Memory): number {
  let id = k.numbers.get(memory);
  if (id === undefined) {
    id = k.next++;
    k.fns.set(id, new WebAssembly.Instance(k.module, { env: { memory } }).exports as unknown as DotsExports);
    for (const t of k.threads) t.post({ id, memory });
    k.numbers.set(memory, id);
  }
  return id;
}

/**
 * Rows [0, m) of a ([m, K] float32, row-major) widened into `dst` as the kernel's tiles read them:
 * groups of 4 rows, and within a group, for each pair of k, the 4 rows' two values. Rows up to the
 * next multiple of 4 and columns from K to Kp are zeros.
 */
function packRows(a: Float32Array, m: number, K: number, Kp: number, dst: Float64Array): void {
  dst.fill(0);
  for (let r = 0; r < m; r++) {
    const group = (r >> 2) * 4 * Kp + (r & 3) * 2;
    for (let k = 0; k < K; k++) dst[group + (k >> 1) * 8 + (k & 1)] = a[r * K + k]!;
  }
}

/**
 * One row a [K] (K a multiple of 8) widened into `dst` in the order dots_row_bf16 reads it: each 8
 * values of k as a0 a2 a4 a6 a1 a3 a5 a7 (the order its even/odd split widens bf16 rows in).
 */
function packRow(a: Float32Array, K: number, dst: Float64Array): void {
  for (let k = 0; k < K; k += 8) {
    for (let j = 0; j < 4; j++) {
      dst[k + j] = a[k + 2 * j]!;
      dst[k + 4 + j] = a[k + 2 * j + 1]!;
    }
  }
}

/** Rows of b per panel, and the bytes of one thread's panel buffer, for rows of K values. */
function panelShape(K: number): { rows: number; bytes: number } {
  const rows = Math.min(PANEL_MAX_ROWS, Math.max(2, Math.floor(PANEL_BYTES / (K * 8) / 2) * 2));
  return { rows, bytes: up(rows * K * 8 + rows * SUMS_BYTES_PER_ROW, 16) }; // the panel, then its tiles' sums (dots.wat)
}

/** Bytes of the panel buffers of every thread. */
function panelsBytes(k: Kernel, K: number): number {
  return (k.workers + 1) * panelShape(K).bytes;
}

/**
 * Forgets a weight memory (its holder is disposing of it): this thread's instance over it, and
 * the workers' at their next job, so that nothing keeps its gigabytes alive.
 */
export function releaseWeightMemory(memory: WebAssembly.Memory): void {
  const k = kernelState;
  const id = k?.numbers.get(memory);
  if (k === undefined || id === undefined) return;
  k.numbers.delete(memory);
  k.fns.delete(id);
  for (const t of k.threads) t.post({ id, release: true });
}

/**
 * Runs one block in memory `mem`: rows [0, N) of b shared between this thread and the workers
 * (claimRows), each widening its panels into its own buffer from `panels` on.
 */
function runBlock(k: Kernel, mem: number, kind: Kind, a: number, b: number, y: number, M: number, N: number, K: number, alpha: number, panels: number): void {
  const panel = panelShape(K);
  const chunk = kind === Kind.RowBf16 ? ROW_CHUNK : panel.rows;
  const running = k.threads.flatMap((t, slot) => (t.started() ? [slot] : [])); // a page's workers start late
  const parts = Math.min(activeThreads || k.workers + 1, running.length + 1, Math.ceil(N / chunk));
  Atomics.store(k.ctl, CLAIM_WORD, 0);
  const posted: number[] = [];
  for (let p = 1; p < parts; p++) {
    const s = running[p - 1]! * SLOT_WORDS;
    k.ctl.set([kind, a, b, y, M, N, K, N, mem], s + 1);
    new Float64Array(k.memory.buffer, (s + 10) * 4, 1)[0] = alpha;
    k.ctl.set([panels + p * panel.bytes, chunk], s + 12);
    Atomics.store(k.ctl, s, 1);
    Atomics.notify(k.ctl, s);
    posted.push(s);
  }
  const fns = k.fns.get(mem);
  let failed = false;
  try {
    if (fns === undefined) throw new Error(`exact kernel: memory ${mem} was released`);
    callerChunks += claimRows(kernelFn(fns, kind), k.ctl, kind, a, b, y, M, N, K, N, alpha, panels, chunk);
  } finally { // the workers finish (or fail) their shares before anything else is posted to them
    for (const s of posted) {
      waitWhile(k.ctl, s, 1);
      failed ||= Atomics.load(k.ctl, s) === FAILED;
      Atomics.store(k.ctl, s, 0);
    }
  }
  if (failed) throw new Error('exact kernel: a worker thread failed its share of a product (its error is on stderr)');
}

/**
 * y [M, N] = alpha * a [M, K] w[N, K]^T, every product and sum in float64, rounded to float32
 * once. `a` is float32, row-major. Rows of `a` go through the kernel a bounded block at a time.
 */
export function exactDots(a: Float32Array, M: number, K: number, w: DotsWeights, N: number, alpha = 1): Float32Array {
  if (M === 0 || N === 0) return new Float32Array(M * N);
  if ('resident' in w) return residentDots(a, M, K, w.resident, N, alpha);
  const rowsPerBlock = Math.max(4, Math.floor(BLOCK_BYTES / (up(K, 8) * 8) / 4) * 4);
  if (M <= rowsPerBlock) return dotsBlock(a, M, K, w, N, alpha);
  const y = new Float32Array(M * N);
  for (let m0 = 0; m0 < M; m0 += rowsPerBlock) {
    const m = Math.min(rowsPerBlock, M - m0);
    y.set(dotsBlock(a.subarray(m0 * K, (m0 + m) * K), m, K, w, N, alpha), m0 * N);
  }
  return y;
}

/**
 * The weights read where they lie: the activations, a block of rows at a time, and the outputs,
 * a block of columns at a time, pass through the memory's scratch room. An odd last weight row
 * (the tile takes two) goes through the copying path.
 */
function residentDots(a: Float32Array, M: number, K: number, w: { memory: WebAssembly.Memory; at: number; bf16: boolean }, N: number, alpha: number): Float32Array {
  const esize = w.bf16 ? 2 : 4;
  if (w.at % esize !== 0 || w.at < WEIGHT_MEMORY_SCRATCH) throw new Error(`exactDots: weights at byte ${w.at} of their memory: not aligned to ${esize} or inside the kernel's scratch`);
  /** Rows [n0, n1) as the copying path takes them (a view, copied into the kernel's memory there). */
  const copied = (n0: number, n1: number): DotsWeights => {
    const bytes = new Uint8Array(w.memory.buffer, w.at + n0 * K * esize, (n1 - n0) * K * esize);
    return w.bf16 ? { bf16: bytes } : { f32: new Float32Array(bytes.buffer, bytes.byteOffset, (n1 - n0) * K) };
  };
  const k = kernel(0);
  // the scratch: the threads' panels, then a block of rows of a (float64), then outputs
  const aAt = panelsBytes(k, K);
  // the kernel's step does not divide the rows, or they are too long for the scratch: copy them, padded
  if (K % (w.bf16 ? 8 : 4) !== 0 || aAt + 4 * (K * 8 + 2 * 4) > WEIGHT_MEMORY_SCRATCH) return exactDots(a, M, K, copied(0, N), N, alpha);
  const mem = memoryNumber(k, w.memory);
  const Ne = N - (N % 2);
  const y = new Float32Array(M * N);
  const rowsPerBlock = Math.max(4, Math.floor((WEIGHT_MEMORY_SCRATCH - aAt) / 2 / (K * 8) / 4) * 4);
  for (let m0 = 0; m0 < M; m0 += rowsPerBlock) {
    const m = Math.min(rowsPerBlock, M - m0);
    const kind = m === 1 && w.bf16 ? Kind.RowBf16 : w.bf16 ? Kind.Bf16 : Kind.F32; // one row (decoding): no padding to 4
    const Mp = kind === Kind.RowBf16 ? 1 : up(m, 4);
    const A = new Float64Array(w.memory.buffer, aAt, Mp * K);
    if (kind === Kind.RowBf16) packRow(a.subarray(m0 * K, m0 * K + K), K, A); // one row, in the order of its even/odd split
    else packRows(a.subarray(m0 * K, (m0 + m) * K), m, K, K, A); // [Mp, K] packed in groups of 4 rows
    const yAt = aAt + Mp * K * 8;
    const Nb = Math.max(2, Math.floor((WEIGHT_MEMORY_SCRATCH - yAt) / (Mp * 4) / 2) * 2); // output columns per call
    const Y = new Float32Array(w.memory.buffer, yAt, Mp * Nb);
    for (let n0 = 0; n0 < Ne; n0 += Nb) {
      const cols = Math.min(Nb, Ne - n0);
      runBlock(k, mem, kind, aAt, w.at + n0 * K * esize, yAt, Mp, cols, K, alpha, 0);
      for (let r = 0; r < m; r++) y.set(Y.subarray(r * cols, r * cols + cols), (m0 + r) * N + n0);
    }
  }
  if (Ne < N) { // the odd last row
    const col = exactDots(a, M, K, copied(N - 1, N), 1, alpha);
    for (let r = 0; r < M; r++) y[r * N + N - 1] = col[r]!;
  }
  return y;
}

function dotsBlock(a: Float32Array, M: number, K: number, w: { f32: Float32Array } | { bf16: Uint8Array }, N: number, alpha: number): Float32Array {
  const bf16 = 'bf16' in w;
  const esize = bf16 ? 2 : 4;
  const Kp = up(K, 8);
  const Mp = up(M, 4);
  const Nb = Math.max(2, Math.min(up(N, 2), Math.floor(BLOCK_BYTES / (Kp * esize) / 2) * 2, Math.floor(BLOCK_BYTES / (Mp * 4) / 2) * 2));
  const aAt = DATA_AT;
  const bAt = aAt + Mp * Kp * 8;
  const yAt = bAt + Nb * Kp * esize;
  const panels = up(yAt + Mp * Nb * 4, 16);
  const k = kernel(panels + panelsBytes(kernel(0), Kp));
  const buf = k.memory.buffer;

  packRows(a, M, K, Kp, new Float64Array(buf, aAt, Mp * Kp));

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
    runBlock(k, 0, bf16 ? Kind.Bf16 : Kind.F32, aAt, bAt, yAt, Mp, rowsP, Kp, alpha, panels);
    for (let m = 0; m < M; m++) y.set(Y.subarray(m * rowsP, m * rowsP + rows), m * N + n0);
  }
  return y;
}
