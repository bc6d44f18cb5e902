// A thread of bench/limits.ts: runs one micro-kernel of layers/kernels/roofline.wat per message,
// starting when the main thread releases every thread at once (the `go` word), and posts how long
// it took and what it computed.

import { parentPort, workerData } from 'node:worker_threads';
import { ROOFLINE_WASM } from '../layers/kernels/roofline-wasm.js';

export interface RooflineExports {
  chains_f64(iters: number, m: number, d: number): number;
  chains_f32(iters: number, m: number, d: number): number;
  read(p: number, bytes: number): number;
}

/** A job: `chains` of one type for `iters` iterations, or `read` of byte ranges of the memories. */
export type LimitsJob =
  | { op: 'chains'; type: 'f64' | 'f32'; iters: number; round: number }
  | { op: 'read'; ranges: [memory: number, at: number, bytes: number][]; round: number };

export interface LimitsReply { seconds: number; value: number; round: number }

export const M_CHAIN = 1 - 2 ** -20; // c * m + d stays finite and moves every step
export const D_CHAIN = 2 ** -10;

const module = new WebAssembly.Module(Buffer.from(ROOFLINE_WASM, 'base64'));
export const rooflineInstance = (memory: WebAssembly.Memory) =>
  new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as RooflineExports;

if (parentPort && workerData?.limits) {
  const { memories, sync } = workerData.limits as { memories: WebAssembly.Memory[]; sync: SharedArrayBuffer };
  const scratch = new WebAssembly.Memory({ initial: 0, maximum: 1, shared: true });
  const fns = [rooflineInstance(scratch), ...memories.map(rooflineInstance)]; // 0: no memory used; i + 1: memories[i]
  const go = new Int32Array(sync); // [ready count, round released]
  const port = parentPort;
  port.on('message', (job: LimitsJob) => {
    Atomics.add(go, 0, 1);
    Atomics.notify(go, 0);
    for (let r = Atomics.load(go, 1); r < job.round; r = Atomics.load(go, 1)) Atomics.wait(go, 1, r); // wait on the value seen
    const t0 = performance.now();
    let value = 0;
    if (job.op === 'chains') {
      value = job.type === 'f64' ? fns[0]!.chains_f64(job.iters, M_CHAIN, D_CHAIN) : fns[0]!.chains_f32(job.iters, M_CHAIN, D_CHAIN);
    } else {
      for (const [mem, at, bytes] of job.ranges) value = (value + fns[mem + 1]!.read(at, bytes)) | 0;
    }
    port.postMessage({ seconds: (performance.now() - t0) / 1000, value, round: job.round } satisfies LimitsReply);
  });
}
