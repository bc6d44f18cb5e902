// Number and column formatting shared by the compare, generation, blame and rope-policy reports:
// one copy, so every report writes an error the same way (2 significant digits, "0" for zero).

/** An error for a report: 1.2e-3, "0", or NaN / Infinity as such. */
export const fmt = (x: number) => (x === 0 ? '0' : Number.isFinite(x) ? x.toExponential(1) : String(x));

/** Indices as ranges: [1, 2, 3, 7] -> "1-3, 7". */
export function ranges(ix: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ix.length; i++) {
    let j = i;
    while (j + 1 < ix.length && ix[j + 1] === ix[j] + 1) j++;
    out.push(j > i ? `${ix[i]}-${ix[j]}` : String(ix[i]));
    i = j;
  }
  return out.join(', ');
}

/** `s` padded on the right (left-aligned column) / on the left (right-aligned column) to `n` characters. */
export const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
export const lpad = (s: string, n: number) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
