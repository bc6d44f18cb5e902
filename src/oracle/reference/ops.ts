// The operations of the Phi-3 forward pass over plain Float64Array, row-major, no tensor library:
// the plainest statement of the math, and a float64 reference for it. Each sum is taken in
// float64 (53 bits), so for the sizes of these models (sums of at most 10^4 to 10^5 terms) its
// rounding error is about 1e-12 relative or below: exact for any float32 comparison.
//
// The matrix products are in ./products.ts (on every core). T rows (batch x positions), H hidden,
// d head dim; shapes in the comments.

/** sum_i a[ai + i] b[bi + i], i < n, with four partial sums (the same float64 result, four times as fast). */
export function dot(a: Float64Array, ai: number, b: Float64Array, bi: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[ai + i] * b[bi + i];
    s1 += a[ai + i + 1] * b[bi + i + 1];
    s2 += a[ai + i + 2] * b[bi + i + 2];
    s3 += a[ai + i + 3] * b[bi + i + 3];
  }
  for (; i < n; i++) s0 += a[ai + i] * b[bi + i];
  return (s0 + s1) + (s2 + s3);
}

/** RMSNorm of each row: weight * x / sqrt(mean(x^2) + eps). x [T, H], weight [H]; into `y` (T * H) when given. */
export function rmsNorm(x: Float64Array, T: number, H: number, weight: Float64Array, eps: number, y: Float64Array = new Float64Array(T * H)): Float64Array {
  for (let t = 0; t < T; t++) {
    const r = t * H;
    const scale = 1 / Math.sqrt(dot(x, r, x, r, H) / H + eps);
    for (let i = 0; i < H; i++) y[r + i] = weight[i] * (x[r + i] * scale);
  }
  return y;
}

/**
 * Rotary embedding of one head vector in place: the first `rot` dims rotate as
 * x * cos + rotate_half(x) * sin (rotate_half(x) = [-x2, x1]); the rest pass through.
 */
export function rotate(v: Float64Array, at: number, cos: Float32Array, sin: Float32Array, tableAt: number, rot: number): void {
  const half = rot / 2;
  for (let i = 0; i < half; i++) {
    const x1 = v[at + i];
    const x2 = v[at + half + i];
    v[at + i] = x1 * cos[tableAt + i] - x2 * sin[tableAt + i];
    v[at + half + i] = x2 * cos[tableAt + half + i] + x1 * sin[tableAt + half + i];
  }
}

/** softmax over s[from, from + n) in place; entries at -Infinity get probability 0. */
export function softmax(s: Float64Array, from: number, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, s[from + i]);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(s[from + i] - max);
    s[from + i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) s[from + i] /= sum;
}

/** silu(g) = g * sigmoid(g) = g / (1 + e^-g). */
export function silu(g: number): number {
  return g / (1 + Math.exp(-g));
}
