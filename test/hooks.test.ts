// Hooks (TransformerLens style): observe or replace any tap during a forward pass. The patched
// downstream tap is checked against a hand computation on the host from the checkpoint's weights.

import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint } from '../weights/index.js';
import { dumpPath, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { type LayerTap, noTap } from '../layers/tap.js';
import { isTapName, tapNames } from '../layers/taps.js';
import { useBackend } from './helpers.js';

const MODEL = modelDir('phi4-mini-tiny');

/** Host float64 y = x W^T for x [rows, k] and W [n, k]. */
function matmulT(x: Float32Array, w: Float32Array, rows: number, k: number, n: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += x[r * k + i] * w[j * k + i];
      y[r * n + j] = s;
    }
  }
  return y;
}

describe('hooks and runWithCache', () => {
  let m: Phi3Model;
  const inputs = readInputs(dumpPath('phi4-mini-tiny.short'));
  before(async () => {
    await useBackend('wasm');
    m = Phi3Model.load(MODEL);
  });
  after(() => m.dispose());

  it('zeroing one head of layers.1.attn_out changes layers.1.o_proj exactly as attn_out W_o^T says', () => {
    const { numHeads: nh, headDim: d, hiddenSize: H } = m.config;
    const head = 2;
    const before = tf.memory().numTensors;
    const clean = m.runWithCache(inputs);
    let seen: number[] | null = null;
    const patched = m.runWithCache(inputs, {
      hooks: {
        'layers.1.attn_out': (t) => {
          seen = t.shape;
          const cols = tf.concat([tf.ones([head * d]), tf.zeros([d]), tf.ones([(nh - head - 1) * d])]);
          return tf.mul(t, cols);
        },
      },
    });
    try {
      expect(seen).to.deep.equal([1, inputs.seq, nh * d]);
      const T = inputs.seq;
      const a0 = clean.taps.get('layers.1.attn_out')!.dataSync() as Float32Array;
      const a1 = patched.taps.get('layers.1.attn_out')!.dataSync() as Float32Array;
      // the cache holds the replacement: head 2's columns zero, the others untouched
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < nh * d; c++) {
          const want = Math.floor(c / d) === head ? 0 : a0[t * nh * d + c];
          if (a1[t * nh * d + c] !== want) expect.fail(`attn_out[${t}, ${c}] = ${a1[t * nh * d + c]}, want ${want}`);
        }
      }
      // everything upstream of the hook is bitwise the clean run
      for (const name of ['embed', 'layers.0.out', 'layers.1.qkv', 'layers.1.attn_probs']) {
        expect(Array.from(patched.taps.get(name)!.dataSync()), name).to.deep.equal(Array.from(clean.taps.get(name)!.dataSync()));
      }
      // downstream: o_proj = attn_out_patched W_o^T, with W_o read from the checkpoint itself
      const ck = Checkpoint.open(MODEL);
      const wo = ck.readFloat32('model.layers.1.self_attn.o_proj.weight'); // [H, nh d]
      ck.close();
      const hand = matmulT(a1, wo, T, nh * d, H);
      const got = patched.taps.get('layers.1.o_proj')!.dataSync() as Float32Array;
      expect(relL2(got, hand)).to.be.below(1e-6);
      // the hand computation with the clean attn_out does not match: the patch mattered
      expect(relL2(got, matmulT(a0, wo, T, nh * d, H))).to.be.above(1e-2);
      // and the logits move
      expect(relL2(patched.logits.dataSync() as Float32Array, clean.logits.dataSync() as Float32Array)).to.be.above(1e-3);
    } finally {
      tf.dispose([clean.logits, patched.logits, ...clean.taps.values(), ...patched.taps.values()]);
    }
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('a hook that returns nothing only observes: forward(inputs, { hooks }) gives the same logits', () => {
    const before = tf.memory().numTensors;
    const plain = m.forward(inputs);
    const seen: string[] = [];
    const observed = m.forward(inputs, { hooks: { embed: () => { seen.push('embed'); }, logits: (t) => { seen.push(`logits ${t.shape}`); } } });
    expect(seen).to.deep.equal(['embed', `logits 1,${inputs.seq},${m.config.vocabSize}`]);
    expect(Array.from(observed.logits.dataSync())).to.deep.equal(Array.from(plain.logits.dataSync()));
    tf.dispose([plain.logits, observed.logits, ...plain.cache.flatMap((c) => [c.k, c.v]), ...observed.cache.flatMap((c) => [c.k, c.v])]);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('runWithCache({ names }) returns exactly those taps', () => {
    const r = m.runWithCache(inputs, { names: ['layers.3.out', 'embed'] });
    expect([...r.taps.keys()].sort()).to.deep.equal(['embed', 'layers.3.out']);
    tf.dispose([r.logits, ...r.taps.values()]);
  });

  it('tap names are typed: a block cannot tap a name outside the table; isTapName admits exactly the table\'s shapes', () => {
    const layerTap: LayerTap = noTap;
    const t = tf.scalar(1);
    // @ts-expect-error qvk is not a layer tap (layers/taps.ts): tap('qvk', ...) in layers/ does not compile
    expect(layerTap('qvk', t)).to.equal(t);
    t.dispose();
    expect(tapNames(2).every(isTapName)).to.equal(true);
    for (const bad of ['layers.0.qvk', 'qkv', 'layers.x.qkv', 'layers.0.', 'logit', 'constructor', 'layers.0.toString']) expect(isTapName(bad), bad).to.equal(false);
  });

  it('refuses an unknown tap name in hooks or names, naming it, before running', () => {
    const before = tf.memory().numTensors;
    expect(() => m.forward(inputs, { hooks: { 'layers.9.out': () => {} } })).to.throw(/hooks: "layers\.9\.out" is not a tap/);
    // @ts-expect-error a misspelt tap name does not compile (layers/taps.ts's TapName); from untyped callers it is refused at run time
    expect(() => m.runWithCache(inputs, { hooks: { 'layers.0.attn': () => {} } })).to.throw(/"layers\.0\.attn" is not a tap/);
    // @ts-expect-error misspelt: a compile error, and at run time a refusal
    expect(() => m.runWithCache(inputs, { names: ['logit'] })).to.throw(/names: "logit" is not a tap of this \d+-layer model \(did you mean logits\?\)$/);
    // @ts-expect-error misspelt: a compile error, and at run time a refusal
    expect(() => m.runWithCache(inputs, { names: ['layers.1.atn_out'] })).to.throw(/\(did you mean layers\.1\.attn_out\?\)$/);
    // @ts-expect-error misspelt: a compile error, and at run time a refusal
    expect(() => m.runWithCache(inputs, { names: ['nonsense'] })).to.throw(/not a tap of this \d+-layer model \(names: embed, .*see layers\/taps\.ts\)$/);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('refuses a replacement of another shape, naming the tap, and leaks nothing', () => {
    const before = tf.memory().numTensors;
    const bad = { 'layers.2.mlp_act': (t: tf.Tensor) => tf.slice(t, [0, 0, 0], [1, 1, -1]) };
    expect(() => m.runWithCache(inputs, { hooks: bad })).to.throw(/hook "layers\.2\.mlp_act" returned shape \[1,1,256\], the tap has \[1,11,256\]/);
    const notTensor = { embed: () => 0 as unknown as tf.Tensor };
    expect(() => m.forward(inputs, { hooks: notTensor })).to.throw(/hook "embed" returned number, not a tensor/);
    expect(tf.memory().numTensors).to.equal(before);
  });
});
