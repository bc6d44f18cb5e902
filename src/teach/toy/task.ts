// The toy model's task: induction on a repeated random sequence.
//
//   <s> x1 x2 ... xn x1 x2 ... xn        x: n distinct letters, n from N_MIN to N_MAX
//
// Once the second copy has begun, the next token is predictable: it is the token that followed
// the current token's earlier occurrence (an induction head: "find where I was before, copy what
// came next"). The first repeated x1 is not predictable (nothing says where the copy starts), so
// the loss and the accuracy count the targets x2 .. xn of the second copy: n - 1 per sequence.
//
// n varies, so no fixed relative offset solves the task; sequences of up to 2 N_MAX + 1 tokens
// pass the config's original context (32), so both of LongRoPE's factor sets are trained.

import { Rng } from '../../checkpoint/rng.js';

export const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';
export const BOS = 0; // "<s>"; letter i has id i + 1
export const N_MIN = 6;
export const N_MAX = 20;

export interface ToySequence {
  ids: number[];
  n: number;
}

/** One sequence of n distinct letters, twice, after <s>. */
export function makeSequence(rng: Rng, n: number): ToySequence {
  const letters = Array.from(ALPHABET, (_, i) => i + 1);
  for (let i = 0; i < n; i++) { // partial Fisher-Yates: the first n are a random draw without repeats
    const j = i + Math.floor(rng.uniform() * (letters.length - i));
    [letters[i], letters[j]] = [letters[j], letters[i]];
  }
  const x = letters.slice(0, n);
  return { ids: [BOS, ...x, ...x], n };
}

/** Positions p whose next token ids[p + 1] the task scores: the second copy from x2 on. */
export function scoredPositions(s: ToySequence): number[] {
  const out: number[] = [];
  for (let p = s.n + 1; p < 2 * s.n; p++) out.push(p); // ids[p] = x_(p-n), target ids[p+1] = x_(p-n+1)
  return out;
}

export function randomLength(rng: Rng): number {
  return N_MIN + Math.floor(rng.uniform() * (N_MAX - N_MIN + 1));
}

/** Ids as the tokenizer's text: letters separated by spaces, "<s>" first. */
export function sequenceText(ids: number[]): string {
  return ids.map((id) => (id === BOS ? '<s>' : ALPHABET[id - 1])).join(' ');
}

/** A training batch: `size` sequences of one random length n, so that no padding is needed. */
export function trainingBatch(rng: Rng, size: number): ToySequence[] {
  const n = randomLength(rng);
  return Array.from({ length: size }, () => makeSequence(rng, n));
}

/** The sequences a training run sees, in order: stream "train" of `seed`, `steps` batches of `batch`. */
export function* trainingSequences(run: { seed: number; steps: number; batch: number }): Generator<ToySequence> {
  const rng = new Rng(run.seed, 'train');
  for (let s = 0; s < run.steps; s++) yield* trainingBatch(rng, run.batch);
}
