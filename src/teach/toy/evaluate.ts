// Accuracy of a model on the induction task (./task.ts): the share of scored positions (x2 .. xn
// of the second copy) whose arg-max next token is the right letter.
//
// Held-out sequences come from their own random stream (a name other than training's "train"),
// and any that training also saw is dropped (heldOutSequences' `exclude`), so they are new to
// the model by construction, not just by the odds of a collision.

import * as tf from '@tensorflow/tfjs-core';
import type { ForwardOptions, Phi3Model } from '../../model/model.js';
import { Rng } from '../../checkpoint/rng.js';
import { argmax } from '../../generate/sampling.js';
import { N_MAX, N_MIN, type ToySequence, makeSequence, scoredPositions, trainingSequences } from './task.js';

/** The held-out set: stream "held-out", this many sequences of each length n. */
export const HELD_OUT_STREAM = 'held-out';
export const HELD_OUT_PER_LENGTH = 20;

/** `perLength` sequences of each length n = N_MIN .. N_MAX from stream `name`, none of them in `exclude`. */
export function heldOutSequences(seed: number, name: string, perLength: number, exclude: Set<string> = new Set()): ToySequence[] {
  const rng = new Rng(seed, name);
  const out: ToySequence[] = [];
  for (let n = N_MIN; n <= N_MAX; n++) {
    for (let k = 0; k < perLength;) {
      const s = makeSequence(rng, n);
      if (exclude.has(s.ids.join(','))) continue;
      out.push(s);
      k++;
    }
  }
  return out;
}

/** The held-out set of a training run: new sequences, none of them among the run's training sequences. */
export function heldOutSet(run: { seed: number; steps: number; batch: number }, perLength = HELD_OUT_PER_LENGTH): ToySequence[] {
  const seen = new Set<string>();
  for (const s of trainingSequences(run)) seen.add(s.ids.join(','));
  return heldOutSequences(run.seed, HELD_OUT_STREAM, perLength, seen);
}

/** Logits [B * T * V] (row-major) of B same-length sequences of T tokens each. */
export type LogitsFn = (ids: Int32Array, batch: number, seq: number) => Float32Array;

export interface Accuracy {
  correct: number;
  total: number;
  /** Per sequence length T = 2n + 1: [T, correct, total]. */
  byLength: [number, number, number][];
}

/** Arg-max accuracy on the scored positions, one batch per length. */
export function accuracy(logitsOf: LogitsFn, seqs: ToySequence[], vocab: number): Accuracy {
  const byT = new Map<number, ToySequence[]>();
  for (const s of seqs) byT.set(s.ids.length, [...(byT.get(s.ids.length) ?? []), s]);
  const result: Accuracy = { correct: 0, total: 0, byLength: [] };
  for (const [T, group] of [...byT].sort(([a], [b]) => a - b)) {
    const ids = new Int32Array(group.length * T);
    group.forEach((s, b) => ids.set(s.ids, b * T));
    const logits = logitsOf(ids, group.length, T);
    let correct = 0;
    let total = 0;
    group.forEach((s, b) => {
      for (const q of scoredPositions(s)) {
        if (argmax(logits.subarray((b * T + q) * vocab, (b * T + q + 1) * vocab)) === s.ids[q + 1]) correct++;
        total++;
      }
    });
    result.byLength.push([T, correct, total]);
    result.correct += correct;
    result.total += total;
  }
  return result;
}

/** The normal forward pass of a loaded model (src/model/model.ts) as a LogitsFn. */
export function modelLogits(model: Phi3Model, opts: ForwardOptions = {}): LogitsFn {
  return (inputIds, batch, seq) => {
    const { logits, cache } = model.forward({ inputIds, batch, seq }, opts);
    const data = logits.dataSync() as Float32Array;
    tf.dispose([logits, ...cache.flatMap((c) => [c.k, c.v])]);
    return data;
  };
}

/**
 * The best a model can do without induction: it knows the first copy's letters and which of them
 * the second copy has used, and guesses uniformly among the rest. Predicting x_j (j = 2 .. n)
 * leaves n - j + 1 candidates, so its expected accuracy is the mean of 1 / (n - j + 1).
 */
export function setGuessAccuracy(seqs: ToySequence[]): number {
  let sum = 0;
  let total = 0;
  for (const s of seqs) {
    for (let j = 2; j <= s.n; j++) {
      sum += 1 / (s.n - j + 1);
      total++;
    }
  }
  return sum / total;
}
