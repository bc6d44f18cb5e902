// A small command-line parser: positionals, `--flag value`, `--flag=value`, boolean `--flag`.
//
// Kept hand-written rather than node's util.parseArgs (checked on node 20): parseArgs' refusals
// span several lines ("Option '--ids' argument is ambiguous.\nDid you forget ..."), where a
// refusal here is one line, names the flag and suggests the flag meant (didYouMean); it refuses
// `--flag -5` as ambiguous, where a value may begin with a dash here; and wrapping it to reword
// its errors would take more lines than the loop below.

import { Refusal, didYouMean, editDistance } from '../errors.js';

export { didYouMean, editDistance };

/** A command line this parser refuses (exit 2); library code throws the classes of src/errors.ts. */
export class UsageError extends Refusal {
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
