// Every tap of every golden forward case against transformers 5.17, on both kernel sets.

import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { FORWARD_CASES, F32_TOLERANCE, type TapCheck, checkCase, dumpPath, modelDir } from '../src/oracle/golden.js';
import { captureTaps } from '../src/capture/host.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { TEST_BACKENDS, useBackend } from './helpers.js';

function failures(checks: TapCheck[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => `${c.tap}: ${c.problem ?? `rel ${c.rel.toExponential(2)}, vs f64 ${c.rel64?.toExponential(2)} (limit ${c.limit64?.toExponential(2)})`}`);
}

const models = new Map<string, Phi3Model>();
const model = (name: string) => {
  if (!models.has(name)) models.set(name, Phi3Model.load(modelDir(name)));
  return models.get(name)!;
};
const disposeModels = () => {
  for (const m of models.values()) m.dispose();
  models.clear();
};

for (const backend of TEST_BACKENDS) {
  describe(`golden forward cases (${backend})`, () => {
    before(() => useBackend(backend));
    after(disposeModels);

    for (const c of FORWARD_CASES) {
      it(`${c.name}: every tap within tolerance of transformers`, () => {
        const checks = checkCase(model(c.model), c.name);
        // the dump has every tap of the table: 3 + 13 per layer + 2
        expect(checks.length).to.equal(3 + 13 * model(c.model).config.numLayers + 2);
        expect(failures(checks)).to.deep.equal([]);
      });
    }

    it('does not leak tensors across a forward pass', () => {
      const m = model('phi4-mini-tiny');
      const before = tf.memory().numTensors;
      captureTaps(m, readInputs(dumpPath('phi4-mini-tiny.long')));
      expect(tf.memory().numTensors).to.equal(before);
    });
  });
}

describe('golden checks can fail', () => {
  before(() => useBackend('wasm'));
  after(disposeModels);

  it('the long case run with the short LongRoPE factors fails from the first rotary tap on', () => {
    const m = model('phi4-mini-tiny');
    const forced = new Phi3Model(m.config, m.weights);
    const orig = forced.forward.bind(forced);
    forced.forward = (inp, opts = {}) => orig(inp, { ...opts, ropeLong: false });
    const bad = checkCase(forced, 'phi4-mini-tiny.long').filter((x) => !x.ok).map((x) => x.tap);
    expect(bad[0]).to.equal('rope.cos');
    expect(bad).to.include.members(['layers.0.q_rot', 'layers.0.k_rot', 'logits']);
    expect(bad).to.not.include('embed');
  });

  it('a model whose sliding window is ignored fails the phi3 long case (20 tokens, window 8)', () => {
    const m = model('phi3-mini-tiny');
    const noWindow = new Phi3Model({ ...m.config, slidingWindow: null }, m.weights);
    const bad = checkCase(noWindow, 'phi3-mini-tiny.long').filter((x) => !x.ok).map((x) => x.tap);
    expect(bad[0]).to.equal('layers.0.attn_probs');
    const ok = checkCase(noWindow, 'phi3-mini-tiny.short').filter((x) => !x.ok); // 11 tokens: window 8 matters
    expect(ok.length).to.be.greaterThan(0);
  });
});

// Measured (this test, both cases, 114 taps): the worst tap is long layers.3.attn_probs at
// 2.65e-7 relative L2, the batch's worst 2.16e-7 (layers.3.mlp_out). The bound is about 4x the
// worst, not the golden tolerance (1e-5), so that a kernel drifting by 1e-6 fails.
const CROSS_BACKEND_BOUND = 1e-6;

describe('wasm and cpu agree with each other', () => {
  it('on every tap of phi4-mini-tiny.long and phi4-mini-tiny.batch (with its padding mask)', async () => {
    expect(Array.from(readInputs(dumpPath('phi4-mini-tiny.batch')).attentionMask ?? [])).to.include(0); // padding is in the check
    const got: Record<string, Map<string, { data: Float32Array }>>[] = [];
    for (const backend of TEST_BACKENDS) {
      await useBackend(backend);
      const m = Phi3Model.load(modelDir('phi4-mini-tiny'));
      got.push({
        long: captureTaps(m, readInputs(dumpPath('phi4-mini-tiny.long'))),
        batch: captureTaps(m, readInputs(dumpPath('phi4-mini-tiny.batch'))), // with its padding mask
      });
      m.dispose();
    }
    let worst = 0;
    for (const k of ['long', 'batch']) {
      for (const [name, a] of got[0][k]) {
        const e = relL2(a.data, got[1][k].get(name)!.data);
        expect(e, `${k} ${name}`).to.be.at.most(CROSS_BACKEND_BOUND);
        worst = Math.max(worst, e);
      }
    }
    expect(worst).to.be.greaterThan(0); // two kernel sets, not one run twice
  });
});
