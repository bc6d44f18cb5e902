/**
 * Bulk decoding: raw little-endian bytes of a dtype -> float32, float64 or
 * int32 arrays. Views are laid over an aligned copy of the bytes (never one
 * DataView call per element), so it is fast enough for multi-GB tensors.
 * Errors are plain RangeError/TypeError with a one-line message; the reader
 * wraps them into a WeightsError naming the file and tensor.
 */
import { type DType, DTYPE_SIZES, dtypeSize } from './dtypes.js';
import { f16Lut, f8Lut } from './bits.js';

/**
 * The bytes as a buffer typed-array views of `size`-byte elements can be laid
 * over (the host is little-endian: dtypes.ts): copied only when unaligned.
 */
function aligned(bytes: Uint8Array, size: number): Uint8Array {
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice();
}

function elementCount(dtype: DType, bytes: Uint8Array): number {
  const size = dtypeSize(dtype);
  if (bytes.length % size !== 0) {
    throw new RangeError(`${bytes.length} bytes is not a whole number of ${dtype} elements (${size} bytes each)`);
  }
  return bytes.length / size;
}

function outArray<T extends Float32Array | Float64Array | Int32Array>(
  ctor: { new (n: number): T; readonly name: string },
  n: number,
  out: T | undefined,
  offset: number,
): T {
  if (!out) return new ctor(n);
  if (!Number.isInteger(offset) || offset < 0 || offset + n > out.length) {
    throw new RangeError(`output ${ctor.name} of length ${out.length} cannot hold ${n} elements at offset ${offset}`);
  }
  return out;
}

const TWO32 = 4294967296;

/**
 * Decode little-endian `bytes` of `dtype` into float32 values, written to
 * `out` starting at `outOffset` (a new array when `out` is omitted).
 *
 * BF16, F16, F8_*: exact. F64: rounded to nearest float32. Integers and BOOL:
 * converted to the nearest float32 (exact up to 2^24; I64/U64 go through a
 * float64 first). Returns `out` (or the new array).
 */
export function decodeToFloat32(dtype: DType, bytes: Uint8Array, out?: Float32Array, outOffset = 0): Float32Array {
  const n = elementCount(dtype, bytes);
  const o = outArray(Float32Array, n, out, outOffset);
  const size = DTYPE_SIZES[dtype];
  const b = aligned(bytes, size);
  switch (dtype) {
    case 'BF16': {
      const dst = new Int32Array(o.buffer, o.byteOffset + outOffset * 4, n);
      // bf16 is the top half of a float32. Two elements per 32-bit load when the bytes allow it:
      // the low half is element 2i, the high half element 2i + 1 (little-endian host order).
      if (b.byteOffset % 4 === 0) {
        const pairs = new Uint32Array(b.buffer, b.byteOffset, n >> 1);
        for (let i = 0, j = 0; i < pairs.length; i++, j += 2) {
          const v = pairs[i]!;
          dst[j] = v << 16;
          dst[j + 1] = v & 0xffff0000;
        }
        if (n & 1) dst[n - 1] = new Uint16Array(b.buffer, b.byteOffset, n)[n - 1]! << 16;
      } else {
        const src = new Uint16Array(b.buffer, b.byteOffset, n);
        for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
      }
      return o;
    }
    default:
      return decodeGeneric(dtype, b, n, o, outOffset);
  }
}

/**
 * Decode little-endian `bytes` of `dtype` into float64 values. Every
 * conversion is exact: I64/U64 values outside ±(2^53 - 1) throw a RangeError
 * naming the element.
 */
export function decodeToFloat64(dtype: DType, bytes: Uint8Array, out?: Float64Array, outOffset = 0): Float64Array {
  const n = elementCount(dtype, bytes);
  const o = outArray(Float64Array, n, out, outOffset);
  const b = aligned(bytes, DTYPE_SIZES[dtype]);
  switch (dtype) {
    case 'F64':
      o.set(new Float64Array(b.buffer, b.byteOffset, n), outOffset);
      return o;
    case 'I64':
    case 'U64': {
      const w = new Uint32Array(b.buffer, b.byteOffset, 2 * n);
      const signed = dtype === 'I64';
      for (let i = 0; i < n; i++) {
        const lo = w[2 * i]!;
        const hi = signed ? w[2 * i + 1]! | 0 : w[2 * i + 1]!;
        const v = hi * TWO32 + lo;
        if (!Number.isSafeInteger(v)) {
          throw new RangeError(`element ${outOffset + i} = ${int64String(lo, hi)} is not exactly representable as a float64`);
        }
        o[outOffset + i] = v;
      }
      return o;
    }
    case 'BF16':
    case 'F16':
    case 'F32':
      // exact through float32, and a native float32 -> float64 copy: far faster than per-element decoding
      o.set(decodeToFloat32(dtype, bytes), outOffset);
      return o;
    default:
      return decodeGeneric(dtype, b, n, o, outOffset);
  }
}

/**
 * Decode little-endian `bytes` of `dtype` into int32 values.
 * Integer dtypes: values outside the int32 range throw a RangeError naming
 * the element. Float dtypes: accepted only when every value is an exact
 * integer within the int32 range (e.g. ids stored as floats); anything else
 * (fractions, NaN, inf, out of range) throws.
 */
export function decodeToInt32(dtype: DType, bytes: Uint8Array, out?: Int32Array, outOffset = 0): Int32Array {
  const n = elementCount(dtype, bytes);
  const o = outArray(Int32Array, n, out, outOffset);
  const b = aligned(bytes, DTYPE_SIZES[dtype]);
  switch (dtype) {
    case 'I32':
      o.set(new Int32Array(b.buffer, b.byteOffset, n), outOffset);
      return o;
    case 'I64':
    case 'U64': {
      const w = new Uint32Array(b.buffer, b.byteOffset, 2 * n);
      const signed = dtype === 'I64';
      for (let i = 0; i < n; i++) {
        const lo = w[2 * i]!;
        const hiU = w[2 * i + 1]!;
        const ok = hiU === 0 ? lo < 0x80000000 : signed && hiU === 0xffffffff && lo >= 0x80000000;
        if (!ok) {
          throw new RangeError(
            `element ${outOffset + i} = ${signed ? int64String(lo, hiU | 0) : int64String(lo, hiU)} is out of int32 range`);
        }
        o[outOffset + i] = lo | 0;
      }
      return o;
    }
    case 'U32': {
      const src = new Uint32Array(b.buffer, b.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        if (v > 0x7fffffff) throw new RangeError(`element ${outOffset + i} = ${v} is out of int32 range`);
        o[outOffset + i] = v;
      }
      return o;
    }
    case 'BOOL':
    case 'U8':
    case 'I8':
    case 'I16':
    case 'U16': {
      const src = intView(dtype, b, n);
      for (let i = 0; i < n; i++) o[outOffset + i] = dtype === 'BOOL' ? (src[i] ? 1 : 0) : src[i]!;
      return o;
    }
    default: {
      // float dtypes: exact integers only
      const f = decodeToFloat64(dtype, bytes);
      for (let i = 0; i < n; i++) {
        const v = f[i]!;
        if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
          throw new RangeError(`element ${outOffset + i} = ${v} is not an integer in int32 range`);
        }
        o[outOffset + i] = v;
      }
      return o;
    }
  }
}

function intView(dtype: 'BOOL' | 'U8' | 'I8' | 'I16' | 'U16', b: Uint8Array, n: number):
  Uint8Array | Int8Array | Int16Array | Uint16Array {
  switch (dtype) {
    case 'BOOL':
    case 'U8':
      return new Uint8Array(b.buffer, b.byteOffset, n);
    case 'I8':
      return new Int8Array(b.buffer, b.byteOffset, n);
    case 'I16':
      return new Int16Array(b.buffer, b.byteOffset, n);
    case 'U16':
      return new Uint16Array(b.buffer, b.byteOffset, n);
  }
}

/** Aligned bytes -> float values (float32 or float64 output): every dtype but BF16, each converted one way. */
function decodeGeneric<T extends Float32Array | Float64Array>(
  dtype: DType, b: Uint8Array, n: number, o: T, off: number,
): T {
  switch (dtype) {
    case 'BF16':
      throw new TypeError('BF16 is decoded by decodeToFloat32 (two elements per 32-bit load)');
    case 'F16': {
      const lut = f16Lut();
      const src = new Uint16Array(b.buffer, b.byteOffset, n);
      for (let i = 0; i < n; i++) o[off + i] = lut[src[i]!]!;
      return o;
    }
    case 'F8_E4M3':
    case 'F8_E5M2': {
      const lut = f8Lut(dtype);
      for (let i = 0; i < n; i++) o[off + i] = lut[b[i]!]!;
      return o;
    }
    case 'F32':
      o.set(new Float32Array(b.buffer, b.byteOffset, n), off);
      return o;
    case 'F64':
      o.set(new Float64Array(b.buffer, b.byteOffset, n), off);
      return o;
    case 'I32':
      o.set(new Int32Array(b.buffer, b.byteOffset, n), off);
      return o;
    case 'U32':
      o.set(new Uint32Array(b.buffer, b.byteOffset, n), off);
      return o;
    case 'I64':
    case 'U64': {
      const w = new Uint32Array(b.buffer, b.byteOffset, 2 * n);
      const signed = dtype === 'I64';
      for (let i = 0; i < n; i++) {
        const hi = signed ? w[2 * i + 1]! | 0 : w[2 * i + 1]!;
        o[off + i] = hi * TWO32 + w[2 * i]!;
      }
      return o;
    }
    case 'BOOL': {
      for (let i = 0; i < n; i++) o[off + i] = b[i] ? 1 : 0;
      return o;
    }
    case 'U8':
    case 'I8':
    case 'I16':
    case 'U16':
      o.set(intView(dtype, b, n), off);
      return o;
  }
}

/** Exact decimal string of a 64-bit integer given as (unsigned low word, high word). */
function int64String(lo: number, hi: number): string {
  return (BigInt(hi) * 4294967296n + BigInt(lo)).toString();
}
