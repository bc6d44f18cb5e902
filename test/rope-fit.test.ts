// The rotary fit (issue 20, item 4): from a candidate's own qkv and q_rot, rope_theta, each
// token's position, the pairing and the rotary dims are solved for and named. The candidates are
// our model run with one bug planted (a config value, a position scheme), or a q_rot rotated by
// hand with interleaved pairs; the fit never sees what was planted.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { inverseFrequencies } from '../layers/rotary.js';
import { loadConfig } from '../src/model/config.js';
import { type ForwardInputs, Phi3Model } from '../src/model/model.js';
import { fitRotary, rotateWith } from '../src/compare/diagnose/rope-fit.js';
import { describePositions, ropeFingerprint } from '../src/compare/diagnose/rope-fingerprint.js';
import { plantedCheckpoint, useBackend } from './helpers.js';
import { type TensorToWrite, writeSafetensors } from '../weights/index.js';
import { ROOT, phi4, show } from './cli-helpers.js';

const MODEL = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const IDS = Array.from({ length: 48 }, (_, i) => (i * 37 + 11) % 1000);

type Got = { shape: number[]; data: Float32Array };

/** layers.0.qkv and layers.0.q_rot of `dir` run on `inp`. */
function layer0(dir: string, inp: ForwardInputs): { qkv: Got; q: Got } {
  const m = Phi3Model.load(dir);
  try {
    const { logits, taps } = m.runWithCache(inp);
    const get = (n: string) => ({ shape: taps.get(n)!.shape, data: taps.get(n)!.dataSync() as Float32Array });
    const out = { qkv: get('layers.0.qkv'), q: get('layers.0.q_rot') };
    tf.dispose([logits, ...taps.values()]);
    return out;
  } finally {
    m.dispose();
  }
}

/**
 * A batch of 2 x 11: row 0 unpadded, row 1 left-padded by 5 (ids 0, mask 0). `shifted` is the
 * reference's position_ids, cumsum(mask) - 1 with pads at 1 (transformers' generate); `unshifted`
 * counts the pad tokens, the bug; `inp(positions)` the forward inputs with those positions.
 */
function leftPadded() {
  const T = 11;
  const pad = 5;
  const ids = [...IDS.slice(0, T), ...Array(pad).fill(0), ...IDS.slice(20, 20 + T - pad)];
  const mask = [...Array(T).fill(1), ...Array(pad).fill(0), ...Array(T - pad).fill(1)];
  const shifted = [...Array.from({ length: T }, (_, t) => t), ...Array(pad).fill(1), ...Array.from({ length: T - pad }, (_, t) => t)];
  const unshifted = [...Array.from({ length: T }, (_, t) => t), ...Array.from({ length: T }, (_, t) => t)];
  const inp = (p: number[]): ForwardInputs => ({ inputIds: Int32Array.from(ids), batch: 2, seq: T, attentionMask: Int32Array.from(mask), positionIds: Int32Array.from(p) });
  return { mask, shifted, unshifted, inp };
}

const one = (ids: number[], positionIds?: number[]): ForwardInputs => ({
  inputIds: Int32Array.from(ids), batch: 1, seq: ids.length, ...(positionIds ? { positionIds: Int32Array.from(positionIds) } : {}),
});

describe('rotary fit: theta, positions, pairing and dims solved from the candidate (issue 20)', function () {
  this.timeout(120_000);
  let tmp: string;
  const rope = loadConfig(MODEL).rope;
  before(async () => {
    await useBackend('wasm');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-ropefit-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the reference itself fits to the config exactly: short factors, theta 1e4, rotate-half, 12 dims, positions 0..10', () => {
    const { qkv, q } = layer0(MODEL, one(IDS.slice(0, 11)));
    const fit = fitRotary(rope, qkv, q)!;
    expect(fit).to.include({ set: 'short', theta: 1e4, pairing: 'rotate-half', rotaryDims: 12 });
    expect(fit.positions).to.deep.equal(Array.from({ length: 11 }, (_, t) => t));
    expect(fit.relL2).to.be.below(1e-6);
    const fp = ropeFingerprint(rope, 0, qkv, q)!;
    expect(fp.causes).to.deep.equal([]);
  });

  it('rope_theta 5e5 (a Llama-3 value) is fitted and named against the config\'s 1e4', () => {
    const dir = plantedCheckpoint(MODEL, tmp, 'theta', (c) => ({ ...c, rope_theta: 500000 }));
    const { qkv, q } = layer0(dir, one(IDS.slice(0, 11)));
    const fp = ropeFingerprint(rope, 0, qkv, q)!;
    expect(fp.fit!.theta / 5e5).to.be.closeTo(1, 1e-2);
    expect(fp.fit!.positions).to.deep.equal(Array.from({ length: 11 }, (_, t) => t));
    expect(fp.causes).to.deep.equal(['rope_theta ≈ 5.0e5, the config says 1.0e4']);
    expect(fp.text).to.match(/^rotary fit \(layer 0\): rope_theta ≈ 5\.0e5, the config says 1\.0e4 \(the fitted rotation reproduces the candidate's q_rot from its qkv to \d/);
  });

  it('positions that restart at 0 every 16 tokens (a chunked prefill) are named, with the short factors each chunk picked', () => {
    const { qkv, q } = layer0(MODEL, one(IDS, IDS.map((_, t) => t % 16)));
    const fp = ropeFingerprint(rope, 0, qkv, q)!;
    expect(fp.reference).to.equal('long'); // 48 tokens > original 32
    expect(fp.fit!.set).to.equal('short');
    expect(fp.causes).to.deep.equal(['positions restart at 0 every 16 tokens from position 16', 'the short factors where the reference uses the long set']);
  });

  it('an offset of +3 on every position, and every token at position 0, are named', () => {
    let { qkv, q } = layer0(MODEL, one(IDS.slice(0, 11), IDS.slice(0, 11).map((_, t) => t + 3)));
    expect(ropeFingerprint(rope, 0, qkv, q)!.causes).to.deep.equal(['positions offset by +3 (token at position 0 rotated at 3)']);
    ({ qkv, q } = layer0(MODEL, one(IDS.slice(0, 11), IDS.slice(0, 11).map(() => 0))));
    expect(ropeFingerprint(rope, 0, qkv, q)!.causes).to.deep.equal(['every token rotated at position 0']);
  });

  it('interleaved pairs and a rotation over 8 of the 12 dims are told apart from rotate-half over 12', () => {
    const { qkv } = layer0(MODEL, one(IDS.slice(0, 11)));
    const shape = { B: 1, T: 11, W: qkv.shape[2], nh: 6, d: 16 };
    const pos = Array.from({ length: 11 }, (_, t) => t);
    const inter = rotateWith(qkv.data, shape, 'interleaved', inverseFrequencies(rope, false), pos, rope.attentionScaling);
    const fp = ropeFingerprint(rope, 0, qkv, { shape: [1, 6, 11, 16], data: Float32Array.from(inter) })!;
    expect(fp.fit).to.include({ pairing: 'interleaved', rotaryDims: 12, theta: 1e4, set: 'short' });
    expect(fp.causes).to.have.length(1);
    expect(fp.causes[0]).to.match(/^interleaved pairs \(2i, 2i\+1\) where the model rotates halves/);
    const r8 = { ...rope, rotaryDim: 8, shortFactor: rope.shortFactor!.slice(0, 4), longFactor: rope.longFactor!.slice(0, 4) };
    const narrow = rotateWith(qkv.data, shape, 'rotate-half', inverseFrequencies({ ...r8, type: 'default' }, false), pos, 1);
    const fp8 = ropeFingerprint(rope, 0, qkv, { shape: [1, 6, 11, 16], data: Float32Array.from(narrow) })!;
    expect(fp8.fit!.rotaryDims).to.equal(8);
    expect(fp8.causes[0]).to.equal('the candidate rotates 8 dims of each head where the config rotates 12 (partial_rotary_factor)');
  });

  it('a left-padded row rotated at unshifted positions is named by row, the unpadded row cleared', () => {
    const { mask, shifted, unshifted, inp } = leftPadded();
    const { qkv, q } = layer0(MODEL, inp(unshifted));
    const fp = ropeFingerprint(rope, 0, qkv, q, { positions: Int32Array.from(shifted), mask })!;
    expect(fp.causes).to.deep.equal(['row 1 (left-padded by 5): its tokens were rotated at unshifted positions (counting the 5 pad tokens), +5 from the reference\'s position_ids; row 0 at the reference\'s positions']);
    // the same candidate judged against its own positions: nothing to name
    expect(ropeFingerprint(rope, 0, qkv, q, { positions: Int32Array.from(unshifted), mask })!.causes).to.deep.equal([]);
  });

  it('describePositions: agreeing positions say nothing; scattered ones are listed', () => {
    expect(describePositions([0, 1, 2], [0, 1, 2], 1, 3)).to.equal(null);
    expect(describePositions([0, 1, 7, 3], [0, 1, 2, 3], 1, 4)).to.equal('positions differ at 1 of 4 tokens: token 2 at 7 (reference 2)');
  });
});

describe('rotary causes named by plain `phi4 compare` (issue 20)', function () {
  this.timeout(180_000);
  let tmp: string;
  before(async () => {
    await useBackend('wasm');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-ropecli-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Our model on `inp` with `runInp`'s positions (the bug), written with `inp`'s inputs, as another runtime's dump. */
  function candidateDump(out: string, inp: ForwardInputs, runInp: ForwardInputs, dir = MODEL): string {
    const m = Phi3Model.load(dir);
    try {
      const { logits, taps } = m.runWithCache(runInp);
      const { batch: B, seq: T } = inp;
      const tensors: TensorToWrite[] = [{ name: 'input_ids', dtype: 'I32', shape: [B, T], data: inp.inputIds }];
      if (inp.attentionMask) tensors.push({ name: 'attention_mask', dtype: 'I32', shape: [B, T], data: inp.attentionMask });
      if (inp.positionIds) tensors.push({ name: 'position_ids', dtype: 'I32', shape: [B, T], data: inp.positionIds });
      for (const [name, t] of taps) tensors.push({ name, dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array });
      tf.dispose([logits, ...taps.values()]);
      writeSafetensors(out, tensors);
    } finally {
      m.dispose();
    }
    return out;
  }

  /** Our reference dump of MODEL on `inp` (written as an --inputs file first). */
  function referenceDump(name: string, inp: ForwardInputs): string {
    const inputs = path.join(tmp, `${name}.inputs.safetensors`);
    const { batch: B, seq: T } = inp;
    writeSafetensors(inputs, [
      { name: 'input_ids', dtype: 'I32', shape: [B, T], data: inp.inputIds },
      ...(inp.attentionMask ? [{ name: 'attention_mask', dtype: 'I32' as const, shape: [B, T], data: inp.attentionMask }] : []),
      ...(inp.positionIds ? [{ name: 'position_ids', dtype: 'I32' as const, shape: [B, T], data: inp.positionIds }] : []),
    ]);
    const out = path.join(tmp, `${name}.ref.safetensors`);
    const r = phi4(['dump', MODEL, '--inputs', inputs, '--out', out]);
    expect(r.status, show(r)).to.equal(0);
    return out;
  }

  const verdict = (r: { stdout: string }) => r.stdout.trim().split('\n').at(-1)!;

  it('rope_theta 5e5: "rope_theta ≈ 5.0e5, the config says 1.0e4", in place of the checklist', () => {
    const inp = one(IDS.slice(0, 11));
    const ref = referenceDump('theta', inp);
    const cand = candidateDump(path.join(tmp, 'theta.safetensors'), inp, inp, plantedCheckpoint(MODEL, tmp, 'theta5e5', (c) => ({ ...c, rope_theta: 500000 })));
    const r = phi4(['compare', ref, cand, '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    expect(verdict(r)).to.match(/^FAIL: first divergence at rope\.cos \(.*\): rotary fit \(layer 0\): rope_theta ≈ 5\.0e5, the config says 1\.0e4 \(/);
    expect(verdict(r)).to.not.include('check rope_theta, partial_rotary_factor'); // the checklist gives way to the cause
    // with the blame (the default), the blamed rotary step leads and the fit still names the cause
    const b = phi4(['compare', ref, cand]);
    expect(verdict(b)).to.match(/^FAIL: per-step blame: .* is the first step whose own error jumps.*rope_theta ≈ 5\.0e5, the config says 1\.0e4/);
  });

  it('a selected dump (--positions 5-10): the fit starts at the selection\'s first row, so only theta is named, no offset', () => {
    const dir = plantedCheckpoint(MODEL, tmp, 'theta-sel', (c) => ({ ...c, rope_theta: 500000 }));
    const sel = ['--ids', IDS.slice(0, 11).join(','), '--taps', 'rope.cos,layers.0.qkv,layers.0.q_rot', '--positions', '5-10'];
    const ref = path.join(tmp, 'sel.ref.safetensors');
    const cand = path.join(tmp, 'sel.cand.safetensors');
    for (const [d, out] of [[MODEL, ref], [dir, cand]]) {
      const r = phi4(['dump', d, ...sel, '--out', out]);
      expect(r.status, show(r)).to.equal(0);
    }
    const j = JSON.parse(phi4(['compare', ref, cand, '--no-blame', '--json']).stdout);
    expect(j.ropeFingerprint.fit.positions).to.deep.equal([5, 6, 7, 8, 9, 10]);
    expect(j.ropeFingerprint.causes).to.deep.equal(['rope_theta ≈ 5.0e5, the config says 1.0e4']);
  });

  it('a chunked prefill whose positions restart every 16 tokens: "positions restart at 0 every 16 tokens from position 16"', () => {
    const inp = one(IDS);
    const ref = referenceDump('chunk', inp);
    const cand = candidateDump(path.join(tmp, 'chunk.safetensors'), inp, one(IDS, IDS.map((_, t) => t % 16)));
    const r = phi4(['compare', ref, cand, '--no-blame', '--json']);
    expect(r.status, show(r)).to.equal(1);
    const j = JSON.parse(r.stdout);
    expect(j.ropeFingerprint.causes).to.deep.equal(['positions restart at 0 every 16 tokens from position 16', 'the short factors where the reference uses the long set']);
    expect(j.diagnosis).to.include('rotary fit (layer 0): positions restart at 0 every 16 tokens from position 16');
  });

  it('a left-padded batch whose padded row was rotated at unshifted positions: the row is named, and that only it diverges', () => {
    const { shifted, unshifted, inp } = leftPadded();
    const ref = referenceDump('padded', inp(shifted));
    const cand = candidateDump(path.join(tmp, 'padded.safetensors'), inp(shifted), inp(unshifted));
    const r = phi4(['compare', ref, cand, '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/rope\.cos .* DIVERGES .*row 1 of 2 diverges \(only the padded row: row 1 has 5 pad positions\)/);
    expect(verdict(r)).to.include('rotary fit (layer 0): row 1 (left-padded by 5): its tokens were rotated at unshifted positions (counting the 5 pad tokens), +5 from the reference\'s position_ids; row 0 at the reference\'s positions');
  });
});
