// A worker thread of the float64 reference's products (./gemm.ts): it waits on its control slot,
// runs the product posted there on its columns, and marks the slot done, or failed (never leaving
// the main thread waiting).

import { workerData } from 'node:worker_threads';
import { DONE, FAILED, type GemmExports, POSTED, SLOT_WORDS } from './gemm.js';

const { module, memory, slot } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; slot: number };
const ctl = new Int32Array(memory.buffer, 0, SLOT_WORDS * (slot + 1));
const s = slot * SLOT_WORDS;
let fns: GemmExports | undefined;

for (;;) {
  // wait on the value just read, so that a post between the read and the wait is not slept through
  for (let v = Atomics.load(ctl, s); v !== POSTED; v = Atomics.load(ctl, s)) Atomics.wait(ctl, s, v);
  let state = DONE;
  try {
    fns ??= new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as GemmExports;
    const a = ctl.subarray(s + 1, s + 12);
    fns.gemm(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]);
  } catch (err) {
    console.error(err);
    state = FAILED;
  }
  Atomics.store(ctl, s, state);
  Atomics.notify(ctl, s);
}
