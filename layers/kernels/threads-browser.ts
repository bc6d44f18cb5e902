// How the exact kernel (./dots.ts) starts its worker threads and waits for them in a page: the
// browser build's stand-in for ./threads.ts (tools/build-browser.ts swaps it in; same exports).
//
// Workers share the kernel's memory only where the page may share memory between threads: when it
// is cross-origin isolated (served with Cross-Origin-Opener-Policy: same-origin and
// Cross-Origin-Embedder-Policy: require-corp, so `crossOriginIsolated` is true). Elsewhere a shared
// WebAssembly.Memory cannot be posted to a worker, and the kernel runs on the page's thread alone.
// The sums are the same either way: rows are claimed from a shared counter and each row's sum is
// one thread's, in one order (./dots.ts), so the bits do not depend on the thread count.
//
// Two things differ from worker_threads:
// - The page's main thread may not block (Atomics.wait throws there). The caller spins on
//   Atomics.load instead. The spin is short: the caller claims rows itself until none are left, so
//   it waits only for the chunks the workers took last, each a panel of rows.
// - A Web Worker reads its messages (the weight memories) only from its event loop, not
//   synchronously as receiveMessageOnPort does. So it waits for jobs with Atomics.waitAsync, which
//   leaves the event loop running, and a job naming a memory whose message has not been handled yet
//   waits for it (more()). Where Atomics.waitAsync is missing, the kernel stays on one thread.
// A Web Worker also starts asynchronously, after the page's current task: jobs go only to workers
// that said they run (started()), and `ready()` (src/browser/index.ts) waits for them.

import type { KernelWorker, WorkerInit, WorkerLink, WorkerMessage } from './threads.js';

export type { KernelWorker, WorkerInit, WorkerLink, WorkerMessage };

type WaitAsync = (ctl: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;

/** Threads for the kernel, the page's included: navigator.hardwareConcurrency when the page is cross-origin isolated, else 1. */
export function threadCount(): number {
  const g = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } };
  if (g.crossOriginIsolated !== true || typeof waitAsync !== 'function') return 1;
  return Math.max(1, g.navigator?.hardwareConcurrency ?? 1);
}

const starting: Promise<void>[] = [];

/** Starts the Web Worker for `init.slot` from dots-worker.js beside the bundle. */
export function startWorker(init: WorkerInit): KernelWorker {
  const url = new URL('./dots-worker.js', import.meta.url);
  const w = new Worker(url, { type: 'module', name: `phi4-ts exact kernel ${init.slot}` });
  let running = false;
  starting.push(new Promise<void>((ok, fail) => {
    w.onmessage = (e: MessageEvent) => {
      if (e.data === 'started') {
        running = true;
        ok();
      }
    };
    w.onerror = (e: ErrorEvent) => fail(new Error(`exact kernel: the worker ${url.href} did not start${e.message ? ` (${e.message})` : ''}: serve dots-worker.js beside the bundle`));
  }));
  w.postMessage(init);
  return { post: (m) => w.postMessage(m), started: () => running };
}

/** Resolves once every worker started so far runs; rejects, in one line, when one could not start. */
export async function workersStarted(): Promise<void> {
  await Promise.all(starting);
}

/** Spins while word `index` of `ctl` is `value` (see above: the page's thread may not block). */
export function waitWhile(ctl: Int32Array, index: number, value: number): void {
  while (Atomics.load(ctl, index) === value);
}

/** What a worker's global scope offers here (the library is compiled without the webworker lib). */
interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

/** How long a job waits for the message of a memory it names before it fails (it was posted first). */
const MESSAGE_WAIT_MS = 10_000;

export async function workerLink(): Promise<WorkerLink> {
  const scope = globalThis as unknown as WorkerScope;
  const queue: WorkerMessage[] = [];
  let arrived: (() => void) | undefined;
  const init = await new Promise<WorkerInit>((ok) => {
    let first = true;
    scope.onmessage = (e) => { // the first message starts the worker; the rest are weight memories
      if (first) ok(e.data as WorkerInit);
      else queue.push(e.data as WorkerMessage);
      first = false;
      arrived?.();
    };
  });
  scope.postMessage('started');
  return {
    init,
    take: () => queue.splice(0),
    more: () => new Promise<boolean>((ok) => {
      const timer = setTimeout(() => ok(false), MESSAGE_WAIT_MS);
      arrived = () => {
        clearTimeout(timer);
        arrived = undefined;
        ok(true);
      };
    }),
    async waitForJob(ctl, index) {
      // as in ./threads.ts: wait on the value just seen, never on a second load
      for (let v = Atomics.load(ctl, index); v !== 1; v = Atomics.load(ctl, index)) {
        const r = waitAsync!(ctl, index, v);
        if (r.async) await r.value;
      }
    },
  };
}
