// How the exact kernel (./dots.ts) starts its worker threads and waits for them, under Node. The
// browser build swaps this module for ./threads-browser.ts (tools/build-browser.ts), which does the
// same with Web Workers; the two export the same names. Only this part differs between the two:
// the jobs, their slots in the shared control block and the row claiming are ./dots.ts's, and the
// worker's loop is ./dots-worker.ts, one body for both.
//
// Under Node a worker_threads worker gets the kernel's module and memory in its workerData and
// weight memories over a MessagePort, which it reads synchronously (receiveMessageOnPort) before a
// job, so it can block in Atomics.wait between jobs; the caller blocks in Atomics.wait too.

import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort, workerData } from 'node:worker_threads';

/** What a worker is started with: the kernel's compiled module, its own memory, and its control slot. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  slot: number;
}

/** A message to a worker: a weight memory to use under number `id`, or that number's release. */
export type WorkerMessage = { id: number; memory: WebAssembly.Memory } | { id: number; release: true };

/** The caller's handle on a started worker. */
export interface KernelWorker {
  post(message: WorkerMessage): void;
  /** Whether it is running and may be given jobs (a worker_threads worker may be given them at once). */
  started(): boolean;
}

/** Threads for the kernel, the caller's included: PHI4_THREADS, else the machine's cores. */
export function threadCount(): number {
  const env = Number(process.env.PHI4_THREADS);
  return Number.isInteger(env) && env >= 1 ? env : availableParallelism();
}

/** Starts the worker for `init.slot`; it never keeps the process alive. */
export function startWorker(init: WorkerInit): KernelWorker {
  const { port1, port2 } = new MessageChannel();
  const w = new Worker(new URL('./dots-worker.js', import.meta.url), { workerData: { ...init, port: port2 }, transferList: [port2] });
  w.unref();
  port1.unref();
  return { post: (m) => port1.postMessage(m), started: () => true };
}

/** Resolves once every worker started so far runs: at once here (see started()). */
export async function workersStarted(): Promise<void> {}

/** Blocks the caller while word `index` of `ctl` is `value`. */
export function waitWhile(ctl: Int32Array, index: number, value: number): void {
  while (Atomics.load(ctl, index) === value) Atomics.wait(ctl, index, value);
}

/** The worker's side: what it was started with, the messages since its last look, its job waits. */
export interface WorkerLink {
  init: WorkerInit;
  /** The messages that have arrived and were not taken yet. */
  take(): WorkerMessage[];
  /** Waits for another message to arrive; false when none can come (here: take() already saw every one posted). */
  more(): Promise<boolean>;
  /** Returns once word `index` of `ctl` is 1 (a job is posted). */
  waitForJob(ctl: Int32Array, index: number): void | Promise<void>;
}

export async function workerLink(): Promise<WorkerLink> {
  const { port, ...init } = workerData as WorkerInit & { port: MessagePort };
  return {
    init,
    take() {
      const got: WorkerMessage[] = [];
      for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) got.push(m.message as WorkerMessage);
      return got;
    },
    more: async () => false, // a message posted before the job was posted is there to receive
    waitForJob(ctl, index) {
      // Wait on the value just seen: loading it again for the wait could see the new job's 1 and
      // then sleep through the notify that came with it (a deadlock the test suite hit).
      for (let v = Atomics.load(ctl, index); v !== 1; v = Atomics.load(ctl, index)) Atomics.wait(ctl, index, v);
    },
  };
}
