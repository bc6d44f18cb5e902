// The forward pass already takes and returns per-layer keys and values, so incremental decoding
// (the generation issue) needs no rewrite: prefill + one token at a time equals one full pass,
// bit for bit (measured: 0 logits differ), so it is asserted exactly.

import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import type { KvCache } from '../layers/attention.js';
import { dumpPath, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { bitDiff, useBackend } from './helpers.js';

/** Logits [T, V] of a full pass and of a prefill of `prefill` tokens then single-token steps. */
function fullAndIncremental(m: Phi3Model, ids: Int32Array, prefill: number): { full: Float32Array; inc: Float32Array } {
  const T = ids.length;
  const V = m.config.vocabSize;
  const r = m.forward({ inputIds: ids, batch: 1, seq: T });
  const full = r.logits.dataSync() as Float32Array;
  tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);

  const inc = new Float32Array(T * V);
  let past: KvCache[] | undefined;
  for (let start = 0; start < T; ) {
    const n = start === 0 ? prefill : 1;
    const step = m.forward({ inputIds: ids.slice(start, start + n), batch: 1, seq: n }, { past });
    inc.set(step.logits.dataSync(), start * V);
    tf.dispose([step.logits, ...(past ?? []).flatMap((c) => [c.k, c.v])]);
    past = step.cache;
    start += n;
  }
  expect(past![0].k.shape).to.deep.equal([1, m.config.numKvHeads, T, m.config.headDim]);
  tf.dispose(past!.flatMap((c) => [c.k, c.v]));
  return { full, inc };
}

describe('KV cache: incremental decoding equals a full pass', () => {
  before(() => useBackend('wasm'));

  it('phi4-mini-tiny (GQA, partial rotary), within the original context', () => {
    const m = Phi3Model.load(modelDir('phi4-mini-tiny'));
    const before = tf.memory().numTensors;
    const { full, inc } = fullAndIncremental(m, readInputs(dumpPath('phi4-mini-tiny.short')).inputIds, 6);
    // measured: bit-identical (0 of 11,264 logits differ); asserted exactly, so one ulp fails
    expect(bitDiff(inc, full)).to.deep.equal({ length: full.length, differing: 0, maxAbs: 0 });
    expect(tf.memory().numTensors).to.equal(before);
    m.dispose();
  });

  it('phi3-mini-tiny: the sliding window (8) holds for a cached query at position 19', () => {
    const m = Phi3Model.load(modelDir('phi3-mini-tiny'));
    const { full, inc } = fullAndIncremental(m, readInputs(dumpPath('phi3-mini-tiny.long')).inputIds, 4);
    expect(bitDiff(inc, full)).to.deep.equal({ length: full.length, differing: 0, maxAbs: 0 }); // measured: bit-identical
    const noWindow = new Phi3Model({ ...m.config, slidingWindow: null }, m.weights);
    const { full: wide } = fullAndIncremental(noWindow, readInputs(dumpPath('phi3-mini-tiny.long')).inputIds, 4);
    expect(relL2(inc, wide)).to.be.greaterThan(1e-3); // the window really changed the answer
    m.dispose();
  });
});
