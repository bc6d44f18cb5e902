// The float64 reference's heavy arithmetic, on every core (./gemm.ts): the linear layers, read
// from the checkpoint as they lie (a bf16 matrix is widened inside the product, block by block;
// any other dtype is widened to float64 first), and attention's two products per head. Each
// returns a plain Float64Array (into the caller's buffer when it gives one: see ./scratch.ts); the
// sums are float64, in blocks of k (gemm.wat says which order).

import { closeSync, openSync, readSync } from 'node:fs';
import type { Checkpoint } from '../../../weights/index.js';
import { GemmPool, KIND_BF16, KIND_F64, type Kind } from './gemm.js';
import { softmax } from './ops.js';

const READ_CHUNK = 2 ** 30;

export class Products {
  readonly pool: GemmPool;
  private readonly fds = new Map<string, number>();

  constructor(private readonly ckpt: Checkpoint, threads?: number) {
    this.pool = GemmPool.get(threads);
  }

  /** Closes the files; the pool stays for the next pass unless its memory grew large. */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.pool.reset();
    GemmPool.release();
  }

  /** Elements [first, first + count) of a checkpoint tensor into the arena: its address and kind. */
  private weights(name: string, first: number, count: number): { at: number; kind: Kind } {
    const info = this.ckpt.info(name);
    if (info.dtype !== 'BF16') {
      const at = this.pool.alloc(count * 8);
      this.ckpt.readFloat64Range(name, first, count, this.pool.f64(at, count));
      return { at, kind: KIND_F64 };
    }
    const at = this.pool.alloc(count * 2);
    let fd = this.fds.get(info.file);
    if (fd === undefined) this.fds.set(info.file, (fd = openSync(info.file, 'r')));
    for (let done = 0; done < count * 2;) {
      const n = Math.min(READ_CHUNK, count * 2 - done);
      const got = readSync(fd, this.pool.bytes(at + done, n), 0, n, info.begin + first * 2 + done);
      if (got <= 0) throw new Error(`${info.file}: tensor "${name}" ends early`);
      done += got;
    }
    return { at, kind: KIND_BF16 };
  }

  /**
   * x W^T for rows [row0, row0 + outDim) of the checkpoint matrix `name` [*, inDim]: x [T, inDim] -> [T, outDim],
   * written into `into` (at least T * outDim long) when given, else into a new array.
   */
  linear(x: Float64Array, T: number, name: string, outDim: number, inDim: number, row0 = 0, into?: Float64Array): Float64Array {
    const p = this.pool;
    p.reset();
    const w = this.weights(name, row0 * inDim, outDim * inDim);
    const xp = p.packX(p.put(x), inDim, T, inDim);
    const y = p.alloc(T * outDim * 8);
    p.gemm(w.kind, xp, T, inDim, w.at, inDim, y, outDim, outDim);
    const out = into ? into.subarray(0, T * outDim) : new Float64Array(T * outDim);
    out.set(p.f64(y, T * outDim));
    p.reset();
    return out;
  }

  /**
   * Attention of every head: probs = softmax(q k^T scale + mask) [B, nh, T, T] and
   * out = probs v [B, T, nh * d], for q [B, nh, T, d] and k, v [B, nkv, T, d]. `mask` [B, T, T]
   * is added to the scaled score of query i and key j (the same for every head). `into` gives
   * the buffers to write probs, out and v transposed to (./scratch.ts), else they are new arrays.
   */
  attention(q: Float64Array, k: Float64Array, v: Float64Array, B: number, T: number, nh: number, nkv: number, d: number,
    scale: number, mask: Float64Array, into?: { probs: Float64Array; out: Float64Array; vt: Float64Array }): { probs: Float64Array; out: Float64Array } {
    const p = this.pool;
    p.reset();
    const g = nh / nkv;
    const ka = p.put(k);
    const vt = into ? into.vt.subarray(0, v.length) : new Float64Array(v.length); // [B, nkv, d, T]: v's heads transposed, the w of probs v
    for (let bh = 0; bh < B * nkv; bh++) {
      for (let t = 0; t < T; t++) for (let c = 0; c < d; c++) vt[(bh * d + c) * T + t] = v[(bh * T + t) * d + c];
    }
    const va = p.put(vt);
    const qa = p.put(q);
    const xq = p.alloc(GemmPool.packedBytes(T, d));
    const sa = p.alloc(T * T * 8);
    const xs = p.alloc(GemmPool.packedBytes(T, T));
    const oa = p.alloc(B * T * nh * d * 8);
    const probs = into ? into.probs.subarray(0, B * nh * T * T) : new Float64Array(B * nh * T * T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < nh; h++) {
        const kv = b * nkv + Math.floor(h / g); // the key/value head this query head reads
        p.packX(qa + (b * nh + h) * T * d * 8, d, T, d, xq);
        p.gemm(KIND_F64, xq, T, d, ka + kv * T * d * 8, d, sa, T, T);
        const s = p.f64(sa, T * T);
        for (let i = 0; i < T; i++) {
          const row = i * T, m = (b * T + i) * T;
          for (let j = 0; j < T; j++) s[row + j] = s[row + j] * scale + mask[m + j];
          softmax(s, row, T);
        }
        probs.set(s, (b * nh + h) * T * T);
        p.packX(sa, T, T, T, xs);
        p.gemm(KIND_F64, xs, T, T, va + kv * d * T * 8, T, oa + (b * T * nh + h) * d * 8, nh * d, d);
      }
    }
    const out = into ? into.out.subarray(0, B * T * nh * d) : new Float64Array(B * T * nh * d);
    out.set(p.f64(oa, B * T * nh * d));
    p.reset();
    return { probs, out };
  }
}
