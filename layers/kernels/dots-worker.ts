// A worker thread of the exact dot-product kernel (./dots.ts): waits on its control slot in the
// kernel's memory, runs the job posted there on the chunks of weight rows it claims (claimRows),
// counts them in the slot's CHUNKS_WORD, and marks the job done.
// Weight memories come and go as messages (sent before the first job that names one, released
// when their holder is disposed of); a job takes what has arrived first. A failure is marked in
// the slot, never left for the main thread to wait on.
// One body for Node's worker_threads and a page's Web Workers: how it is started, how its messages
// arrive and how it waits are ./threads.ts's (the browser build swaps in ./threads-browser.ts).

import { CHUNKS_WORD, CONTROL_WORDS, type DotsExports, FAILED, SLOT_WORDS, claimRows, kernelFn } from './dots.js';
import { workerLink } from './threads.js';

const link = await workerLink();
const { module, memory, slot } = link.init;
const instance = (m: WebAssembly.Memory) => new WebAssembly.Instance(module, { env: { memory: m } }).exports as unknown as DotsExports;
const fns = new Map<number, DotsExports>([[0, instance(memory)]]); // by memory number
const ctl = new Int32Array(memory.buffer, 0, CONTROL_WORDS);
const s = slot * SLOT_WORDS;

/** Takes the memories sent and released since the last job, then the job's own (undefined: not arrived yet). */
function memoryFns(id: number): DotsExports | undefined {
  for (const m of link.take()) {
    if ('release' in m) fns.delete(m.id);
    else fns.set(m.id, instance(m.memory));
  }
  return fns.get(id);
}

for (;;) {
  await link.waitForJob(ctl, s);
  let state = 2;
  try {
    const [kind, a, b, y, M, N, K, ldy, mem] = ctl.subarray(s + 1, s + 10);
    const alpha = new Float64Array(memory.buffer, (s + 10) * 4, 1)[0];
    const [panel, chunk] = ctl.subarray(s + 12, s + 14);
    let f = memoryFns(mem!);
    while (f === undefined && (await link.more())) f = memoryFns(mem!);
    if (f === undefined) throw new Error(`dots worker ${slot}: job names memory ${mem}, which it does not hold`);
    Atomics.add(ctl, s + CHUNKS_WORD, claimRows(kernelFn(f, kind!), ctl, kind!, a!, b!, y!, M!, N!, K!, ldy!, alpha!, panel!, chunk!));
  } catch (err) {
    console.error(err); // the main thread throws when it sees the failure: never leave it waiting
    state = FAILED;
  }
  Atomics.store(ctl, s, state);
  Atomics.notify(ctl, s);
}
