/**
 * Encoding for the writer: typed arrays -> raw little-endian bytes of a dtype
 * (the host is little-endian: dtypes.ts, so a same-layout array is its own
 * bytes). BF16 and F16 round through bits.ts, the one copy of each rounding.
 */
import { type DType, dtypeSize, isDType } from './dtypes.js';
import { f32BitsToBf16Bits, f32BitsToF16Bits } from './bits.js';

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
 * Encode `data` as little-endian bytes of `dtype`. Returns a view of the
 * input's memory (no copy) when no conversion is needed: the result must be
 * treated as read-only.
 */
export function encodeElements(data: TensorData, dtype: DType): Uint8Array {
  if (!canEncode(data, dtype)) throw new TypeError(`cannot write a ${arrayKind(data)} as ${dtype}`);
  if (data instanceof Uint8Array) return data;
  const size = dtypeSize(dtype);
  const n = data.length;
  // Same layout as the input: a byte view.
  if ((data instanceof Float32Array && dtype === 'F32') || (data instanceof Float64Array && dtype === 'F64') ||
      (data instanceof Int32Array && dtype === 'I32') || data instanceof Uint16Array ||
      data instanceof BigInt64Array) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
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
      const round = dtype === 'BF16' ? f32BitsToBf16Bits : f32BitsToF16Bits;
      for (let i = 0; i < n; i++) dst[i] = round(bits[i]!);
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
  return out;
}
