/**
 * Element types of the safetensors format and conversions between their raw
 * little-endian bytes and JavaScript typed arrays.
 *
 * Nothing here knows about models or files. Bulk conversions work on
 * Uint16Array/Uint32Array views of an aligned copy of the bytes (never one
 * DataView call per element), so they are fast enough for multi-GB tensors.
 *
 * Errors are plain RangeError/TypeError with a one-line message; the reader
 * and the writer wrap them into WeightsError naming the file and tensor.
 */
import * as os from 'node:os';

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

/** True when typed-array views read little-endian bytes directly. */
export const HOST_LITTLE_ENDIAN = os.endianness() === 'LE';

// ---------------------------------------------------------------------------
// Scalar bit conversions
// ---------------------------------------------------------------------------

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** bfloat16 bits -> float32 value (exact). */
export function bf16BitsToFloat32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

function f32BitsToBf16Bits(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) {
    // NaN: keep sign and top payload bits, force the quiet bit so that a
    // payload living only in the low 16 bits does not turn into infinity.
    return ((b >>> 16) | 0x0040) & 0xffff;
  }
  // Round to nearest, ties to even. Cannot overflow 32 bits for non-NaN input.
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** number -> bfloat16 bits, via float32 (round-to-nearest-even; NaN stays NaN). */
export function float32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16Bits(scratchU32[0]!);
}

/** IEEE half bits -> float32 value (exact, including subnormals, ±inf, NaN). */
export function f16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) {
    // inf, or NaN with the top payload bits kept and the quiet bit set
    return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  }
  const he = exp - 112; // half-precision biased exponent (127 - 15 = 112)
  if (he >= 0x1f) return sign | 0x7c00; // |x| >= 65536: overflow to inf
  if (he <= 0) {
    // Result is a half subnormal (or zero, or rounds up to the smallest normal).
    if (he < -10) return sign; // |x| < 2^-25: rounds to (signed) zero
    const m = mant | 0x800000; // restore the implicit bit
    const shift = 14 - he; // 14..24
    const half = 1 << (shift - 1);
    const rem = m & ((1 << shift) - 1);
    let hm = m >>> shift;
    if (rem > half || (rem === half && (hm & 1) !== 0)) hm++;
    return sign | hm;
  }
  let h = (he << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // carry may reach inf: correct
  return sign | h;
}

/** number -> IEEE half bits, via float32 (round-to-nearest-even, overflow to inf). */
export function float32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16Bits(scratchU32[0]!);
}

/** float8 e4m3fn (bias 7, no infinities, S.1111.111 is NaN) -> value. */
export function f8e4m3BitsToFloat32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exp = (bits >>> 3) & 0xf;
  const mant = bits & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (8 + mant) * 2 ** (exp - 10);
}

/** float8 e5m2 (the top byte of an IEEE half) -> value. */
export function f8e5m2BitsToFloat32(bits: number): number {
  return f16BitsToFloat32((bits & 0xff) << 8);
}

// Lookup tables, built on first use.
let f16Table: Float32Array | undefined;
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToFloat32(i);
  }
  return f16Table;
}
let f8Tables: { E4M3: Float32Array; E5M2: Float32Array } | undefined;
function f8Lut(dtype: 'F8_E4M3' | 'F8_E5M2'): Float32Array {
  if (!f8Tables) {
    const E4M3 = new Float32Array(256);
    const E5M2 = new Float32Array(256);
    for (let i = 0; i < 256; i++) {
      E4M3[i] = f8e4m3BitsToFloat32(i);
      E5M2[i] = f8e5m2BitsToFloat32(i);
    }
    f8Tables = { E4M3, E5M2 };
  }
  return dtype === 'F8_E4M3' ? f8Tables.E4M3 : f8Tables.E5M2;
}

// ---------------------------------------------------------------------------
// Byte handling
// ---------------------------------------------------------------------------

/** Reverse the bytes of each `size`-byte element in place (big-endian hosts). */
export function swapBytesInPlace(bytes: Uint8Array, size: number): void {
  if (size <= 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/**
 * Bytes of little-endian elements, as an aligned buffer in host byte order
 * that typed-array views can be laid over. Copies only when the input is
 * unaligned or the host is big-endian.
 */
function hostOrdered(bytes: Uint8Array, size: number): Uint8Array {
  let b = bytes;
  if (b.byteOffset % size !== 0 || !HOST_LITTLE_ENDIAN) b = b.slice();
  if (!HOST_LITTLE_ENDIAN) swapBytesInPlace(b, size);
  return b;
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

// ---------------------------------------------------------------------------
// Decoders: raw little-endian bytes -> typed arrays
// ---------------------------------------------------------------------------

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
  const b = hostOrdered(bytes, size);
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
    case 'F32': {
      o.set(new Float32Array(b.buffer, b.byteOffset, n), outOffset);
      return o;
    }
    case 'F16': {
      const lut = f16Lut();
      const src = new Uint16Array(b.buffer, b.byteOffset, n);
      for (let i = 0; i < n; i++) o[outOffset + i] = lut[src[i]!]!;
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
  const b = hostOrdered(bytes, DTYPE_SIZES[dtype]);
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
  const b = hostOrdered(bytes, DTYPE_SIZES[dtype]);
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

/** Host-ordered aligned bytes -> float values for every dtype (float32 or float64 output). */
function decodeGeneric<T extends Float32Array | Float64Array>(
  dtype: DType, b: Uint8Array, n: number, o: T, off: number,
): T {
  switch (dtype) {
    case 'BF16': {
      const src = new Uint16Array(b.buffer, b.byteOffset, n);
      const tmp = new Float32Array(1);
      const tmpU = new Uint32Array(tmp.buffer);
      for (let i = 0; i < n; i++) {
        tmpU[0] = src[i]! << 16;
        o[off + i] = tmp[0]!;
      }
      return o;
    }
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

// ---------------------------------------------------------------------------
// Encoders: typed arrays -> raw little-endian bytes (for the writer)
// ---------------------------------------------------------------------------

/** The array types the writer accepts as tensor data. */
export type TensorData = Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array | BigInt64Array;

function arrayKind(data: TensorData): string {
  return Object.getPrototypeOf(data)?.constructor?.name ?? 'array';
}

/**
 * Which (array type, dtype) pairs `encodeElements` accepts:
 *  - Uint8Array: any dtype, as raw little-endian bytes (must be whole elements
 *    when written in one piece; see the writer);
 *  - Float32Array: F32, F64, BF16, F16 (BF16/F16 round to nearest even);
 *  - Float64Array: F64, F32, and BF16/F16 via float32 (like torch);
 *  - Int32Array: I32, I64 (sign-extended), F32, F64;
 *  - Uint16Array: BF16, F16, U16, I16 as raw 16-bit patterns;
 *  - BigInt64Array: I64.
 */
export function canEncode(data: TensorData, dtype: DType): boolean {
  if (data instanceof Uint8Array) return isDType(dtype);
  if (data instanceof Float32Array || data instanceof Float64Array) {
    return dtype === 'F32' || dtype === 'F64' || dtype === 'BF16' || dtype === 'F16';
  }
  if (data instanceof Int32Array) return dtype === 'I32' || dtype === 'I64' || dtype === 'F32' || dtype === 'F64';
  if (data instanceof Uint16Array) return dtype === 'BF16' || dtype === 'F16' || dtype === 'U16' || dtype === 'I16';
  if (data instanceof BigInt64Array) return dtype === 'I64';
  return false;
}

/**
 * Number of `dtype` elements that `data` holds (for a Uint8Array: its byte
 * length divided by the element size, possibly fractional).
 */
export function elementsIn(data: TensorData, dtype: DType): number {
  return data instanceof Uint8Array ? data.length / dtypeSize(dtype) : data.length;
}

/**
 * Encode `data` as little-endian bytes of `dtype`. May return a view of the
 * input's memory (no copy) when no conversion is needed on a little-endian
 * host: the result must be treated as read-only.
 */
export function encodeElements(data: TensorData, dtype: DType): Uint8Array {
  if (!canEncode(data, dtype)) throw new TypeError(`cannot write a ${arrayKind(data)} as ${dtype}`);
  if (data instanceof Uint8Array) return data;
  const size = dtypeSize(dtype);
  const n = data.length;
  // Same layout as the input: a byte view (swapped copy on big-endian hosts).
  if ((data instanceof Float32Array && dtype === 'F32') || (data instanceof Float64Array && dtype === 'F64') ||
      (data instanceof Int32Array && dtype === 'I32') || data instanceof Uint16Array ||
      data instanceof BigInt64Array) {
    const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (HOST_LITTLE_ENDIAN) return view;
    const copy = view.slice();
    swapBytesInPlace(copy, size);
    return copy;
  }
  const out = new Uint8Array(n * size);
  switch (dtype) {
    case 'F32':
      new Float32Array(out.buffer).set(data as Float64Array | Int32Array);
      break;
    case 'F64':
      new Float64Array(out.buffer).set(data as Float32Array | Int32Array);
      break;
    case 'BF16':
    case 'F16': {
      const src = data instanceof Float32Array ? data : Float32Array.from(data as Float64Array);
      const bits = new Uint32Array(src.buffer, src.byteOffset, n);
      const dst = new Uint16Array(out.buffer);
      if (dtype === 'BF16') {
        for (let i = 0; i < n; i++) {
          const b = bits[i]!;
          dst[i] = (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) | 0x0040) & 0xffff
            : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
        }
      } else {
        for (let i = 0; i < n; i++) dst[i] = f32BitsToF16Bits(bits[i]!);
      }
      break;
    }
    case 'I64': {
      const src = data as Int32Array;
      const dst = new Int32Array(out.buffer);
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        dst[2 * i] = v;
        dst[2 * i + 1] = v < 0 ? -1 : 0;
      }
      break;
    }
    default:
      throw new TypeError(`cannot write a ${arrayKind(data)} as ${dtype}`);
  }
  if (!HOST_LITTLE_ENDIAN) swapBytesInPlace(out, size);
  return out;
}
