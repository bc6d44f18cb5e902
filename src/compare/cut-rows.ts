// A selected dump holds rows [start, end) of the token axis only (`phi4 dump --positions`,
// `phi4-tapdump --rows`: their `selection` metadata records the rows); the other dump may hold
// all T of them. Compare what both hold: each of the whole dump's tensors is cut to the selected
// rows on the one axis where the two shapes differ (end - start against T), and compared there.
// Nothing is cut by guess: the same ids (input_ids [.., T] on both sides) and a single differing
// axis of exactly those sizes, else the shapes stay as they are and compare says they differ.

import type { Numeric } from '../oracle/metrics.js';
import type { Entries, Entry } from './entries.js';

/** Rows [start, end) of a T-token sequence that a selected dump kept. */
export interface RowSelection {
  start: number;
  end: number;
  T: number;
}

/** Rows [start, end) of the token axis of `e`, along `axis`. */
function cutEntry(e: Entry, axis: number, rows: RowSelection): Entry {
  const shape = e.shape.map((n, i) => (i === axis ? rows.end - rows.start : n));
  const outer = e.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = e.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const kept = (rows.end - rows.start) * inner;
  return {
    ...e,
    shape,
    read: (): Numeric => {
      const all = e.read();
      const out = new (all.constructor as new (n: number) => Numeric)(outer * kept);
      // block o of the whole tensor is [T, inner]; its rows [start, end) are one contiguous run
      for (let o = 0; o < outer; o++) out.set(all.subarray((o * rows.T + rows.start) * inner, (o * rows.T + rows.end) * inner), o * kept);
      return out;
    },
  };
}

/**
 * `whole` with each tensor that `selected` holds cut to `rows`; `cut` lists the names that were.
 * A tensor whose shapes differ otherwise (or nowhere) is left as it is.
 */
export function cutToRows(whole: Entries, selected: Entries, rows: RowSelection): { entries: Entries; cut: string[] } {
  const out: Entries = new Map(whole);
  const cut: string[] = [];
  const n = rows.end - rows.start;
  for (const [name, s] of selected) {
    const w = whole.get(name);
    if (!w || s.int || w.int || s.shape.length !== w.shape.length) continue;
    const differ = s.shape.flatMap((d, i) => (d !== w.shape[i] ? [i] : []));
    if (differ.length !== 1 || s.shape[differ[0]] !== n || w.shape[differ[0]] !== rows.T) continue;
    out.set(name, cutEntry(w, differ[0], rows));
    cut.push(name);
  }
  return { entries: out, cut };
}
