// Taps inside decode steps (issue 20, item 6): `phi4 generate --out --taps` records each step's
// last row of the selected taps with its position and cache length, and `phi4 compare` on two such
// runs names the first step and tap that diverge, whether the prefill agrees, and the position each
// decoded token was rotated at. The candidates are decode loops with a planted position bug, driven
// through the library with the reference's tokens (teacher forcing): every decoded token at
// position 0 (mlx-vlm#1983), and positions that jump by 5 after the first step (executorch#2689).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { Phi3Model } from '../src/model/model.js';
import type { KvCache } from '../layers/attention.js';
import { type GenerateResult, type StepRecord, writeGeneration } from '../src/generate/generate.js';
import { SafetensorsFile } from '../weights/index.js';
import { useBackend } from './helpers.js';
import { ROOT, expectBadInput, phi4, show } from './cli-helpers.js';

const MODEL = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const PROMPT = [1, 5, 9, 300, 7];
const TAPS = ['layers.0.qkv', 'layers.0.q_rot', 'layers.0.attn_probs', 'layers.1.out', 'logits'];

/** A decode loop over `tokens` (forced) whose step s >= 1 rotates its token at `position(s)`, written as a generate file. */
function buggyRun(out: string, tokens: Int32Array, position: (step: number, correct: number) => number): void {
  const m = Phi3Model.load(MODEL);
  let past: KvCache[] | null = null;
  const steps: StepRecord[] = [];
  const stepLogits: Float32Array[] = [];
  try {
    for (let s = 0; s < tokens.length; s++) {
      const input = s === 0 ? PROMPT : [tokens[s - 1]];
      const cached = s === 0 ? 0 : PROMPT.length + s - 1;
      const taps = new Map<string, { shape: number[]; data: Float32Array }>();
      const hooks = Object.fromEntries(TAPS.map((n) => [n, (t: tf.Tensor) => {
        const ax = n === 'layers.0.q_rot' || n === 'layers.0.attn_probs' ? 2 : 1;
        const T = t.shape[ax]!;
        const row = tf.slice(t, t.shape.map((_, i) => (i === ax ? T - 1 : 0)), t.shape.map((k, i) => (i === ax ? 1 : k)));
        taps.set(n, { shape: row.shape, data: row.dataSync() as Float32Array });
        row.dispose();
      }]));
      const positionIds = s === 0 ? undefined : Int32Array.of(position(s, cached));
      const r = m.forward({ inputIds: Int32Array.from(input), batch: 1, seq: input.length, ...(positionIds ? { positionIds } : {}) }, { past: past ?? undefined, hooks });
      const l = r.logits.dataSync() as Float32Array;
      stepLogits.push(l.slice(l.length - 1024));
      r.logits.dispose();
      if (past) tf.dispose(past.flatMap((c) => [c.k, c.v]));
      past = r.cache;
      steps.push({ step: s, position: PROMPT.length + s - 1, cacheLength: cached, taps });
    }
    const res: GenerateResult = { ids: tokens, stepLogits, ropeLong: stepLogits.map(() => false), prefillLong: [false], rebuiltAt: null, stoppedBy: 'length', steps };
    writeGeneration(out, m, PROMPT, res, {});
  } finally {
    if (past) tf.dispose(past.flatMap((c) => [c.k, c.v]));
    m.dispose();
  }
}

describe('decode-step taps: generate --out --taps, and compare inside each step (issue 20)', function () {
  this.timeout(120_000);
  let tmp: string;
  let ref: string;
  let tokens: Int32Array;
  before(async () => {
    await useBackend('wasm');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-steps-'));
    ref = path.join(tmp, 'ref.safetensors');
    const r = phi4(['generate', MODEL, '--ids', PROMPT.join(','), '--max-new-tokens', '4', '--out', ref, '--taps', TAPS.join(',')]);
    expect(r.status, show(r)).to.equal(0);
    const f = SafetensorsFile.open(ref);
    tokens = f.readInt32('generated_ids');
    f.close();
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('records each step\'s last row of the selected taps, with its position and cache length', () => {
    const f = SafetensorsFile.open(ref);
    try {
      const meta = JSON.parse(f.metadata.step_taps);
      expect(meta.names).to.have.members(TAPS);
      expect(meta.steps).to.deep.equal([0, 1, 2, 3].map((s) => ({ step: s, position: 4 + s, cache: s === 0 ? 0 : 4 + s })));
      expect(f.info('steps.0.layers.0.attn_probs').shape).to.deep.equal([1, 6, 1, 5]); // the prompt's last row over 5 keys
      expect(f.info('steps.3.layers.0.attn_probs').shape).to.deep.equal([1, 6, 1, 8]); // 7 cached keys + its own
      expect(f.info('steps.2.layers.0.q_rot').shape).to.deep.equal([1, 6, 1, 16]);
    } finally {
      f.close();
    }
  });

  it('a correct decode loop agrees at every step and tap (the library run against the CLI\'s)', () => {
    const same = path.join(tmp, 'same.safetensors');
    buggyRun(same, tokens, (_s, correct) => correct);
    const r = phi4(['compare', ref, same]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.include(`step taps: all ${TAPS.length} recorded taps agree at every one of 4 steps`);
  });

  it('every decoded token at position 0: first divergence at step 1, q_rot; the prefill agrees; the positions named', () => {
    const cand = path.join(tmp, 'zero.safetensors');
    buggyRun(cand, tokens, () => 0);
    const r = phi4(['compare', ref, cand, '--json']);
    expect(r.status, show(r)).to.equal(1);
    const j = JSON.parse(r.stdout);
    expect(j.stepTaps.firstStep).to.equal(1);
    expect(j.stepTaps.firstTap).to.equal('layers.0.q_rot');
    expect(j.stepTaps.prefillAgrees).to.equal(true);
    expect(j.stepTaps.fittedPositions).to.deep.equal([4, 0, 0, 0]);
    expect(j.diagnosis).to.match(/^step taps: the first divergence is step 1 \(position 5\) at layers\.0\.q_rot/);
    expect(j.diagnosis).to.include('step 0, the prefill of the same prompt, agrees on every tap: the candidate\'s math is right, its cache or its positions are not');
    expect(j.diagnosis).to.include('rotary fit over the steps (layer 0): positions differ at 3 of 4 steps: step 1 at 0 (reference 5), step 2 at 0 (reference 6), step 3 at 0 (reference 7)');
  });

  it('positions that jump by 5 after the first step are fitted step by step', () => {
    const cand = path.join(tmp, 'jump.safetensors');
    buggyRun(cand, tokens, (_s, correct) => correct + 5);
    const j = JSON.parse(phi4(['compare', ref, cand, '--json']).stdout);
    expect(j.stepTaps.fittedPositions).to.deep.equal([4, 10, 11, 12]);
    expect(j.stepTaps.firstStep).to.equal(1);
  });

  it('--taps without --out, and --positions, are usage errors', () => {
    expectBadInput(phi4(['generate', MODEL, '--ids', '1,2', '--max-new-tokens', '1', '--taps', 'logits']), ['--taps', '--out']);
    expectBadInput(phi4(['generate', MODEL, '--ids', '1,2', '--max-new-tokens', '1', '--out', path.join(tmp, 'x.safetensors'), '--taps', 'logits', '--positions', '0']), ['--positions']);
  });
});
