// Sliding-window fingerprint: does the candidate attend to keys the window hides? With a window
// of W, query i sees keys i-W+1 .. i (layers/mask.ts). A runtime that drops the window (llama.cpp
// turns Phi-3's off at load: "Phi SWA is currently disabled") agrees on positions 0..W-1 and
// differs from position W on. From the attention weights the evidence is direct: the candidate's
// probability mass on keys more than W-1 positions back, where the reference has none. Without
// attention weights, the positions of the first divergent tap say it: all of them from W on.

import type { Numeric } from '../../oracle/metrics.js';

export interface WindowFingerprint {
  window: number;
  /** Mean probability mass per query (positions >= W) on keys outside the window: candidate, reference. */
  candidateMass?: number;
  referenceMass?: number;
  /** The first position whose error is over tolerance. */
  firstPosition?: number;
  /** True when the evidence says the candidate ignores the window. */
  ignored: boolean;
  text: string;
}

/** Mean mass on keys j <= i - W over queries i >= W, for probs [B, nh, T, T]. */
function outsideMass(p: Numeric, shape: number[], W: number): number {
  const [B, nh, T, K] = shape;
  let sum = 0;
  let rows = 0;
  for (let bh = 0; bh < B * nh; bh++) {
    for (let i = W; i < T; i++) {
      const off = (bh * T + i) * K;
      for (let j = 0; j <= i - W && j < K; j++) sum += p[off + j];
      rows++;
    }
  }
  return rows ? sum / rows : 0;
}

/** From the first divergent layer's attention weights [B, nh, T, T] of both sides. */
export function windowFromProbs(W: number, layer: number, ref: Numeric, cand: Numeric, shape: number[]): WindowFingerprint | null {
  if (shape.length !== 4 || shape[2] <= W) return null;
  const candidateMass = outsideMass(cand, shape, W);
  const referenceMass = outsideMass(ref, shape, W);
  const ignored = candidateMass > 1e-3 && referenceMass <= 1e-6;
  const masses = `mean weight per query on keys outside the window: candidate ${candidateMass.toExponential(1)}, reference ${referenceMass.toExponential(1)}`;
  const text = ignored
    ? `sliding window: the candidate ignores the sliding window (sliding_window ${W}): from position ${W} on its layer-${layer} queries attend to keys more than ${W - 1} positions back, which the reference masks (${masses}); llama.cpp, for one, disables Phi-3's sliding window at load`
    : `sliding window: the candidate keeps the sliding window (sliding_window ${W}; ${masses}); the difference is elsewhere`;
  return { window: W, candidateMass, referenceMass, ignored, text };
}

/** From a divergent tap's per-position errors: clean before W, over tolerance from W on. */
export function windowFromPositions(W: number, name: string, positions: number[], tol: number): WindowFingerprint | null {
  if (positions.length <= W) return null;
  const first = positions.findIndex((x) => !(x <= tol));
  if (first !== W) return null;
  const allAfter = positions.slice(W).every((x) => !(x <= tol));
  if (!allAfter) return null;
  return {
    window: W, firstPosition: first, ignored: true,
    text: `sliding window: ${name} agrees at positions 0..${W - 1} and differs at every position from ${W} = sliding_window on: the candidate probably ignores the sliding window (dump attn_probs to confirm); llama.cpp, for one, disables Phi-3's sliding window at load`,
  };
}
