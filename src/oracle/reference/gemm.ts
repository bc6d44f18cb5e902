// The float64 reference's matrix products on every core: the module of ./gemm.wat run by this
// thread and by worker threads (./gemm-worker.ts) over one shared WebAssembly memory. The calls are
// synchronous, as the reference is: the main thread posts each worker its columns of y, computes
// its own, and waits (Atomics.wait) until every worker has marked its part done.
//
// Which thread computes a column changes nothing in it (each sum is taken by one thread, in one
// order), so the result is the same for any number of threads, bit for bit.
//
// The memory: page 0 holds the control slots (one per worker), then one packing buffer per
// thread, then an arena that each product (or each attention layer) fills from its start: the
// weights as they lie in the checkpoint, the activations, the outputs.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { GEMM_WASM } from './gemm-wasm.js';

export interface GemmExports {
  pack_x(x: number, ldx: number, T: number, K: number, dst: number): void;
  gemm(kind: number, xp: number, T: number, K: number, w: number, ldw: number, y: number, ldy: number, o0: number, o1: number, pack: number): void;
}

/** Words of a worker's control slot: state, then the product's 10 arguments (./gemm.ts's args). */
export const SLOT_WORDS = 16;
export const IDLE = 0, POSTED = 1, DONE = 2, FAILED = 3;
export const KIND_F64 = 0, KIND_BF16 = 1;
export type Kind = typeof KIND_F64 | typeof KIND_BF16;
const PAGE = 65536;
const PACK_BYTES = 32 * 256 * 8; // gemm.wat's OB x KC float64 block
const MAX_PAGES = 65536; // 4 GiB, the most a 32-bit memory addresses
const CHUNK = 32; // columns a thread claims at a time: one weight block of gemm.wat

/**
 * Runs chunks of columns of one product until none is left: `a` = kind, xp, T, K, w, ldw, y, ldy,
 * O, pack; ctl[counter] = the next chunk. Used by this thread and by the workers alike.
 */
export function claimColumns(fns: GemmExports, ctl: Int32Array, counter: number, a: ArrayLike<number>): void {
  const O = a[8];
  for (let c = Atomics.add(ctl, counter, 1); c * CHUNK < O; c = Atomics.add(ctl, counter, 1)) {
    fns.gemm(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], c * CHUNK, Math.min(O, (c + 1) * CHUNK), a[9]);
  }
}

let module: WebAssembly.Module | undefined;

/** A pool of `threads` threads (this one included) over one shared memory. */
export class GemmPool {
  readonly memory: WebAssembly.Memory;
  readonly threads: number;
  private readonly fns: GemmExports;
  private readonly workers: Worker[] = [];
  private readonly ctl: Int32Array;
  private readonly counter: number;
  private readonly arenaStart: number;
  private top: number;

  private static shared: GemmPool | undefined;

  /** The pool for `threads` threads (default: os.availableParallelism()), kept for the next call. */
  static get(threads = availableParallelism()): GemmPool {
    const n = Math.max(1, Math.floor(threads));
    if (GemmPool.shared?.threads !== n) {
      GemmPool.shared?.close();
      GemmPool.shared = new GemmPool(n);
    }
    return GemmPool.shared;
  }

  private constructor(threads: number) {
    module ??= new WebAssembly.Module(Buffer.from(GEMM_WASM, 'base64'));
    this.threads = threads;
    this.arenaStart = PAGE + threads * PACK_BYTES;
    this.top = this.arenaStart;
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(this.arenaStart / PAGE) + 1, maximum: MAX_PAGES, shared: true });
    this.fns = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as GemmExports;
    this.ctl = new Int32Array(this.memory.buffer, 0, SLOT_WORDS * (threads + 1));
    this.counter = SLOT_WORDS * threads; // after the slots: the next chunk of the running product
    for (let s = 1; s < threads; s++) {
      const w = new Worker(new URL('./gemm-worker.js', import.meta.url), { workerData: { module, memory: this.memory, slot: s, counter: this.counter } });
      w.unref(); // an idle pool never keeps the process alive
      this.workers.push(w);
    }
  }

  close(): void {
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
    if (GemmPool.shared === this) GemmPool.shared = undefined;
  }

  /**
   * After a pass: a WebAssembly memory never shrinks, so a pool whose arena grew past `keepBytes`
   * is closed (its memory goes with it) rather than kept for the next pass.
   */
  static release(keepBytes = 256 * 2 ** 20): void {
    const p = GemmPool.shared;
    if (p && p.memory.buffer.byteLength > keepBytes) p.close();
  }

  /** Empties the arena (what was put there is no longer valid). */
  reset(): void {
    this.top = this.arenaStart;
  }

  /** `bytes` of arena (16-byte aligned), growing the memory as needed; returns the byte address. */
  alloc(bytes: number): number {
    const at = this.top;
    const end = at + Math.ceil(bytes / 16) * 16;
    if (end > MAX_PAGES * PAGE) throw new RangeError(`float64 reference: a product needs ${(end / 2 ** 30).toFixed(2)} GiB of its 4 GiB memory: pass fewer ids`);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return at;
  }

  /** A float64 view of n values at byte address `at` (valid until the memory next grows). */
  f64(at: number, n: number): Float64Array {
    return new Float64Array(this.memory.buffer, at, n);
  }

  bytes(at: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, at, n);
  }

  /** Copies `a` into the arena; returns its address. */
  put(a: Float64Array): number {
    const at = this.alloc(a.length * 8);
    this.f64(at, a.length).set(a);
    return at;
  }

  /** Bytes of x [T, K] packed for gemm. */
  static packedBytes(T: number, K: number): number {
    return Math.ceil(T / 4) * 4 * (K + 1) * 8;
  }

  /** Packs x [T, K] (rows ldx apart, at byte address x) for gemm at `dst` (fresh arena if not given); returns its address. */
  packX(x: number, ldx: number, T: number, K: number, dst = this.alloc(GemmPool.packedBytes(T, K))): number {
    this.fns.pack_x(x, ldx, T, K, dst);
    return dst;
  }

  /**
   * y[t, o] = sum_k x[t, k] w[o, k] for t < T, o < O: xp from packX, w float64 or (KIND_BF16) the
   * checkpoint's bfloat16, rows ldw apart; byte addresses, strides in elements. The columns go in
   * chunks of 32 (one weight block), each thread claiming the next from a shared counter, so a
   * thread the system slows down takes fewer (the machine may be shared) and none waits idle.
   */
  gemm(kind: Kind, xp: number, T: number, K: number, w: number, ldw: number, y: number, ldy: number, O: number): void {
    const n = Math.min(this.threads, Math.ceil(O / CHUNK));
    const args = (i: number): number[] => [kind, xp, T, K, w, ldw, y, ldy, O, PAGE + i * PACK_BYTES];
    Atomics.store(this.ctl, this.counter, 0);
    for (let i = 1; i < n; i++) {
      const s = i * SLOT_WORDS;
      this.ctl.set(args(i).map((v) => v | 0), s + 1);
      Atomics.store(this.ctl, s, POSTED);
      Atomics.notify(this.ctl, s);
    }
    let failure: unknown;
    try {
      claimColumns(this.fns, this.ctl, this.counter, args(0));
    } catch (err) {
      failure = err;
    }
    for (let i = 1; i < n; i++) {
      const s = i * SLOT_WORDS;
      for (let v = Atomics.load(this.ctl, s); v === POSTED; v = Atomics.load(this.ctl, s)) Atomics.wait(this.ctl, s, v);
      const state = Atomics.exchange(this.ctl, s, IDLE);
      if (state === FAILED) failure ??= new Error(`float64 reference: product thread ${i} failed`);
    }
    if (failure !== undefined) throw failure;
  }
}
