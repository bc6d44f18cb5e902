// node dist/bench/limits.js [--read-bytes N] [--threads N] [--json]
//
// What bounds the exact kernel on this machine, measured with the micro-kernels of
// layers/kernels/roofline.wat on worker threads, one thread alone and then every thread at once:
//   - the float64 SIMD roofline (the multiply and add the kernel's tiles do): prefill's ceiling;
//   - the float32 SIMD roofline, for comparison (what a float32 kernel could reach);
//   - the SIMD read bandwidth of a buffer as big as the weights (--read-bytes): a decode step reads
//     every weight once, so weights / this is the decode floor.
// The bench (bench/bench.ts) runs this in a child process so that the read buffer's memory is
// returned before the checkpoint loads. The threads start together (released by one shared word);
// a rate on all threads is the work of all of them over the slowest one's time; best of 3 rounds.

import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { UsageError, intFlag, parseArgs } from '../src/cli/args.js';
import { D_CHAIN, type LimitsJob, type LimitsReply, M_CHAIN } from './limits-worker.js';

export interface Limits {
  threads: number;
  /** float64x2 multiply + add, FLOP/s: one thread alone, then all threads together. */
  f64_roofline_flops_one_thread: number;
  f64_roofline_flops: number;
  f32_roofline_flops_one_thread: number;
  f32_roofline_flops: number;
  /** Bytes of the buffer read (as big as the weights), and its read rate: one thread, all threads. */
  read_bytes: number;
  read_bytes_per_s_one_thread: number;
  read_bytes_per_s: number;
}

const CHUNK = 2 ** 30; // bytes per WebAssembly memory of the read buffer (a memory holds at most 4 GiB)
const PAGE = 65536;
const FLOPS_PER_ITER = { f64: 12 * 2 * 2, f32: 12 * 4 * 2 }; // chains x lanes x (multiply + add)

interface Pool { workers: Worker[]; go: Int32Array; round: number }

/** Posts one job to each of the first jobs.length workers, releases them together, and waits for every reply. */
async function round(pool: Pool, jobs: LimitsJob[]): Promise<LimitsReply[]> {
  const r = ++pool.round;
  Atomics.store(pool.go, 0, 0);
  const replies = jobs.map((_, i) => new Promise<LimitsReply>((done, fail) => {
    pool.workers[i]!.once('message', done);
    pool.workers[i]!.once('error', fail);
  }));
  jobs.forEach((job, i) => pool.workers[i]!.postMessage({ ...job, round: r }));
  for (let n = Atomics.load(pool.go, 0); n < jobs.length; n = Atomics.load(pool.go, 0)) Atomics.wait(pool.go, 0, n, 1000);
  Atomics.store(pool.go, 1, r);
  Atomics.notify(pool.go, 1);
  const got = await Promise.all(replies);
  for (const w of pool.workers) w.removeAllListeners('error');
  return got;
}

/** What chains_f64 / chains_f32 return: the same recurrence and the same order of the final sums, in JavaScript. */
export function chainsExpected(type: 'f64' | 'f32', iters: number): number {
  const lanes = type === 'f64' ? 2 : 4;
  const r = type === 'f64' ? (x: number) => x : Math.fround;
  const [m, d] = [r(M_CHAIN), r(D_CHAIN)];
  const c = Array.from({ length: 12 }, (_, i) => Array.from({ length: lanes }, (_, l) => {
    let v = r(i + l / lanes);
    for (let s = 0; s < iters; s++) v = r(r(v * m) + d);
    return v;
  }));
  if (type === 'f64') { // chain by chain within each lane, then lane 0 + lane 1
    const lane = (l: number) => c.reduce((s, ch, i) => (i === 0 ? ch[l]! : s + ch[l]!), 0);
    return lane(0) + lane(1);
  }
  const four = (ch: number[]) => ((ch[0]! + ch[1]!) + ch[2]!) + ch[3]!; // in float64
  const six = (from: number) => c.slice(from, from + 6).reduce((s, ch, i) => (i === 0 ? four(ch) : s + four(ch)), 0);
  return Math.fround(six(0) + six(6));
}

/** FLOP/s of the chains on `n` threads at once, best of 3 after warming the compiled code up. */
async function chains(pool: Pool, type: 'f64' | 'f32', n: number, seconds: number): Promise<number> {
  const jobs = (iters: number) => Array.from({ length: n }, () => ({ op: 'chains' as const, type, iters, round: 0 }));
  for (let w = 0; w < 5; w++) await round(pool, jobs(2 ** 18)); // the engine compiles hot code again, optimised, after a few calls
  const probe = await round(pool, jobs(2 ** 22));
  const perIter = Math.max(...probe.map((x) => x.seconds)) / 2 ** 22;
  const iters = Math.min(2 ** 30, Math.max(2 ** 16, Math.round(seconds / Math.max(perIter, 1e-12)))); // about `seconds` a round
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const got = await round(pool, jobs(iters));
    best = Math.max(best, (n * iters * FLOPS_PER_ITER[type]) / Math.max(...got.map((x) => x.seconds)));
  }
  return best;
}

/** Bytes per second read from the buffer split between `n` threads, best of 3 passes after one unmeasured pass. */
async function read(pool: Pool, sizes: number[], n: number): Promise<number> {
  const jobs: LimitsJob[] = Array.from({ length: n }, (_, t) => ({
    op: 'read',
    round: 0,
    ranges: sizes.map((bytes, mem) => {
      const share = Math.floor(bytes / n / 64) * 64;
      return [mem, t * share, t === n - 1 ? bytes - t * share : share] as [number, number, number];
    }),
  }));
  const words = sizes.reduce((s, b) => s + b / 4, 0);
  let best = 0;
  for (let r = 0; r < 4; r++) {
    const got = await round(pool, jobs);
    const sum = got.reduce((s, x) => (s + x.value) | 0, 0);
    if (sum !== (words | 0)) throw new Error(`read bandwidth: the threads summed ${sum}, not ${words | 0}: some bytes were not read`);
    if (r > 0) best = Math.max(best, sizes.reduce((s, b) => s + b, 0) / Math.max(...got.map((x) => x.seconds)));
  }
  return best;
}

/**
 * Every limit, on `threads` threads, with a read buffer of about `readBytes` (every word 1); each
 * measured round of the chains lasts about `seconds`.
 */
export async function measureLimits(readBytes: number, threads = availableParallelism(), seconds = 0.25): Promise<Limits> {
  const total = Math.max(64 * threads, Math.floor(readBytes / (64 * threads)) * 64 * threads);
  const sizes: number[] = [];
  for (let left = total; left > 0; left -= Math.min(left, CHUNK)) sizes.push(Math.min(left, CHUNK));
  const memories = sizes.map((bytes) => {
    const m = new WebAssembly.Memory({ initial: Math.ceil(bytes / PAGE), maximum: Math.ceil(bytes / PAGE), shared: true });
    new Uint32Array(m.buffer, 0, bytes / 4).fill(1); // touches every page: the passes read memory, fault nothing
    return m;
  });
  const sync = new SharedArrayBuffer(8);
  const pool: Pool = {
    workers: Array.from({ length: threads }, () => new Worker(new URL('./limits-worker.js', import.meta.url), { workerData: { limits: { memories, sync } } })),
    go: new Int32Array(sync),
    round: 0,
  };
  try {
    return {
      threads,
      f64_roofline_flops_one_thread: await chains(pool, 'f64', 1, seconds),
      f64_roofline_flops: await chains(pool, 'f64', threads, seconds),
      f32_roofline_flops_one_thread: await chains(pool, 'f32', 1, seconds),
      f32_roofline_flops: await chains(pool, 'f32', threads, seconds),
      read_bytes: total,
      read_bytes_per_s_one_thread: await read(pool, sizes, 1),
      read_bytes_per_s: await read(pool, sizes, threads),
    };
  } finally {
    await Promise.all(pool.workers.map((w) => w.terminate()));
  }
}

async function main(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['read-bytes', 'threads'], ['json']);
  if (p.positional.length) throw new UsageError(`limits takes no positional arguments (got ${p.positional[0]})`);
  const limits = await measureLimits(intFlag(p, 'read-bytes', 64) ?? 2 ** 30, intFlag(p, 'threads', 1) ?? availableParallelism());
  if (p.flags.has('json')) console.log(JSON.stringify(limits));
  else console.log(formatLimits(limits));
}

/** Two lines for people. */
export function formatLimits(l: Limits): string {
  const g = (x: number) => (x / 1e9).toFixed(1);
  return [
    `roofline     float64x2 multiply+add ${g(l.f64_roofline_flops_one_thread)} GFLOP/s on one thread, ${g(l.f64_roofline_flops)} on ${l.threads}; ` +
      `float32x4 ${g(l.f32_roofline_flops_one_thread)}, ${g(l.f32_roofline_flops)}`,
    `read         SIMD read of ${g(l.read_bytes)} GB: ${g(l.read_bytes_per_s_one_thread)} GB/s on one thread, ${g(l.read_bytes_per_s)} GB/s on ${l.threads}`,
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: Error) => {
      console.error(`limits: ${err.name === 'UsageError' ? err.message : err.stack}`);
      process.exit(err.name === 'UsageError' ? 2 : 1);
    },
  );
}
