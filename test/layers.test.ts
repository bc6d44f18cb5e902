// Each block on inputs a person can check by hand, on both kernel sets.

import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { attention } from '../layers/attention.js';
import { MASKED, attentionBias } from '../layers/mask.js';
import { mlp } from '../layers/mlp.js';
import { rmsNorm } from '../layers/rmsnorm.js';
import { type RopeConfig, applyRotary, inverseFrequencies, rotaryTables, usesLongFactors } from '../layers/rotary.js';
import { loadConfig } from '../src/model/config.js';
import { GOLDEN_DIR, modelDir } from '../src/oracle/golden.js';
import { TEST_BACKENDS, arr, rand, useBackend } from './helpers.js';

const manifest = JSON.parse(readFileSync(`${GOLDEN_DIR}/manifest.json`, 'utf8'));

const plainRope = (rotaryDim: number, theta = 10000): RopeConfig => ({
  type: 'default', theta, rotaryDim, originalMaxPositions: 64, shortFactor: null, longFactor: null, attentionScaling: 1,
});

/** softmax(q k^T / sqrt(d) + causal mask) v for one head, in float64: [T, d] each. */
function naiveHead(q: number[][], k: number[][], v: number[][]): number[][] {
  const d = q[0].length;
  return q.map((qi, i) => {
    const s = k.slice(0, i + 1).map((kj) => kj.reduce((acc, x, c) => acc + x * qi[c], 0) / Math.sqrt(d));
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return Array.from({ length: d }, (_, c) => e.reduce((acc, p, j) => acc + (p / z) * v[j][c], 0));
  });
}

for (const backend of TEST_BACKENDS) {
  describe(`layers (${backend})`, () => {
    before(() => useBackend(backend));

    it('RMSNorm of a constant vector is weight * c / sqrt(c^2 + eps)', () => {
      const n = 8;
      const c = -3;
      const eps = 1e-5;
      const w = Array.from({ length: n }, (_, i) => 0.5 + i / 8);
      const y = tf.tidy(() => arr(rmsNorm(tf.fill([1, 1, n], c), tf.tensor1d(w), eps)));
      const expected = w.map((wi) => (wi * c) / Math.sqrt(c * c + eps));
      y.forEach((v, i) => expect(v).to.be.closeTo(expected[i], 1e-6));
    });

    it('rotary at position 0 is the identity (and a scaling by attentionScaling under LongRoPE)', () => {
      const x = tf.tensor4d(rand(2 * 3 * 1 * 8, 1), [2, 3, 1, 8]);
      const t = rotaryTables(plainRope(6), Int32Array.from([0, 0]), 2, 1);
      expect(arr(applyRotary(x, t.cos, t.sin))).to.deep.equal(arr(x));
      const long: RopeConfig = { ...plainRope(6), type: 'longrope', shortFactor: [1, 2, 3], longFactor: [4, 5, 6], attentionScaling: 1.25 };
      const tl = rotaryTables(long, Int32Array.from([0, 0]), 2, 1);
      const y = arr(applyRotary(x, tl.cos, tl.sin));
      arr(x).forEach((v, i) => expect(y[i]).to.be.closeTo(i % 8 < 6 ? v * 1.25 : v, 1e-6)); // the last 2 dims pass through
      tf.dispose([x, t.cos, t.sin, tl.cos, tl.sin]);
    });

    it('rotary at position p turns each pair (i, i + r/2) by p * theta^(-2i/r)', () => {
      // r = 4, theta = 100: frequencies 1 and 1/10; x = e_0 + e_1 at position 3
      const t = rotaryTables(plainRope(4, 100), Int32Array.from([3]), 1, 1);
      const y = arr(applyRotary(tf.tensor4d([1, 1, 0, 0], [1, 1, 1, 4]), t.cos, t.sin));
      const expected = [Math.cos(3), Math.cos(0.3), Math.sin(3), Math.sin(0.3)];
      y.forEach((v, i) => expect(v).to.be.closeTo(expected[i], 1e-6));
    });

    it('inverse frequencies are within one float32 ulp of the ones transformers built (exact where its pow rounds correctly)', () => {
      // transformers' float32 theta ** x goes through Sleef's vectorised powf (1-ulp accurate) in
      // blocks of 8 and through the correctly rounded scalar powf for the rest; we round
      // correctly everywhere, so one of phi4-mini-geometry's 48 entries differs by one ulp.
      let inexact = 0;
      for (const [name, m] of Object.entries<any>(manifest.models)) {
        const ours = inverseFrequencies(loadConfig(modelDir(name)).rope, false);
        m.rotary.inv_freq_default.forEach((ref: number, i: number) => {
          const ulp = Math.fround(ref * (1 + 2 ** -23)) - Math.fround(ref);
          expect(Math.abs(ours[i] - Math.fround(ref)), `${name}[${i}]`).to.be.at.most(ulp);
          if (ours[i] !== Math.fround(ref)) inexact++;
        });
      }
      expect(inexact).to.be.at.most(1);
    });

    it('LongRoPE switches to the long factors exactly past original_max_position_embeddings', () => {
      const rope = loadConfig(modelDir('phi4-mini-tiny')).rope; // original 32
      expect(usesLongFactors(rope, 31)).to.equal(false); // 32 positions 0..31 fit
      expect(usesLongFactors(rope, 32)).to.equal(true); // a 33rd position does not
      const pos = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
      const fits = rotaryTables(rope, pos(32), 1, 32);
      const past = rotaryTables(rope, pos(33), 1, 33);
      expect([fits.long, past.long]).to.deep.equal([false, true]);
      // position 1's angle for pair i is inv_freq[i]: 1 / (factor * theta^(2i/r)), scaled by sqrt(2) here
      const r = rope.rotaryDim;
      const sinAt1 = (t: { sin: tf.Tensor }) => arr(t.sin).slice(r, r + r / 2);
      const theta = (i: number) => Math.pow(rope.theta, (2 * i) / r);
      sinAt1(fits).forEach((s, i) => expect(s).to.be.closeTo(Math.sin(1 / (rope.shortFactor![i] * theta(i))) * Math.SQRT2, 1e-6));
      sinAt1(past).forEach((s, i) => expect(s).to.be.closeTo(Math.sin(1 / (rope.longFactor![i] * theta(i))) * Math.SQRT2, 1e-6));
      // one batch row past the boundary moves the whole batch (transformers takes max(position_ids))
      expect(rotaryTables(rope, Int32Array.from([0, 1, 31, 32]), 2, 2).long).to.equal(true);
      tf.dispose([fits.cos, fits.sin, past.cos, past.sin]);
    });

    it('the mask is causal, honours the sliding window and the padding', () => {
      const bias = attentionBias({ batch: 2, queryLen: 4, keyLen: 4, slidingWindow: 2, attentionMask: Int32Array.from([1, 1, 1, 1, 0, 1, 1, 1]) });
      const allowed = arr(bias).map((x) => (x === MASKED ? 0 : 1));
      expect(allowed).to.deep.equal([
        1, 0, 0, 0, /**/ 1, 1, 0, 0, /**/ 0, 1, 1, 0, /**/ 0, 0, 1, 1, // row 0: causal, window 2
        0, 0, 0, 0, /**/ 0, 1, 0, 0, /**/ 0, 1, 1, 0, /**/ 0, 0, 1, 1, // row 1: key 0 is padding
      ]);
      // with 3 cached positions, the one new query sees keys 2 and 3 under a window of 2
      expect(arr(attentionBias({ batch: 1, queryLen: 1, keyLen: 4, slidingWindow: 2, attentionMask: null })).map((x) => (x === MASKED ? 0 : 1))).to.deep.equal([0, 0, 1, 1]);
      bias.dispose();
    });

    it('GQA with one key/value head is multi-query attention: every query head reads the same k and v', () => {
      const [T, d, nh] = [3, 4, 2];
      const H = (nh + 2) * d; // identity projections: x holds q (nh heads), k, v directly
      const x = rand(T * H, 7);
      const heads = (off: number) => Array.from({ length: T }, (_, t) => Array.from(x.subarray(t * H + off, t * H + off + d)));
      const eye = (n: number, m: number) => tf.tidy(() => tf.slice(tf.eye(Math.max(n, m)), [0, 0], [n, m]) as tf.Tensor2D);
      const one = plainRope(d);
      const ones = tf.ones([1, T, d]) as tf.Tensor3D;
      const zeros = tf.zeros([1, T, d]) as tf.Tensor3D; // cos 1, sin 0: no rotation
      const mask = { batch: 1, queryLen: T, keyLen: T, slidingWindow: null, attentionMask: null };
      const w = { qkvProj: eye(H, H), oProj: eye(nh * d, nh * d) };
      const probe: Record<string, number[]> = {};
      const { out, cache } = attention(tf.tensor3d(x, [1, T, H]), w, { numHeads: nh, numKvHeads: 1, headDim: d }, { cos: ones, sin: zeros, mask },
        (name, t) => { probe[name] = arr(t); return t; });
      const got = arr(out);
      const k = heads(nh * d);
      const v = heads(nh * d + d);
      for (let h = 0; h < nh; h++) {
        const ref = naiveHead(heads(h * d), k, v);
        for (let t = 0; t < T; t++) for (let c = 0; c < d; c++) expect(got[t * nh * d + h * d + c]).to.be.closeTo(ref[t][c], 1e-5);
      }
      expect(cache.k.shape).to.deep.equal([1, 1, T, d]); // the cache keeps one head, not nh copies
      expect(probe.attn_probs).to.have.length(nh * T * T);
      expect(one.rotaryDim).to.equal(d);
      tf.dispose([out, cache.k, cache.v, ones, zeros, w.qkvProj, w.oProj]);
    });

    it('GQA: query head h reads key/value head floor(h / (nh / nkv))', () => {
      const [T, d, nh, nkv] = [2, 2, 4, 2];
      const H = (nh + 2 * nkv) * d;
      const x = rand(T * H, 9);
      const col = (t: number, off: number) => Array.from(x.subarray(t * H + off, t * H + off + d));
      const head = (off: number) => [col(0, off), col(1, off)];
      const ones = tf.ones([1, T, d]) as tf.Tensor3D;
      const zeros = tf.zeros([1, T, d]) as tf.Tensor3D;
      const mask = { batch: 1, queryLen: T, keyLen: T, slidingWindow: null, attentionMask: null };
      const w = { qkvProj: tf.eye(H) as tf.Tensor2D, oProj: tf.eye(nh * d) as tf.Tensor2D };
      const { out, cache } = attention(tf.tensor3d(x, [1, T, H]), w, { numHeads: nh, numKvHeads: nkv, headDim: d }, { cos: ones, sin: zeros, mask });
      const got = arr(out);
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / (nh / nkv));
        const ref = naiveHead(head(h * d), head(nh * d + g * d), head(nh * d + nkv * d + g * d));
        for (let t = 0; t < T; t++) for (let c = 0; c < d; c++) expect(got[t * nh * d + h * d + c]).to.be.closeTo(ref[t][c], 1e-5);
      }
      tf.dispose([out, cache.k, cache.v, ones, zeros, w.qkvProj, w.oProj]);
    });

    it('SwiGLU: the first half of gate_up is the gate, the second the up projection', () => {
      // gate_up = identity on [g1, g2, u1, u2] ; down = identity on the 2 intermediate dims
      const x = tf.tensor3d([0.5, -1, 2, 3], [1, 1, 4]);
      const w = { gateUpProj: tf.eye(4) as tf.Tensor2D, downProj: tf.eye(2) as tf.Tensor2D };
      // down_proj is [H, I] = [2, 2] here, so the output has 2 dims
      const y = arr(mlp(x, w));
      const silu = (g: number) => g / (1 + Math.exp(-g));
      expect(y[0]).to.be.closeTo(silu(0.5) * 2, 1e-6);
      expect(y[1]).to.be.closeTo(silu(-1) * 3, 1e-6);
      tf.dispose([x, w.gateUpProj, w.downProj]);
    });
  });
}
