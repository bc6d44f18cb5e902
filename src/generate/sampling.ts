// Choosing the next token from one row of logits, on the host, in float64.
//
//   greedy (temperature 0):  argmax(logits), the lowest index on ties (as torch.argmax)
//   sampled:                 z = logits / T
//                            top-k:  keep the k largest z (ties with the k-th kept), others -inf
//                            top-p:  keep the smallest set of most likely tokens whose
//                                    probability reaches p (at least one), others -inf
//                            p = softmax(z);  token = first i with cumsum(p)[i] > u * sum(p)
//
// The order temperature -> top-k -> top-p is transformers' (its logits processors run in that
// order). u comes from SplitMix64, a small published generator that gives the same stream on every
// machine, so a seeded run repeats exactly.

import { InputError } from '../errors.js';

/**
 * SplitMix64 (Steele, Lea and Flood 2014; Vigna's splitmix64.c): 64-bit state advanced by the
 * golden-ratio increment, output mixed by two xor-shift-multiply rounds.
 */
export class SplitMix64 {
  private state: bigint;

  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed));
  }

  /** The next 64-bit output. */
  nextU64(): bigint {
    this.state = BigInt.asUintN(64, this.state + 0x9e3779b97f4a7c15n);
    let z = this.state;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    return z ^ (z >> 31n);
  }

  /** A double uniform in [0, 1): the top 53 bits of the next output. */
  nextFloat(): number {
    return Number(this.nextU64() >> 11n) / 2 ** 53;
  }
}

export interface SamplingOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 or absent = off. */
  topK?: number;
  /** Nucleus sampling: keep the most likely tokens up to probability p; 1 or absent = off. */
  topP?: number;
}

/** Checks ranges; names the CLI flag in the message. */
export function checkSampling(s: SamplingOptions): void {
  const { temperature = 0, topK = 0, topP = 1 } = s;
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new InputError(`--temperature: must be a number >= 0, got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new InputError(`--top-k: must be an integer >= 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new InputError(`--top-p: must be in (0, 1], got ${topP}`);
}

/** Index of the largest value, the first one on ties. */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** The arg-max of a row of logits and its softmax probability, 1 / sum_v exp(row[v] - row[best]). */
export function argmaxProb(row: ArrayLike<number>): { id: number; p: number } {
  const id = argmax(row);
  let z = 0;
  for (let v = 0; v < row.length; v++) z += Math.exp(row[v] - row[id]);
  return { id, p: 1 / z };
}

/**
 * The filtered, temperature-scaled logits (float64; -Infinity where a token is excluded).
 * Exposed for tests; `chooseToken` samples from softmax of this.
 */
export function filteredLogits(row: ArrayLike<number>, s: SamplingOptions): Float64Array {
  const T = s.temperature ?? 0;
  const V = row.length;
  const z = new Float64Array(V);
  for (let i = 0; i < V; i++) z[i] = row[i] / T;

  const k = s.topK ?? 0;
  if (k > 0 && k < V) {
    const kth = Float64Array.from(z).sort()[V - k]; // k-th largest
    for (let i = 0; i < V; i++) if (z[i] < kth) z[i] = -Infinity;
  }

  const p = s.topP ?? 1;
  if (p < 1) {
    const order = Array.from(z.keys()).filter((i) => z[i] > -Infinity);
    order.sort((a, b) => z[b] - z[a] || a - b); // most likely first, lower index first on ties
    const max = z[order[0]];
    let total = 0;
    for (const i of order) total += Math.exp(z[i] - max);
    let cum = 0;
    let kept = 0;
    for (const i of order) {
      if (kept > 0 && cum >= p * total) z[i] = -Infinity;
      else kept++;
      cum += Math.exp(z[i] - max) || 0;
    }
  }
  return z;
}

/** The next token: greedy at temperature 0, else a draw from the filtered distribution. */
export function chooseToken(row: ArrayLike<number>, s: SamplingOptions, rng: SplitMix64 | null): number {
  if (!(s.temperature ?? 0)) return argmax(row);
  if (!rng) throw new InputError('sampling with a temperature needs a random generator (--seed)');
  const z = filteredLogits(row, s);
  let max = -Infinity;
  for (const v of z) if (v > max) max = v;
  const w = new Float64Array(z.length);
  let total = 0;
  for (let i = 0; i < z.length; i++) total += w[i] = Math.exp(z[i] - max);
  const u = rng.nextFloat() * total;
  let cum = 0;
  let last = 0;
  for (let i = 0; i < w.length; i++) {
    if (w[i] === 0) continue;
    last = i;
    cum += w[i];
    if (cum > u) return i;
  }
  return last; // u * total rounded up to the total: the last token with weight
}
