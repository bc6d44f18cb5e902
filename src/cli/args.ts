// A small command-line parser: positionals, `--flag value`, `--flag=value`, boolean `--flag`.

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

/** `valued` lists the flags that take a value; any other `--flag` is boolean; unknown ones are refused. */
export function parseArgs(argv: string[], valued: string[], booleans: string[] = []): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (valued.includes(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      flags.set(name, v);
    } else if (booleans.includes(name) && eq < 0) {
      flags.set(name, true);
    } else {
      throw new UsageError(`unknown option --${name}${didYouMean(name, [...valued, ...booleans], '--')}`);
    }
  }
  return { positional, flags };
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

/** `text` as a whole number >= `min` (digits only), else a UsageError naming `flag`. */
export function toInt(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag}: expected an integer >= ${min}, got "${text}"`);
  return n;
}

/** The integer value of `--name` (undefined when absent), >= `min`. */
export function intFlag(p: Parsed, name: string, min: number): number | undefined {
  const v = str(p, name);
  return v === undefined ? undefined : toInt(v, `--${name}`, min);
}

/** Edit distance (insertions, deletions, substitutions, adjacent swaps) between two short strings. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * ` (did you mean --X?)` for the closest of `known` to `given`: within a third of its length in
 * edits (at least 1, at most 3), or one that starts with it; '' when none is close.
 */
export function didYouMean(given: string, known: Iterable<string>, prefix = ''): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = k.startsWith(given) && given.length >= 2 ? 0.5 : editDistance(given, k);
    if (dist < bestD) [best, bestD] = [k, dist];
  }
  const limit = Math.min(3, Math.max(1, Math.floor(given.length / 3)));
  return best !== undefined && bestD <= limit ? ` (did you mean ${prefix}${best}?)` : '';
}
