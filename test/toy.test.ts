// The toy model (golden/models/phi4-toy-induction, made by `npm run train-toy`) solves its task
// on sequences it never saw, through the normal forward pass, before and after the LongRoPE switch.
//
// Held-out sequences: the random stream "held-out" of the training seed (training draws from
// "train"), and any sequence that the training run also drew is dropped (src/teach/toy/evaluate.ts);
// the test checks both again here.
//
// Measured on the committed checkpoint (wasm and cpu alike, exact sums): 300 held-out sequences,
// 3600 predictions, all right: 1900 of 1900 with the short factors (13..31 tokens) and 1700 of
// 1700 with the long ones (33..41 tokens). Chance: 1/26 = 0.038 for a uniform guess, 0.253 for the
// best guess without induction (uniform over the first copy's letters not yet repeated). With
// layer 0's attention output zeroed 0.059, with layer 1's 0.038. The threshold allows 1 miss in
// 50, far above either guess; the ablations must fall below the no-induction guess.

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Phi3Model } from '../src/model/model.js';
import { HELD_OUT_PER_LENGTH, accuracy, heldOutSet, modelLogits, setGuessAccuracy } from '../src/teach/toy/evaluate.js';
import { N_MAX, N_MIN, trainingSequences } from '../src/teach/toy/task.js';
import { DEFAULT_TRAIN, TOY_DIR } from '../src/teach/toy/train.js';
import { useBackend } from './helpers.js';

const SOLVED = 0.98;

describe('toy induction model (golden/models/phi4-toy-induction)', () => {
  let model: Phi3Model;
  const training = JSON.parse(readFileSync(join(TOY_DIR, 'training.json'), 'utf8'));
  const run = { seed: training.seed, steps: training.steps, batch: training.batch };
  const seqs = heldOutSet(run);
  const rate = (a: { correct: number; total: number }) => a.correct / a.total;

  before(async () => {
    await useBackend('wasm');
    model = Phi3Model.load(TOY_DIR);
  });
  after(() => model.dispose());

  it('is the checkpoint that `npm run train-toy` makes (its defaults are the recorded run)', () => {
    expect({ seed: training.seed, steps: training.steps, batch: training.batch, lr: training.lr, warmup: training.warmup, clip: training.clip })
      .to.deep.equal(DEFAULT_TRAIN);
  });

  it('its held-out sequences are new: none of them is among the training run\'s sequences', () => {
    expect(seqs.length).to.equal((N_MAX - N_MIN + 1) * HELD_OUT_PER_LENGTH);
    const seen = new Set<string>();
    for (const s of trainingSequences(run)) seen.add(s.ids.join(','));
    expect(seen.size).to.be.greaterThan(run.steps * run.batch * 0.99);
    expect(seqs.filter((s) => seen.has(s.ids.join(','))).length).to.equal(0);
  });

  it(`predicts the second copy on held-out sequences within and past the original context (>= ${SOLVED})`, () => {
    const orig = model.config.rope.originalMaxPositions;
    const acc = accuracy(modelLogits(model), seqs, model.config.vocabSize);
    const short = acc.byLength.filter(([T]) => T <= orig);
    const long = acc.byLength.filter(([T]) => T > orig);
    expect(short.length).to.be.greaterThan(0);
    expect(long.length).to.be.greaterThan(0);
    const sum = (rows: [number, number, number][]) => ({ correct: rows.reduce((a, r) => a + r[1], 0), total: rows.reduce((a, r) => a + r[2], 0) });
    expect(rate(sum(short)), 'short factors').to.be.at.least(SOLVED);
    expect(rate(sum(long)), 'long factors').to.be.at.least(SOLVED);
    expect(rate(acc)).to.be.at.least(SOLVED);
    expect(setGuessAccuracy(seqs)).to.be.below(0.4);
  });

  for (const layer of [0, 1]) {
    it(`falls below the no-induction guess when layer ${layer}'s attention output is zeroed`, () => {
      const hooks = { [`layers.${layer}.attn_out`]: (t: tf.Tensor) => tf.zerosLike(t) };
      const acc = accuracy(modelLogits(model, { hooks }), seqs, model.config.vocabSize);
      expect(rate(acc)).to.be.below(setGuessAccuracy(seqs));
    });
  }
});
