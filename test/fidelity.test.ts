// Precision at Phi-4-mini's real width: a 2-layer synthetic checkpoint with the real config's
// hidden 3072, intermediate 8192 and 24 / 8 heads (the vocabulary cut to 2048 so that the test
// stays quick: the head's sums run over hidden 3072 either way). On each test backend every tap
// must be within 2x the ideal float32's error (the float64 reference with float32 storage:
// exact sums, one rounding per stored value), measured against the float64 reference.
// Measured when this test was written: at most 1.87x (layers.0.input_norm) on wasm and cpu;
// before exact sums, wasm was 30-80x and cpu 3-4x.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { GOLDEN_DIR } from '../src/oracle/golden.js';
import { loadConfig } from '../src/model/config.js';
import { Phi3Model } from '../src/model/model.js';
import { modelErrors, referenceErrors, referenceTaps } from '../src/oracle/reference/fidelity.js';
import { Rng, synthesize } from '../src/checkpoint/synth.js';
import { TEST_BACKENDS, useBackend } from './helpers.js';

describe('fidelity at the real width (2 layers of Phi-4-mini, hidden 3072, intermediate 8192)', function () {
  this.timeout(300_000);
  let dir: string;
  let ideal: Map<string, number>;
  let exact: ReturnType<typeof referenceTaps>;
  const TOKENS = 6;
  let inputs: { inputIds: Int32Array; batch: number; seq: number };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'phi4-width-'));
    const real = JSON.parse(readFileSync(join(GOLDEN_DIR, 'configs', 'phi-4-mini-instruct.json'), 'utf8'));
    const cfgPath = join(dir, 'source-config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...real, vocab_size: 2048, num_hidden_layers: 2 }));
    synthesize(cfgPath, join(dir, 'ckpt'), { seed: 7 });
    const config = loadConfig(join(dir, 'ckpt'));
    expect([config.hiddenSize, config.intermediateSize, config.numHeads, config.numKvHeads, config.rope.rotaryDim]).to.deep.equal([3072, 8192, 24, 8, 96]);
    const rng = new Rng(3, 'width');
    inputs = { inputIds: Int32Array.from({ length: TOKENS }, () => rng.u32() % 2048), batch: 1, seq: TOKENS };
    exact = referenceTaps(join(dir, 'ckpt'), config, inputs, 'none');
    ideal = referenceErrors(join(dir, 'ckpt'), config, inputs, 'f32', exact);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the ideal float32 is itself only a few roundings from float64', () => {
    expect(ideal.size).to.equal(3 + 13 * 2 + 2);
    for (const [tap, e] of ideal) expect(e, tap).to.be.below(3e-7);
    expect(ideal.get('layers.0.qkv')).to.be.above(1e-8); // float32 storage does round
  });

  for (const backend of TEST_BACKENDS) {
    it(`${backend}: every tap within 2x the ideal float32's error`, async () => {
      await useBackend(backend);
      const model = Phi3Model.load(join(dir, 'ckpt'));
      try {
        const errs = modelErrors(model, inputs, exact);
        expect(errs.size).to.equal(ideal.size);
        const bad = [...errs].filter(([tap, e]) => !(e <= 2 * ideal.get(tap)!)).map(([tap, e]) => `${tap}: ${e.toExponential(2)} = ${(e / ideal.get(tap)!).toFixed(2)}x ideal`);
        expect(bad).to.deep.equal([]);
      } finally {
        model.dispose();
      }
    });
  }
});
