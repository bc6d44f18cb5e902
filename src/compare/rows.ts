// A batched dump's error row by row: which rows diverge, and for a padded batch whether the error
// sits in the padded rows, or only at their padded positions (which attention_mask 0 leaves out of
// the verdict: what a runtime writes at a pad token is its own business).

import type { Numeric } from '../oracle/metrics.js';

export interface RowErrors {
  /** rel L2 per batch row over its real positions (attention_mask 1; every position without a mask). */
  real: number[];
  /** rel L2 per batch row over its padded positions; null for a row without padding. */
  padded: (number | null)[];
  /** Padded positions per row (0 without a mask). */
  pads: number[];
}

/**
 * Per-row errors of a tap whose axis 0 is the batch (B rows) and axis `seqAxis` the position (T);
 * `mask` [B * T] or null. Null when the shape does not fit.
 */
export function rowErrors(a: Numeric, b: Numeric, shape: number[], seqAxis: number, mask: ArrayLike<number> | null): RowErrors | null {
  const B = shape[0];
  const T = shape[seqAxis];
  if (seqAxis <= 0 || (mask && mask.length !== B * T)) return null;
  const inner = shape.slice(seqAxis + 1).reduce((p, q) => p * q, 1);
  const perRow = shape.slice(1).reduce((p, q) => p * q, 1);
  const num = new Float64Array(2 * B);
  const den = new Float64Array(2 * B);
  for (let i = 0; i < a.length; i++) {
    const row = Math.floor(i / perRow);
    const t = Math.floor(i / inner) % T;
    const k = 2 * row + (mask && !mask[row * T + t] ? 1 : 0);
    const d = a[i] - b[i];
    num[k] += d * d;
    den[k] += b[i] * b[i];
  }
  const rel = (k: number) => (den[k] === 0 ? Math.sqrt(num[k]) : Math.sqrt(num[k] / den[k]));
  const pads = Array.from({ length: B }, (_, r) => {
    let n = 0;
    if (mask) for (let t = 0; t < T; t++) if (!mask[r * T + t]) n++;
    return n;
  });
  return {
    real: Array.from({ length: B }, (_, r) => rel(2 * r)),
    padded: pads.map((n, r) => (n ? rel(2 * r + 1) : null)),
    pads,
  };
}

/** The row story of a tap in words, or '' when there is none to tell (one row, or every row alike). */
export function describeRows(rows: RowErrors, tol: number, ok: boolean): string {
  const bad = (x: number | null) => x !== null && !(x <= tol);
  const B = rows.real.length;
  const over = rows.real.flatMap((x, r) => (bad(x) ? [r] : []));
  const paddedRows = rows.pads.flatMap((n, r) => (n ? [r] : []));
  const list = (rs: number[]) => `row${rs.length > 1 ? 's' : ''} ${rs.join(', ')}`;
  if (!ok && over.length && over.length < B) {
    const which = paddedRows.length && over.every((r) => paddedRows.includes(r)) && paddedRows.every((r) => over.includes(r))
      ? ` (only the padded row${over.length > 1 ? 's' : ''}: ${over.map((r) => `row ${r} has ${rows.pads[r]} pad positions`).join(', ')})`
      : paddedRows.length && over.every((r) => !paddedRows.includes(r)) ? ' (only unpadded rows)' : '';
    return `${list(over)} of ${B} diverge${over.length === 1 ? 's' : ''}${which}`;
  }
  const padOnly = paddedRows.filter((r) => bad(rows.padded[r]) && !bad(rows.real[r]));
  if (padOnly.length && !over.length) return `only the padded positions of ${list(padOnly)} differ (rel L2 up to ${Math.max(...padOnly.map((r) => rows.padded[r]!)).toExponential(1)}; attention_mask 0, not judged)`;
  return '';
}
