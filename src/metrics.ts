// Error measures between a tensor and its reference, computed in float64.

export type Numeric = Float32Array | Float64Array | Int32Array;

/** ||a - b|| / ||b|| (L2 over all elements); ||a - b|| when b is all zeros. */
export function relL2(a: Numeric, b: Numeric): number {
  if (a.length !== b.length) throw new Error(`relL2: lengths differ (${a.length} vs ${b.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** max |a - b| (NaN anywhere gives NaN). */
export function maxAbs(a: Numeric, b: Numeric): number {
  if (a.length !== b.length) throw new Error(`maxAbs: lengths differ (${a.length} vs ${b.length})`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // also propagates NaN
  }
  return m;
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
