// Generation against transformers' phi4-mini-tiny.generate golden (greedy, 28-token prompt,
// 10 new tokens, crossing original_max_position_embeddings = 32 at step 5), and the LongRoPE
// policies against the forward pass they are defined by.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile } from '../weights/index.js';
import { F32_TOLERANCE, dumpPath, modelDir } from '../src/oracle/golden.js';
import { type RopePolicy, checkpointEosIds, generate, lastLogits } from '../src/generate/generate.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { TEST_BACKENDS, useBackend } from './helpers.js';

interface Golden {
  prompt: Int32Array;
  cached: { ids: Int32Array; logits: Float32Array };
  nocache: { ids: Int32Array; logits: Float32Array };
}

function readGolden(): Golden {
  const f = SafetensorsFile.open(dumpPath('phi4-mini-tiny.generate'));
  try {
    return {
      prompt: f.readInt32('prompt_ids'),
      cached: { ids: f.readInt32('generated_ids'), logits: f.readFloat32('step_logits') },
      nocache: { ids: f.readInt32('generated_ids_nocache'), logits: f.readFloat32('step_logits_nocache') },
    };
  } finally {
    f.close();
  }
}

const row = (a: Float32Array, i: number, V: number) => a.subarray(i * V, (i + 1) * V);

for (const backend of TEST_BACKENDS) {
  describe(`generation against transformers (phi4-mini-tiny.generate), ${backend}`, () => {
    let m: Phi3Model;
    let g: Golden;
    before(async () => {
      await useBackend(backend);
      m = Phi3Model.load(modelDir('phi4-mini-tiny'));
      g = readGolden();
    });
    after(() => m.dispose());

    const cases: { name: string; policy: RopePolicy; noCache: boolean; golden: 'cached' | 'nocache' }[] = [
      { name: 'default (cache rebuilt at the crossing)', policy: 'default', noCache: false, golden: 'nocache' },
      { name: '--no-cache', policy: 'default', noCache: true, golden: 'nocache' },
      { name: 'stale', policy: 'stale', noCache: false, golden: 'cached' },
    ];
    for (const c of cases) {
      it(`${c.name} reproduces the golden ids exactly and every step's logits within ${F32_TOLERANCE}`, () => {
        const before = tf.memory().numTensors;
        const want = g[c.golden];
        const r = generate(m, g.prompt, { maxNewTokens: want.ids.length, ropePolicy: c.policy, noCache: c.noCache, eosIds: [] });
        expect(tf.memory().numTensors).to.equal(before);
        expect(Array.from(r.ids)).to.deep.equal(Array.from(want.ids));
        const V = m.config.vocabSize;
        r.stepLogits.forEach((l, i) => expect(relL2(l, row(want.logits, i, V)), `step ${i}`).to.be.at.most(F32_TOLERANCE));
        expect(r.ropeLong).to.deep.equal([false, false, false, false, false, true, true, true, true, true]);
        expect(r.rebuiltAt).to.equal(c.policy === 'default' && !c.noCache ? 5 : null);
      });
    }
  });
}

describe('generation: the LongRoPE policies and the KV cache (phi4-mini-tiny, wasm)', () => {
  let m: Phi3Model;
  let g: Golden;
  before(async () => {
    await useBackend('wasm');
    m = Phi3Model.load(modelDir('phi4-mini-tiny'));
    g = readGolden();
  });
  after(() => m.dispose());

  it('stale and default really differ past the boundary (the golden tells them apart)', () => {
    const V = m.config.vocabSize;
    for (let i = 0; i < 5; i++) expect(relL2(row(g.cached.logits, i, V), row(g.nocache.logits, i, V))).to.be.below(1e-5);
    for (let i = 5; i < 10; i++) expect(relL2(row(g.cached.logits, i, V), row(g.nocache.logits, i, V))).to.be.above(0.05);
  });

  for (const [policy, long] of [['fixed-long', true], ['fixed-short', false]] as const) {
    it(`${policy} equals a forward pass with the ${long ? 'long' : 'short'} factors forced, at every step`, () => {
      const r = generate(m, g.prompt, { maxNewTokens: 10, ropePolicy: policy, eosIds: [] });
      expect(r.ropeLong).to.deep.equal(Array(10).fill(long));
      const seq = Array.from(g.prompt);
      r.stepLogits.forEach((l, i) => {
        expect(relL2(l, lastLogits(m, seq, long)), `step ${i}`).to.be.at.most(F32_TOLERANCE);
        seq.push(r.ids[i]);
      });
      // and the forced set matters: fixed-short differs from the model's own choice past the boundary
      const auto = lastLogits(m, seq.slice(0, -1));
      expect(relL2(r.stepLogits[9], auto)).to.be[long ? 'below' : 'above'](long ? F32_TOLERANCE : 0.05);
    });
  }

  it('default with the cache equals full recomputation over 50 steps across the boundary', () => {
    const prompt = g.prompt.slice(0, 8); // 8 + 50 positions: crosses 32 at step 25
    const opts = { maxNewTokens: 50, eosIds: [], sampling: { temperature: 8, topK: 40 }, seed: 7 };
    const inc = generate(m, prompt, opts);
    const full = generate(m, prompt, { ...opts, noCache: true });
    expect(inc.rebuiltAt).to.equal(25);
    expect(Array.from(inc.ids)).to.deep.equal(Array.from(full.ids));
    let worst = 0;
    inc.stepLogits.forEach((l, i) => (worst = Math.max(worst, relL2(l, full.stepLogits[i]))));
    expect(worst).to.be.at.most(F32_TOLERANCE);
    expect(new Set(inc.ids).size, 'sampling should give varied tokens').to.be.greaterThan(5);
  });

  it('why the cache is recomputed, not re-rotated: past layer 0 even the values depend on the factor set', () => {
    const run = (long: boolean) => m.forward({ inputIds: g.prompt, batch: 1, seq: g.prompt.length }, { ropeLong: long });
    const s = run(false);
    const l = run(true);
    const data = (t: tf.Tensor) => t.dataSync() as Float32Array;
    expect(relL2(data(l.cache[0].v), data(s.cache[0].v))).to.equal(0); // layer 0: values see no rotation
    expect(relL2(data(l.cache[1].v), data(s.cache[1].v))).to.be.above(1e-2); // layer 1: they do, through layer 0's attention
    expect(relL2(data(l.cache[1].k), data(s.cache[1].k))).to.be.above(1e-2);
    tf.dispose([s.logits, l.logits, ...[...s.cache, ...l.cache].flatMap((c) => [c.k, c.v])]);
  });

  it('eos ids: config.json (int or list) together with generation_config.json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-eos-'));
    try {
      expect(checkpointEosIds(dir, { ...m.config, eosTokenIds: [2] })).to.deep.equal([2]);
      fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [200020, 199999], do_sample: false }));
      expect(checkpointEosIds(dir, { ...m.config, eosTokenIds: [199999] })).to.deep.equal([199999, 200020]);
      fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 7 }));
      expect(checkpointEosIds(dir, { ...m.config, eosTokenIds: [] })).to.deep.equal([7]);
      fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 'x' }));
      expect(() => checkpointEosIds(dir, m.config)).to.throw(/generation_config.json: eos_token_id "x"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops at an eos id, which is emitted', () => {
    const r = generate(m, g.prompt, { maxNewTokens: 10, eosIds: [g.nocache.ids[0]] });
    expect(Array.from(r.ids)).to.deep.equal([g.nocache.ids[0]]);
    expect(r.stoppedBy).to.equal('eos');
  });

  it('refuses stale with --no-cache, and a sequence past max_position_embeddings, before any work', () => {
    expect(() => generate(m, g.prompt, { maxNewTokens: 2, ropePolicy: 'stale', noCache: true })).to.throw(/--no-cache/);
    expect(() => generate(m, new Int32Array(1025), { maxNewTokens: 1 })).to.throw(/prompt: 1025 tokens is longer than max_position_embeddings = 1024/);
    expect(() => generate(m, g.prompt, { maxNewTokens: 1000 })).to.throw(/--max-new-tokens: prompt \(28\) \+ 1000 new tokens = 1028 .* 1024/);
  });
});
