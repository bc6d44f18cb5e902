// A worker thread of the exact dot-product kernel (./dots.ts): waits on its control slot in the
// kernel's memory, runs the job posted there on its share of the weight rows, and marks it done.
// A job may name a weight memory the thread has not seen yet: it was sent over the port before
// the job was posted, and is taken from there.

import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { type DotsExports, SLOT_WORDS, kernelFn } from './dots.js';

const { module, memory, slot, port } = workerData as { module: WebAssembly.Module; memory: WebAssembly.Memory; slot: number; port: MessagePort };
const instance = (m: WebAssembly.Memory) => new WebAssembly.Instance(module, { env: { memory: m } }).exports as unknown as DotsExports;
const fns: DotsExports[] = [instance(memory)]; // by memory number
const ctl = new Int32Array(memory.buffer, 0, SLOT_WORDS * (slot + 1));
const s = slot * SLOT_WORDS;

function memoryFns(id: number): DotsExports {
  while (fns[id] === undefined) {
    const got = receiveMessageOnPort(port);
    if (got === undefined) throw new Error(`dots worker ${slot}: job names memory ${id}, which was never sent`);
    const { id: n, memory: m } = got.message as { id: number; memory: WebAssembly.Memory };
    fns[n] = instance(m);
  }
  return fns[id]!;
}

for (;;) {
  while (Atomics.load(ctl, s) !== 1) Atomics.wait(ctl, s, Atomics.load(ctl, s));
  const [kind, a, b, y, M, N, K, ldy, mem] = ctl.subarray(s + 1, s + 10);
  const alpha = new Float64Array(memory.buffer, (s + 10) * 4, 1)[0];
  const [panel, rows] = ctl.subarray(s + 12, s + 14);
  const f = memoryFns(mem!);
  kernelFn(f, kind!)(a!, b!, y!, M!, N!, K!, ldy!, alpha!, panel!, rows!);
  Atomics.store(ctl, s, 2);
  Atomics.notify(ctl, s);
}
