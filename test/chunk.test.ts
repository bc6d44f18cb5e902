// Attention over a long prompt runs a chunk of queries at a time, so that the scores
// [B, nh, T, S] never need to exist whole. A chunked pass must give the same numbers as one
// chunk, bit for bit (measured: 0 logits differ; asserted exactly): causal mask, sliding window,
// padding and a KV cache included.

import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { attentionBias, keysNeeded } from '../layers/mask.js';
import { dumpPath, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { type ForwardInputs, type ForwardOptions, Phi3Model, SCORE_BUDGET_BYTES } from '../src/model/model.js';
import { arr, bitDiff, useBackend } from './helpers.js';

function logits(m: Phi3Model, inp: ForwardInputs, opts: ForwardOptions): Float32Array {
  const r = m.forward(inp, opts);
  const out = r.logits.dataSync() as Float32Array;
  tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);
  return out;
}

describe('attention in query chunks', () => {
  before(() => useBackend('wasm'));

  it('the mask of query rows [from, to) is those rows of the whole mask', () => {
    const spec = { batch: 2, queryLen: 5, keyLen: 7, slidingWindow: 3, attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1]) };
    const whole = attentionBias(spec);
    const part = attentionBias(spec, 1, 4);
    expect(part.shape).to.deep.equal([2, 1, 3, 7]);
    expect(arr(part)).to.deep.equal(arr(tf.slice(whole, [0, 0, 1, 0], [2, 1, 3, 7])));
    tf.dispose([whole, part]);
  });

  it('a block of queries reads only the keys its rows may see, all of them where a row sees none', () => {
    const causal = { batch: 1, queryLen: 100, keyLen: 100, slidingWindow: null, attentionMask: null };
    expect(keysNeeded(causal, 0, 10)).to.equal(16); // keys 0..9, rounded up to the lanes' 16
    expect(keysNeeded(causal, 40, 50)).to.equal(64);
    expect(keysNeeded(causal, 90, 100)).to.equal(100);
    expect(keysNeeded({ ...causal, queryLen: 10 }, 0, 10)).to.equal(100); // after a 90-token past: every key
    const padded = new Int32Array(200).fill(1);
    padded.fill(0, 100, 140); // row 1: 40 padding tokens on the left
    const batch = { batch: 2, queryLen: 100, keyLen: 100, slidingWindow: null, attentionMask: padded };
    expect(keysNeeded(batch, 40, 50)).to.equal(64); // every row of the block sees a real token
    expect(keysNeeded(batch, 30, 50)).to.equal(100); // rows 30..39 of row 1 see only padding
  });

  for (const [model, kase] of [['phi4-mini-tiny', 'phi4-mini-tiny.long'], ['phi3-mini-tiny', 'phi3-mini-tiny.long'], ['phi4-mini-tiny', 'phi4-mini-tiny.batch']] as const) {
    it(`${kase}: chunks of 5 and 1 queries give one chunk's logits`, () => {
      const m = Phi3Model.load(modelDir(model));
      const inp = readInputs(dumpPath(kase));
      const before = tf.memory().numTensors;
      const whole = logits(m, inp, { attentionChunk: Infinity });
      for (const c of [5, 1]) expect(bitDiff(logits(m, inp, { attentionChunk: c }), whole), `chunk ${c}`).to.deep.equal({ length: whole.length, differing: 0, maxAbs: 0 });
      expect(tf.memory().numTensors).to.equal(before);
      m.dispose();
    });
  }

  it('a chunked prefill after a cached past equals one chunk', () => {
    const m = Phi3Model.load(modelDir('phi3-mini-tiny'));
    const ids = readInputs(dumpPath('phi3-mini-tiny.long')).inputIds; // 20 tokens, window 8
    const run = (chunk: number) => {
      const first = m.forward({ inputIds: ids.slice(0, 6), batch: 1, seq: 6 });
      const rest = m.forward({ inputIds: ids.slice(6), batch: 1, seq: ids.length - 6 }, { past: first.cache, attentionChunk: chunk });
      const out = rest.logits.dataSync() as Float32Array;
      tf.dispose([first.logits, rest.logits, ...first.cache.flatMap((c) => [c.k, c.v]), ...rest.cache.flatMap((c) => [c.k, c.v])]);
      return out;
    };
    const [three, one] = [run(3), run(Infinity)];
    expect(bitDiff(three, one)).to.deep.equal({ length: one.length, differing: 0, maxAbs: 0 });
    m.dispose();
  });

  it('chunks only past the score budget, and never when attn_probs is wanted', () => {
    const m = Phi3Model.load(modelDir('phi4-mini-tiny'));
    const inp = readInputs(dumpPath('phi4-mini-tiny.short'));
    const seen = (opts: ForwardOptions) => {
      const names: string[] = [];
      const r = m.forward(inp, { ...opts, tap: (n, t) => (names.push(n), t) });
      tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);
      return names.filter((n) => n.endsWith('attn_probs')).length;
    };
    expect(seen({})).to.equal(m.config.numLayers); // 11 tokens: far below the budget, one chunk
    expect(seen({ attentionChunk: 4 })).to.equal(0); // a chunked layer emits no attn_probs
    expect(m.scoreBudgetBytes).to.equal(SCORE_BUDGET_BYTES);
    const whole = logits(m, inp, {});
    m.scoreBudgetBytes = 4 * 6 * 11 * 4; // 4 query rows of 6 heads x 11 keys x 4 bytes
    expect(seen({})).to.equal(0); // past the budget: chunked by default
    expect(bitDiff(logits(m, inp, {}), whole)).to.deep.equal({ length: whole.length, differing: 0, maxAbs: 0 });
    let hooked = 0;
    const r = m.forward(inp, { attentionChunk: undefined, hooks: { 'layers.2.attn_probs': () => void hooked++ } });
    tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);
    expect(hooked).to.equal(1);
    const c = m.runWithCache(inp, { names: ['layers.1.attn_probs'], attentionChunk: undefined });
    expect(c.taps.get('layers.1.attn_probs')!.shape).to.deep.equal([1, 6, 11, 11]);
    tf.dispose([c.logits, ...c.taps.values()]);
    m.dispose();
  });
});
