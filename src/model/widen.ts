// bf16 -> float32 tensors, exactly: a bf16 value is the top half of a float32, so the float32
// bits are the bf16 bits shifted left by 16. Also the bf16 matrix-vector product that decoding
// uses (gemv below): both in layers/kernels/bf16.wat, assembled by `npm run kernels` (wabt).
//
// On the wasm backend the result is written straight into the tensor's heap memory: the bf16
// bytes are copied into the second half of the new tensor's 4n bytes, then widened in place,
// front to back, by a WebAssembly SIMD loop (bf16.wat's widen) that shares the backend's
// memory: 8 values per step, about 3x the rate of the JavaScript loop. Writing element i touches
// bytes [4i, 4i + 4), which lie before the unread source of every element after i, at 2n + 2i.

import * as tf from '@tensorflow/tfjs-core';
import { type DType, decodeToFloat32 } from '../../weights/index.js';
import { BF16_SHARED_WASM, BF16_WASM } from '../../layers/kernels/bf16-wasm.js';

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
    if (!compiled.has(shared)) compiled.set(shared, new WebAssembly.Module(Buffer.from(shared ? BF16_SHARED_WASM : BF16_WASM, 'base64')));
    const module = compiled.get(shared);
    return module ? new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Bf16Kernels : null;
  } catch {
    compiled.set(shared, null); // no SIMD in this engine: the JavaScript paths serve
    return null;
  }
}

// The one place that reaches into @tensorflow/tfjs-backend-wasm's private state (its Emscripten
// module's heap and memory, the backend's dataIdMap and makeOutput), checked against tfjs 4.22.0,
// the version package.json pins. Where a later version lays them out otherwise, `asm.memory` is
// absent and the JavaScript loop widens; the tensor is still made through makeOutput.
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
  if (dtype === 'BF16') {
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
