/**
 * One element at a time: the bit patterns of bf16, IEEE half and the two
 * float8 formats to and from float32 values, and the lookup tables the bulk
 * decoders (decode.ts) use for the formats whose conversion is not a shift.
 * Rounding is to nearest, ties to even; NaN stays NaN.
 */


const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** bfloat16 bits -> float32 value (exact). */
export function bf16BitsToFloat32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

export function f32BitsToBf16Bits(b: number): number {
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

export function f32BitsToF16Bits(b: number): number {
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
export function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToFloat32(i);
  }
  return f16Table;
}
let f8Tables: { E4M3: Float32Array; E5M2: Float32Array } | undefined;
export function f8Lut(dtype: 'F8_E4M3' | 'F8_E5M2'): Float32Array {
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
