// A worker thread of the float64 reference's products (./gemm.ts): it waits on its control slot,
// claims chunks of columns of the product posted there until none is left, and marks the slot done, or failed (never leaving
// the main thread waiting).

import { workerData } from 'node:worker_threads';
import { DONE, FAILED, type GemmExports, POSTED, SLOT_WORDS, claimColumns } from './gemm.js';

const { module, memory, slot, counter } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; slot: number; counter: number };
const ctl = new Int32Array(memory.buffer, 0, counter + 1);
const s = slot * SLOT_WORDS;
let fns: GemmExports | undefined;

for (;;) {
  // wait on the value just read, so that a post between the read and the wait is not slept through
  for (let v = Atomics.load(ctl, s); v !== POSTED; v = Atomics.load(ctl, s)) Atomics.wait(ctl, s, v);
  let state = DONE;
  try {
    fns ??= new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as GemmExports;
    claimColumns(fns, ctl, counter, ctl.slice(s + 1, s + 11));
  } catch (err) {
    console.error(err);
    state = FAILED;
  }
  Atomics.store(ctl, s, state);
  Atomics.notify(ctl, s);
}
