// Rounding a float64 activation to a narrower storage format, to emulate a runtime that keeps its
// activations in float32, bfloat16 or float16 between operations (the arithmetic inside each
// operation stays exact). Round to nearest, ties to even, with subnormals and overflow to
// infinity as IEEE 754 specifies.

export const ROUNDINGS = ['none', 'f32', 'bf16', 'f16'] as const;
export type Rounding = (typeof ROUNDINGS)[number];

/** A binary floating-point format: significand bits (the implicit bit counted), smallest normal exponent, largest finite value. */
interface Format { bits: number; minExp: number; maxFinite: number }

const FORMATS: Record<'bf16' | 'f16', Format> = {
  bf16: { bits: 8, minExp: -126, maxFinite: (2 - 2 ** -7) * 2 ** 127 },
  f16: { bits: 11, minExp: -14, maxFinite: 65504 },
};

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const frac = v - f; // exact: |v| < 2^24 here
  if (frac !== 0.5) return frac < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** x rounded to the nearest value of `fmt`. */
function roundTo(x: number, fmt: Format): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // log2 may round up just below a power of two
  else if (2 ** (e + 1) <= a) e++;
  const quantum = 2 ** (Math.max(e, fmt.minExp) - fmt.bits + 1); // spacing of the format near x
  const r = roundHalfEven(x / quantum) * quantum;
  return Math.abs(r) > fmt.maxFinite ? Math.sign(r) * Infinity : r;
}

/** Rounds every element of `a` in place to the given storage format; 'none' leaves it exact. */
export function roundInPlace(a: Float64Array, rounding: Rounding): Float64Array {
  if (rounding === 'none') return a;
  if (rounding === 'f32') {
    for (let i = 0; i < a.length; i++) a[i] = Math.fround(a[i]);
    return a;
  }
  const fmt = FORMATS[rounding];
  for (let i = 0; i < a.length; i++) a[i] = roundTo(a[i], fmt);
  return a;
}
