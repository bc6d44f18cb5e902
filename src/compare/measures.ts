// The numbers compare.ts reports beside rel L2 and max |diff| (src/oracle/metrics.ts): the cosine,
// and for logits top-1 agreement and KL. Pure float64 arithmetic on flat arrays.

import type { Numeric } from '../oracle/metrics.js';
import type { LogitStats } from './report.js';

/** cos(a, b), each side divided by its largest |x| first, so that no finite input overflows. */
export function cosine(a: Numeric, b: Numeric): number {
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i]);
    const y = Math.abs(b[i]);
    if (!(x <= ma)) ma = x;
    if (!(y <= mb)) mb = y;
  }
  if (ma === 0 && mb === 0) return 1;
  if (ma === 0 || mb === 0) return 0;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] / ma;
    const y = b[i] / mb;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.sqrt(aa * bb);
}

/** log softmax of row `x[off .. off + V)` in float64 (max subtracted first). */
function logSoftmax(x: Numeric, off: number, V: number, out: Float64Array): void {
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, x[off + i]);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(x[off + i] - m);
  const lse = m + Math.log(s);
  for (let i = 0; i < V; i++) out[i] = x[off + i] - lse;
}

/** Top-1 agreement and KL(P_ref || P_cand) over the rows of [rows, V] logits. */
export function logitStats(cand: Numeric, ref: Numeric, V: number): LogitStats {
  const rows = ref.length / V;
  const lp = new Float64Array(V);
  const lq = new Float64Array(V);
  let top1 = 0;
  let klSum = 0;
  let klMax = 0;
  for (let r = 0; r < rows; r++) {
    logSoftmax(ref, r * V, V, lp);
    logSoftmax(cand, r * V, V, lq);
    let kl = 0;
    let ap = 0;
    let aq = 0;
    for (let i = 0; i < V; i++) {
      const p = Math.exp(lp[i]);
      if (p > 0) kl += p * (lp[i] - lq[i]);
      if (lp[i] > lp[ap]) ap = i;
      if (lq[i] > lq[aq]) aq = i;
    }
    kl = Math.max(kl, 0); // rounding can leave -1e-17 when the two agree
    if (ap === aq) top1++;
    klSum += kl;
    if (!(kl <= klMax)) klMax = kl;
  }
  return { top1, positions: rows, klMean: rows ? klSum / rows : 0, klMax };
}
