// bf16 -> float32 tensors, exactly: a bf16 value is the top half of a float32, so the float32
// bits are the bf16 bits shifted left by 16. Also the bf16 matrix-vector product that decoding
// uses (gemv below), in the same small hand-assembled WebAssembly module.
//
// On the wasm backend the result is written straight into the tensor's heap memory: the bf16
// bytes are copied into the second half of the new tensor's 4n bytes, then widened in place,
// front to back, by a 16-instruction WebAssembly SIMD loop (below) that shares the backend's
// memory: 8 values per step, about 3x the rate of the JavaScript loop. Writing element i touches
// bytes [4i, 4i + 4), which lie before the unread source of every element after i, at 2n + 2i.

import * as tf from '@tensorflow/tfjs-core';
import { type DType, HOST_LITTLE_ENDIAN, decodeToFloat32 } from '../../weights/index.js';

// (func $widen (param $dst i32) (param $n i32) (local $src i32) (local $end i32) (local $v v128)
//   src = dst + 2n;  end = dst + 4 (n & ~7)
//   while dst < end:
//     v = v128.load(src)
//     v128.store(dst,      i32x4.shl(i32x4.extend_low_i16x8_u(v), 16))
//     v128.store(dst + 16, i32x4.shl(i32x4.extend_high_i16x8_u(v), 16))
//     src += 16;  dst += 32)
// The memory is imported: the tfjs backend's own heap.
const WIDEN_BODY = [
  0x02, 0x02, 0x7f, 0x01, 0x7b, // locals: 2 x i32, 1 x v128
  0x20, 0, 0x20, 1, 0x41, 1, 0x74, 0x6a, 0x21, 2, // src = dst + (n << 1)
  0x20, 0, 0x20, 1, 0x41, 0x78, 0x71, 0x41, 2, 0x74, 0x6a, 0x21, 3, // end = dst + ((n & -8) << 2)
  0x02, 0x40, 0x03, 0x40, // block loop
  0x20, 0, 0x20, 3, 0x4f, 0x0d, 1, // br_if exit (dst >= end, unsigned)
  0x20, 2, 0xfd, 0x00, 0x00, 0x00, 0x21, 4, // v = v128.load(src)
  0x20, 0, 0x20, 4, 0xfd, 0xa9, 0x01, 0x41, 16, 0xfd, 0xab, 0x01, 0xfd, 0x0b, 0x00, 0x00, // store low 4
  0x20, 0, 0x20, 4, 0xfd, 0xaa, 0x01, 0x41, 16, 0xfd, 0xab, 0x01, 0xfd, 0x0b, 0x00, 0x10, // store high 4 at +16
  0x20, 2, 0x41, 16, 0x6a, 0x21, 2, // src += 16
  0x20, 0, 0x41, 32, 0x6a, 0x21, 0, // dst += 32
  0x0c, 0, // continue
  0x0b, 0x0b, 0x0b, // end loop, block, func
];

// (func $gemv (param $w i32) (param $x i32) (param $y i32) (param $rows i32) (param $cols i32)
//   for each row (rows laid out one after another from w, cols a multiple of 8):
//     acc0 = acc1 = 0
//     for 8 columns at a time: v = v128.load(w)
//       acc0 += f32x4(i32x4.shl(extend_low(v), 16)) * x[c .. c+4)
//       acc1 += f32x4(i32x4.shl(extend_high(v), 16)) * x[c+4 .. c+8)
//     y[row] = sum of the 8 lanes)
// y = W x read straight from the bf16 bytes: 2 bytes a weight instead of widening to 4 and back.
const ZERO16 = new Array<number>(16).fill(0);
const GEMV_BODY = [
  0x03, 0x01, 0x7f, 0x03, 0x7b, 0x02, 0x7f, // locals: r(5) i32; acc0(6) acc1(7) v(8) v128; xp(9) wend(10) i32
  0x02, 0x40, 0x03, 0x40, // block loop (rows)
  0x20, 5, 0x20, 3, 0x4f, 0x0d, 1, // if r >= rows: exit
  0xfd, 0x0c, ...ZERO16, 0x21, 6, // acc0 = 0
  0xfd, 0x0c, ...ZERO16, 0x21, 7, // acc1 = 0
  0x20, 1, 0x21, 9, // xp = x
  0x20, 0, 0x20, 4, 0x41, 1, 0x74, 0x6a, 0x21, 10, // wend = w + 2 cols
  0x02, 0x40, 0x03, 0x40, // block loop (columns, 8 at a time)
  0x20, 0, 0x20, 10, 0x4f, 0x0d, 1, // if w >= wend: exit
  0x20, 0, 0xfd, 0x00, 0x00, 0x00, 0x21, 8, // v = load(w)
  0x20, 6, 0x20, 8, 0xfd, 0xa9, 0x01, 0x41, 16, 0xfd, 0xab, 0x01, 0x20, 9, 0xfd, 0x00, 0x00, 0x00, 0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, 0x21, 6, // acc0 += lo * x[0..4)
  0x20, 7, 0x20, 8, 0xfd, 0xaa, 0x01, 0x41, 16, 0xfd, 0xab, 0x01, 0x20, 9, 0xfd, 0x00, 0x00, 0x10, 0xfd, 0xe6, 0x01, 0xfd, 0xe4, 0x01, 0x21, 7, // acc1 += hi * x[4..8)
  0x20, 0, 0x41, 16, 0x6a, 0x21, 0, // w += 16
  0x20, 9, 0x41, 32, 0x6a, 0x21, 9, // xp += 32
  0x0c, 0, 0x0b, 0x0b,
  0x20, 2, // y
  0x20, 6, 0x20, 7, 0xfd, 0xe4, 0x01, 0x21, 8, // v = acc0 + acc1
  0x20, 8, 0xfd, 0x1f, 0, 0x20, 8, 0xfd, 0x1f, 1, 0x92, 0x20, 8, 0xfd, 0x1f, 2, 0x92, 0x20, 8, 0xfd, 0x1f, 3, 0x92,
  0x38, 0x02, 0x00, // f32.store y
  0x20, 2, 0x41, 4, 0x6a, 0x21, 2, // y += 4
  0x20, 5, 0x41, 1, 0x6a, 0x21, 5, // r += 1
  0x0c, 0, 0x0b, 0x0b, 0x0b,
];

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** The module, importing an unshared memory (the tfjs heap) or a shared one (a weight memory of layers/kernels/dots.ts). */
function kernelModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
  const name = (s: string) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [2, 0x60, 2, 0x7f, 0x7f, 0, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]), // (i32 x2) -> (), (i32 x5) -> ()
    ...section(2, [1, ...name('env'), ...name('memory'), 2, ...(shared ? [3, 0, ...leb(65536)] : [0, 0])]), // import memory, min 0 pages (shared: max 4 GiB)
    ...section(3, [2, 0, 1]),
    ...section(7, [2, ...name('widen'), 0, 0, ...name('gemv'), 0, 1]),
    ...section(10, [2, ...leb(WIDEN_BODY.length), ...WIDEN_BODY, ...leb(GEMV_BODY.length), ...GEMV_BODY]),
  ]);
}

export interface Bf16Kernels {
  /** In place at `dst`: n bf16 values at dst + 2n -> n float32 values at dst (multiples of 8 only). */
  widen(dst: number, n: number): void;
  /** y[rows] = W[rows, cols] x[cols], W bf16, x and y float32; cols a multiple of 8. */
  gemv(w: number, x: number, y: number, rows: number, cols: number): void;
}

const compiled = new Map<boolean, WebAssembly.Module | null>(); // by sharedness of the memory

/** The two SIMD loops bound to `memory`; null where this engine cannot run them. */
export function bf16Kernels(memory: WebAssembly.Memory): Bf16Kernels | null {
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  try {
    if (!compiled.has(shared)) compiled.set(shared, new WebAssembly.Module(kernelModuleBytes(shared)));
    const module = compiled.get(shared);
    return module ? new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Bf16Kernels : null;
  } catch {
    compiled.set(shared, null); // no SIMD in this engine: the JavaScript paths serve
    return null;
  }
}

interface WasmModuleLike {
  HEAPU8: Uint8Array;
  asm?: { memory?: WebAssembly.Memory };
}

interface WasmBackendLike {
  wasm: WasmModuleLike;
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  dataIdMap: { get(id: object): { memoryOffset: number } };
}

/** The SIMD loop bound to a backend's heap; null where it cannot be built (then JavaScript widens). */
const kernels = new WeakMap<object, ((dst: number, n: number) => void) | null>();

function simdWiden(backend: WasmBackendLike): ((dst: number, n: number) => void) | null {
  if (kernels.has(backend)) return kernels.get(backend)!;
  const memory = backend.wasm.asm?.memory; // absent in another heap layout: the JavaScript loop serves
  const fn = memory instanceof WebAssembly.Memory ? bf16Kernels(memory)?.widen ?? null : null;
  kernels.set(backend, fn);
  return fn;
}

/** A float32 tensor of `shape` from the raw little-endian bytes of a float tensor of `dtype`. */
export function floatTensor(bytes: Uint8Array, dtype: DType, shape: number[]): tf.Tensor {
  if (dtype === 'BF16' && HOST_LITTLE_ENDIAN) {
    const n = bytes.length / 2;
    if (tf.getBackend() === 'wasm') {
      const backend = tf.backend() as unknown as WasmBackendLike;
      const info = backend.makeOutput(shape, 'float32');
      const at = backend.dataIdMap.get(info.dataId).memoryOffset;
      const heap = backend.wasm.HEAPU8; // after the allocation, which may have grown the heap
      const kernel = simdWiden(backend);
      if (kernel) {
        heap.set(bytes, at + 2 * n);
        kernel(at, n);
        const done = n & ~7;
        const src = new Uint16Array(heap.buffer, at + 2 * n + 2 * done, n - done);
        const dst = new Int32Array(heap.buffer, at + 4 * done, n - done);
        for (let i = 0; i < src.length; i++) dst[i] = src[i]! << 16; // front to back: safe in place
      } else {
        decodeToFloat32(dtype, bytes, new Float32Array(heap.buffer, at, n));
      }
      return tf.engine().makeTensorFromTensorInfo(info);
    }
  }
  return tf.tensor(decodeToFloat32(dtype, bytes), shape, 'float32');
}
