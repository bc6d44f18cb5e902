// bf16 -> float32 tensors, exactly: a bf16 value is the top half of a float32, so the float32
// bits are the bf16 bits shifted left by 16. On the wasm backend the widening writes straight
// into the tensor's memory in the wasm heap (no intermediate Float32Array and no second copy).

import * as tf from '@tensorflow/tfjs-core';
import { type DType, HOST_LITTLE_ENDIAN, decodeToFloat32 } from '../weights/index.js';

/** dst[i] = src[i] << 16: the float32 bits of bf16 `src`. */
export function widenBf16(src: Uint16Array, dst: Int32Array): void {
  const n = src.length;
  const even = n & ~1;
  // Two elements per 32-bit load: the low half is element 2i, the high half element 2i + 1.
  if (src.byteOffset % 4 === 0) {
    const pairs = new Uint32Array(src.buffer, src.byteOffset, even >> 1);
    for (let i = 0, j = 0; i < pairs.length; i++, j += 2) {
      const v = pairs[i]!;
      dst[j] = v << 16;
      dst[j + 1] = v & 0xffff0000;
    }
    if (n & 1) dst[n - 1] = src[n - 1]! << 16;
    return;
  }
  for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
}

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}

/** A float32 tensor of `shape` from the raw little-endian bytes of a float tensor of `dtype`. */
export function floatTensor(bytes: Uint8Array, dtype: DType, shape: number[]): tf.Tensor {
  if (dtype === 'BF16' && HOST_LITTLE_ENDIAN) {
    const n = bytes.length / 2;
    const src = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Uint16Array(bytes.slice().buffer);
    if (tf.getBackend() === 'wasm') {
      const backend = tf.backend() as unknown as WasmBackendLike;
      const info = backend.makeOutput(shape, 'float32');
      const dst = backend.typedArrayFromHeap(info);
      widenBf16(src, new Int32Array(dst.buffer, dst.byteOffset, n));
      return tf.engine().makeTensorFromTensorInfo(info);
    }
    const out = new Float32Array(n);
    widenBf16(src, new Int32Array(out.buffer));
    return tf.tensor(out, shape, 'float32');
  }
  return tf.tensor(decodeToFloat32(dtype, bytes), shape, 'float32');
}
