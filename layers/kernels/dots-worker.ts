// A worker thread of the exact dot-product kernel (./dots.ts): waits on its control slot in the
// kernel's memory, runs the job posted there on the chunks of weight rows it claims (claimRows), and marks it done.
// Weight memories come and go over the port (sent before the first job that names one, released
// when their holder is disposed of); a job takes what is waiting there first. A failure is
// marked in the slot, never left for the main thread to wait on.

import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { CONTROL_WORDS, type DotsExports, FAILED, SLOT_WORDS, claimRows, kernelFn } from './dots.js';

const { module, memory, slot, port } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; slot: number; port: MessagePort };
const instance = (m: WebAssembly.Memory) => new WebAssembly.Instance(module, { env: { memory: m } }).exports as unknown as DotsExports;
const fns = new Map<number, DotsExports>([[0, instance(memory)]]); // by memory number
const ctl = new Int32Array(memory.buffer, 0, CONTROL_WORDS);
const s = slot * SLOT_WORDS;

/** Takes the memories sent and released since the last job, then the job's own. */
function memoryFns(id: number): DotsExports {
  for (let got = receiveMessageOnPort(port); got !== undefined; got = receiveMessageOnPort(port)) {
    const m = got.message as { id: number; memory?: WebAssembly.Memory; release?: boolean };
    if (m.release) fns.delete(m.id);
    else fns.set(m.id, instance(m.memory!));
  }
  const f = fns.get(id);
  if (f === undefined) throw new Error(`dots worker ${slot}: job names memory ${id}, which it does not hold`);
  return f;
}

for (;;) {
  // Wait on the value just seen: loading it again for the wait could see the new job's 1 and
  // then sleep through the notify that came with it (a deadlock the test suite hit).
  for (let v = Atomics.load(ctl, s); v !== 1; v = Atomics.load(ctl, s)) Atomics.wait(ctl, s, v);
  let state = 2;
  try {
    const [kind, a, b, y, M, N, K, ldy, mem] = ctl.subarray(s + 1, s + 10);
    const alpha = new Float64Array(memory.buffer, (s + 10) * 4, 1)[0];
    const [panel, chunk] = ctl.subarray(s + 12, s + 14);
    claimRows(kernelFn(memoryFns(mem!), kind!), ctl, kind!, a!, b!, y!, M!, N!, K!, ldy!, alpha!, panel!, chunk!);
  } catch (err) {
    console.error(err); // the main thread throws when it sees the failure: never leave it waiting
    state = FAILED;
  }
  Atomics.store(ctl, s, state);
  Atomics.notify(ctl, s);
}
