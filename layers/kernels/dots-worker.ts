// A worker thread of the exact dot-product kernel (./dots.ts): waits on its control slot in the
// shared memory, runs the job posted there on its share of the weight rows, and marks it done.

import { workerData } from 'node:worker_threads';
import { type DotsExports, SLOT_WORDS } from './dots.js';

const { module, memory, slot } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; slot: number };
const fns = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as DotsExports;
const ctl = new Int32Array(memory.buffer, 0, SLOT_WORDS * (slot + 1));
const s = slot * SLOT_WORDS;

for (;;) {
  while (Atomics.load(ctl, s) !== 1) Atomics.wait(ctl, s, Atomics.load(ctl, s));
  const [bf16, a, b, y, M, N, K, ldy] = ctl.subarray(s + 1, s + 9);
  const alpha = new Float64Array(memory.buffer, (s + 10) * 4, 1)[0];
  (bf16 ? fns.dots_bf16 : fns.dots)(a, b, y, M, N, K, ldy, alpha);
  Atomics.store(ctl, s, 2);
  Atomics.notify(ctl, s);
}
