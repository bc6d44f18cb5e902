// How far the LongRoPE policies' logits drift from the default past the original context, on the
// golden tiny model (original 32 positions): the worked example of docs/generation.md.
//
// All policies are fed the same tokens (the default policy's greedy continuation, teacher
// forced), so each step compares logits for the same sequence. PHI4_SHOW_DRIFT=1 prints the table.

import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile } from '../weights/index.js';
import { dumpPath, modelDir } from '../src/oracle/golden.js';
import { type RopePolicy, generate } from '../src/generate/generate.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { useBackend } from './helpers.js';

const STEPS = 40;

describe('LongRoPE policies: logit drift past the boundary (phi4-mini-tiny, 28-token golden prompt)', () => {
  let m: Phi3Model;
  let prompt: Int32Array;
  let goldenDrift: number[];
  const drift = new Map<string, number[]>();

  before(async () => {
    await useBackend('wasm');
    m = Phi3Model.load(modelDir('phi4-mini-tiny'));
    const f = SafetensorsFile.open(dumpPath('phi4-mini-tiny.generate'));
    prompt = f.readInt32('prompt_ids');
    const a = f.readFloat32('step_logits');
    const b = f.readFloat32('step_logits_nocache');
    f.close();
    const V = m.config.vocabSize;
    goldenDrift = Array.from({ length: 10 }, (_, i) => relL2(a.subarray(i * V, (i + 1) * V), b.subarray(i * V, (i + 1) * V)));

    const base = generate(m, prompt, { maxNewTokens: STEPS, eosIds: [] });
    const ids = base.ids;
    for (const policy of ['stale', 'fixed-long', 'fixed-short'] as RopePolicy[]) {
      const r = generate(m, prompt, { maxNewTokens: STEPS, ropePolicy: policy, forced: ids });
      drift.set(policy, r.stepLogits.map((l, i) => relL2(l, base.stepLogits[i])));
    }
    // transformers 5.17 generate() past the boundary: the newest token alone, at its position, no past
    const hf: number[] = [];
    const seq = [...prompt, ...ids];
    for (let s = 0; s < STEPS; s++) {
      const pos = prompt.length + s - 1;
      if (pos + 1 <= m.config.rope.originalMaxPositions) {
        hf.push(0); // before the crossing it uses the cache like everyone else
        continue;
      }
      const r = m.forward({ inputIds: Int32Array.of(seq[pos]), batch: 1, seq: 1, positionIds: Int32Array.of(pos) });
      hf.push(relL2(r.logits.dataSync() as Float32Array, base.stepLogits[s]));
      tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);
    }
    drift.set('hf-generate-5.17', hf);

    if (process.env.PHI4_SHOW_DRIFT) {
      const names = [...drift.keys()];
      console.log(`step  seq  ${names.map((n) => n.padStart(17)).join('')}`);
      for (let s = 0; s < STEPS; s++) {
        console.log(`${String(s).padStart(4)} ${String(prompt.length + s).padStart(4)}  ${names.map((n) => drift.get(n)![s].toExponential(2).padStart(17)).join('')}`);
      }
      console.log(`max   ${names.map((n) => Math.max(...drift.get(n)!).toExponential(2).padStart(17)).join('')}`);
    }
  });
  after(() => m.dispose());

  it('before the crossing (steps 0-4, sequence <= 32) stale and fixed-short equal the default; fixed-long does not', () => {
    for (let s = 0; s < 5; s++) {
      expect(drift.get('stale')![s]).to.be.below(1e-5);
      expect(drift.get('fixed-short')![s]).to.be.below(1e-5);
      expect(drift.get('fixed-long')![s]).to.be.above(1e-2);
    }
  });

  it("past it, stale's drift reproduces transformers' (golden cached vs recomputed) step by step", () => {
    for (let s = 5; s < 10; s++) expect(Math.abs(drift.get('stale')![s] - goldenDrift[s]), `step ${s}`).to.be.below(1e-4);
    expect(Math.max(...goldenDrift)).to.be.within(0.6, 0.8); // golden/README.md: "up to 0.69"
  });

  it('past it, fixed-long equals the default and fixed-short, stale and transformers generate() do not', () => {
    for (let s = 5; s < STEPS; s++) {
      expect(drift.get('fixed-long')![s], `step ${s}`).to.be.below(1e-5);
      for (const p of ['stale', 'fixed-short', 'hf-generate-5.17']) expect(drift.get(p)![s], `${p} step ${s}`).to.be.above(1e-2);
    }
  });
});
