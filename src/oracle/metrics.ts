// Error measures between a tensor and its reference, computed in float64 and scaled before
// squaring, so that no finite input overflows (a 1e200 float64 reference) or underflows to 0.

export type Numeric = Float32Array | Float64Array | Int32Array;

/**
 * sqrt(sum x_i^2) without overflow or underflow: each term is divided by the largest |x_i| before
 * squaring (the scaled sum is then in [1, n]). NaN anywhere gives NaN, an infinity gives Infinity.
 */
function norm2(get: (i: number) => number, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) {
    const v = Math.abs(get(i));
    if (Number.isNaN(v)) return NaN; // NaN anywhere is the answer (a later value must not replace it)
    if (v > m) m = v;
  }
  if (m === 0 || !Number.isFinite(m)) return m;
  let s = 0;
  for (let i = 0; i < n; i++) {
    const v = get(i) / m;
    s += v * v;
  }
  return m * Math.sqrt(s);
}

/** ||a - b|| / ||b|| (L2 over all elements); ||a - b|| when b is all zeros. */
export function relL2(a: Numeric, b: Numeric): number {
  if (a.length !== b.length) throw new Error(`relL2: lengths differ (${a.length} vs ${b.length})`);
  return relL2Range(a, b, 0, a.length);
}

/** relL2 of the elements [start, end) */
function relL2Range(a: Numeric, b: Numeric, start: number, end: number): number {
  const num = norm2((i) => a[start + i] - b[start + i], end - start);
  const den = norm2((i) => b[start + i], end - start);
  return den === 0 ? num : num / den;
}

/** max |a - b| (NaN anywhere gives NaN). */
export function maxAbs(a: Numeric, b: Numeric): number {
  if (a.length !== b.length) throw new Error(`maxAbs: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > m) m = d;
  }
  return m;
}

/**
 * rel L2 per index of one axis: for each k in [0, shape[axis]), ||a - b|| / ||b|| over the
 * elements whose index on `axis` is k (per position, per head). Both norms are scaled as above.
 */
export function relL2Along(a: Numeric, b: Numeric, shape: number[], axis: number): number[] {
  const K = shape[axis];
  const inner = shape.slice(axis + 1).reduce((p, q) => p * q, 1);
  const outer = shape.slice(0, axis).reduce((p, q) => p * q, 1);
  const out: number[] = [];
  const n = outer * inner;
  // element j of group k: outer index o = floor(j / inner), inner index j % inner
  const at = (k: number, j: number) => (Math.floor(j / inner) * K + k) * inner + (j % inner);
  for (let k = 0; k < K; k++) {
    const num = norm2((j) => a[at(k, j)] - b[at(k, j)], n);
    const den = norm2((j) => b[at(k, j)], n);
    out.push(den === 0 ? num : num / den);
  }
  return out;
}

/**
 * The root mean square over positions of each position's own rel L2. Unlike the whole-tensor rel L2,
 * one position of huge values (a 3e38 outlier) cannot hide an error on all the others.
 */
export function rmsOf(xs: number[]): number {
  if (xs.length === 0) return 0;
  const m = norm2((i) => xs[i], xs.length);
  return m / Math.sqrt(xs.length);
}

/**
 * Keeps only the elements whose (batch, position) pair is selected: `keep[b * T + t]`, where
 * axis 0 of `shape` is the batch and axis `seqAxis` the position. Used to compare a padded
 * batch on its real tokens only.
 */
export function selectPositions<A extends Numeric>(data: A, shape: number[], seqAxis: number, keep: ArrayLike<number>): A {
  const T = shape[seqAxis];
  const inner = shape.slice(seqAxis + 1).reduce((p, q) => p * q, 1);
  const perBatch = shape.slice(1).reduce((p, q) => p * q, 1);
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const b = Math.floor(i / perBatch);
    const t = Math.floor(i / inner) % T;
    if (keep[b * T + t]) out.push(data[i]);
  }
  const Ctor = data.constructor as new (n: number[]) => A;
  return new Ctor(out);
}
