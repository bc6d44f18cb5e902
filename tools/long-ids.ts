// Deterministic token ids for the long-context runs (docs/long-context.md):
//   node dist/tools/long-ids.js N [SEED] > ids.txt      -> N comma-separated ids in [1000, 200000)
// A 32-bit LCG (Numerical Recipes' constants), so any runtime can regenerate the same prompt.

export function longIds(n: number, seed = 19): number[] {
  let s = seed >>> 0;
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    ids.push(1000 + (s % 199000));
  }
  return ids;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2]);
  const seed = process.argv[3] === undefined ? 19 : Number(process.argv[3]);
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write('long-ids: usage: long-ids N [SEED]\n');
    process.exit(2);
  }
  process.stdout.write(`${longIds(n, seed).join(',')}\n`);
}
