// Every refusal of bad input in one place. A refusal is one line naming the file, tensor or
// argument; the command line prints its message alone and exits with its `exitCode` (2: the
// caller's input is at fault). Anything that is not a Refusal is a bug: the CLI exits 1.
//
// The checkpoint readers in weights/ sit below src/ (they depend on node's fs alone), so their
// WeightsError is defined there and re-exported here; `exitCodeOf` maps it like a Refusal. The
// command line's own UsageError (src/cli/args.ts) derives from Refusal: library code never
// imports the command line, so it throws the classes below instead.

import { WeightsError } from '../weights/index.js';

export { WeightsError };

/** The base of every refusal: bad input, reported in one line, exit code 2. */
export class Refusal extends Error {
  readonly exitCode: number = 2;
}

/** A config.json (or a GGUF's metadata) this implementation cannot honour. */
export class ConfigError extends Refusal {
  override name = 'ConfigError';
}

/** Bad input to the model or the tools around it: token ids, files, options. */
export class InputError extends Refusal {
  override name = 'InputError';
}

/** A backend that cannot be loaded or is unknown. */
export class BackendError extends Refusal {
  override name = 'BackendError';
}

/** A hook (capture or override of a tap) that returned something the tap cannot take. */
export class HookError extends Refusal {
  override name = 'HookError';
}

/** Input the float64 reference forward cannot take. */
export class ReferenceInputError extends Refusal {
  override name = 'ReferenceInputError';
}

/** The exit code for an error that reached the command line: its own for a refusal, 1 for a bug. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof Refusal) return err.exitCode;
  if (err instanceof WeightsError) return 2;
  return 1;
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
