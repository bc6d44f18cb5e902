// The seeded generator against its published reference outputs, and the sampling rules.

import { expect } from 'chai';
import { modelDir } from '../src/oracle/golden.js';
import { generate } from '../src/generate/generate.js';
import { Phi3Model } from '../src/model/model.js';
import { SplitMix64, argmax, checkSampling, chooseToken, filteredLogits } from '../src/generate/sampling.js';
import { useBackend } from './helpers.js';

describe('sampling', () => {
  it('SplitMix64 gives the reference outputs (Rosetta Code "Pseudo-random numbers/Splitmix64", seed 1234567; splitmix64.c, seed 0)', () => {
    const r = new SplitMix64(1234567);
    expect([r.nextU64(), r.nextU64(), r.nextU64(), r.nextU64(), r.nextU64()]).to.deep.equal([
      6457827717110365317n, 3203168211198807973n, 9817491932198370423n, 4593380528125082431n, 16408922859458223821n,
    ]);
    expect(new SplitMix64(0).nextU64()).to.equal(0xe220a8397b1dcdafn);
    const u = new SplitMix64(1234567).nextFloat();
    expect(u).to.equal(Number(6457827717110365317n >> 11n) / 2 ** 53);
  });

  it('greedy is argmax, first index on ties', () => {
    expect(argmax([1, 3, 3, 2])).to.equal(1);
    expect(chooseToken(Float32Array.from([0.5, -1, 7, 7]), {}, null)).to.equal(2);
    expect(chooseToken(Float32Array.from([0.5, -1, 7, 7]), { temperature: 0, topK: 1, topP: 0.1 }, null)).to.equal(2);
  });

  it('top-k keeps the k largest (ties with the k-th kept); top-p the smallest set reaching p', () => {
    const z = filteredLogits([1, 4, 2, 4, 3], { temperature: 1, topK: 2 });
    expect(Array.from(z)).to.deep.equal([-Infinity, 4, -Infinity, 4, -Infinity]);
    expect(Array.from(filteredLogits([1, 4, 2, 4, 3], { temperature: 1, topK: 3 }))).to.deep.equal([-Infinity, 4, -Infinity, 4, 3]);
    // probabilities 0.5, 0.25, 0.125, 0.125 (logits ln of them): p = 0.7 keeps the first two
    const l = [Math.log(0.5), Math.log(0.25), Math.log(0.125), Math.log(0.125)];
    expect(Array.from(filteredLogits(l, { temperature: 1, topP: 0.7 })).map(Number.isFinite)).to.deep.equal([true, true, false, false]);
    expect(Array.from(filteredLogits(l, { temperature: 1, topP: 0.5 })).map(Number.isFinite)).to.deep.equal([true, false, false, false]);
    expect(Array.from(filteredLogits(l, { temperature: 1, topP: 0.01 })).map(Number.isFinite)).to.deep.equal([true, false, false, false]);
    expect(Array.from(filteredLogits([2, 4], { temperature: 2 }))).to.deep.equal([1, 2]);
  });

  it('a draw follows the distribution: 20000 draws of (0.5, 0.25, 0.125, 0.125)', () => {
    const l = Float32Array.from([0.5, 0.25, 0.125, 0.125].map(Math.log));
    const rng = new SplitMix64(42);
    const n = [0, 0, 0, 0];
    for (let i = 0; i < 20000; i++) n[chooseToken(l, { temperature: 1 }, rng)]++;
    // binomial standard deviation at most sqrt(20000 * 0.25) = 71; allow 5 of them
    [10000, 5000, 2500, 2500].forEach((e, i) => expect(Math.abs(n[i] - e), `token ${i}: ${n[i]}`).to.be.below(355));
  });

  it('refuses settings out of range, naming the flag', () => {
    expect(() => checkSampling({ temperature: -1 })).to.throw(/--temperature/);
    expect(() => checkSampling({ topK: 1.5 })).to.throw(/--top-k/);
    expect(() => checkSampling({ topP: 0 })).to.throw(/--top-p/);
    expect(() => checkSampling({ topP: 1.2 })).to.throw(/--top-p/);
  });

  describe('on the tiny model', () => {
    let m: Phi3Model;
    before(async () => {
      await useBackend('wasm');
      m = Phi3Model.load(modelDir('phi4-mini-tiny'));
    });
    after(() => m.dispose());
    const prompt = [5, 17, 42, 99, 3];
    const opts = { maxNewTokens: 12, eosIds: [], sampling: { temperature: 10, topK: 50, topP: 0.95 } };

    it('a seeded run repeats exactly; another seed gives another run', () => {
      const a = generate(m, prompt, { ...opts, seed: 11 });
      const b = generate(m, prompt, { ...opts, seed: 11 });
      const c = generate(m, prompt, { ...opts, seed: 12 });
      expect(Array.from(a.ids)).to.deep.equal(Array.from(b.ids));
      expect(Array.from(a.ids)).not.to.deep.equal(Array.from(c.ids));
    });

    it('temperature 0 equals greedy (whatever the seed, top-k and top-p)', () => {
      const greedy = generate(m, prompt, { maxNewTokens: 12, eosIds: [] });
      const t0 = generate(m, prompt, { ...opts, sampling: { temperature: 0, topK: 3, topP: 0.5 }, seed: 99 });
      expect(Array.from(t0.ids)).to.deep.equal(Array.from(greedy.ids));
      greedy.stepLogits.forEach((l, i) => expect(greedy.ids[i]).to.equal(argmax(l)));
    });
  });
});
