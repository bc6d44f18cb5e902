/**
 * Element types of the safetensors format: their names, sizes and kinds.
 * The conversions between their raw little-endian bytes and typed arrays live
 * beside this file: bits.ts (one element), decode.ts (bytes -> arrays),
 * encode.ts (arrays -> bytes).
 *
 * Every byte this project reads or writes (safetensors, GGUF, the WebAssembly
 * kernels' weight memories) is little-endian, and the conversions lay
 * typed-array views straight over those bytes. A big-endian host is therefore
 * refused once, here, when the module loads, rather than byte-swapped on every
 * path (no JavaScript engine this project runs on is big-endian; the kernels
 * could not use swapped bytes anyway: WebAssembly memory is little-endian).
 */
// Asked of a typed array, not node:os, so that the browser build (src/browser/) shares this check.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('phi4-ts needs a little-endian host (checkpoints, dumps and the WebAssembly kernels are little-endian); this one is big-endian');
}

/**
 * Every byte-aligned dtype the safetensors format defines. (The sub-byte
 * types F4/F6_* of recent versions of the Rust crate are not supported: a
 * header using them is rejected as an unknown dtype.)
 */
export type DType =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'F8_E4M3'
  | 'F8_E5M2'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'F64'
  | 'I64'
  | 'U64';

/** Size in bytes of one element of each dtype. */
export const DTYPE_SIZES: Readonly<Record<DType, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
});

/** All dtypes, in the order of DTYPE_SIZES. */
export const DTYPES: readonly DType[] = Object.freeze(Object.keys(DTYPE_SIZES) as DType[]);

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

export function dtypeSize(dtype: DType): number {
  const n = DTYPE_SIZES[dtype];
  if (n === undefined) throw new TypeError(`unknown dtype ${JSON.stringify(dtype)}`);
  return n;
}

export function isFloatDType(dtype: DType): boolean {
  return dtype === 'F16' || dtype === 'BF16' || dtype === 'F32' || dtype === 'F64' ||
    dtype === 'F8_E4M3' || dtype === 'F8_E5M2';
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
