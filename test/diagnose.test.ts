// compare's diagnoses beyond the numbers: the LongRoPE fingerprint (src/compare/diagnose/).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { cosSin, inverseFrequencies } from '../layers/rotary.js';
import { loadConfig } from '../src/model/config.js';
import { Phi3Model } from '../src/model/model.js';
import { useBackend } from './helpers.js';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../weights/index.js';
import { ROOT, phi4, show } from './cli-helpers.js';

const MODEL = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');

/** q [B=1,nh,T,d] from qkv [1,T,W], rotate-half on the first r dims with tables [T, r]. */
function rotate(qkv: Float32Array, T: number, nh: number, d: number, W: number, r: number, cos: Float32Array, sin: Float32Array): Float32Array {
  const out = new Float32Array(nh * T * d);
  for (let h = 0; h < nh; h++) for (let t = 0; t < T; t++) for (let i = 0; i < d; i++) {
    const x = qkv[t * W + h * d + i];
    const rh = i < r / 2 ? -qkv[t * W + h * d + i + r / 2] : i < r ? qkv[t * W + h * d + i - r / 2] : 0;
    out[(h * T + t) * d + i] = i < r ? x * cos[t * r + i] + rh * sin[t * r + i] : x;
  }
  return out;
}

describe('LongRoPE fingerprint in compare', function () {
  let tmp: string;
  let ref: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-diag-'));
    ref = path.join(tmp, 'ref.safetensors');
    const r = phi4(['dump', MODEL, '--ids', '1,5,9,300,7,42,17,99,512,3,8', '--out', ref]);
    expect(r.status, show(r)).to.equal(0);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** The reference dump with layers.0.q_rot replaced by the qkv rotated with `set`'s factors. */
  function candidate(set: 'long' | 'none'): string {
    const cfg = loadConfig(MODEL);
    const f = SafetensorsFile.open(ref);
    const out = path.join(tmp, `${set}.safetensors`);
    const tensors: TensorToWrite[] = [];
    try {
      const qkv = f.readFloat32('layers.0.qkv');
      const [, T, W] = f.info('layers.0.qkv').shape;
      const inv = set === 'long' ? inverseFrequencies(cfg.rope, true) : inverseFrequencies({ ...cfg.rope, type: 'default' }, false);
      const { cos, sin } = cosSin(inv, Int32Array.from({ length: T }, (_, t) => t), set === 'long' ? cfg.rope.attentionScaling : 1);
      for (const t of f.tensors()) {
        const int = t.dtype.startsWith('I');
        let data: Float32Array | Int32Array = int ? f.readInt32(t.name) : f.readFloat32(t.name);
        if (t.name === 'layers.0.q_rot') data = rotate(qkv, T, cfg.numHeads, cfg.headDim, W, cfg.rope.rotaryDim, cos, sin);
        tensors.push({ name: t.name, dtype: int ? 'I32' : 'F32', shape: t.shape, data });
      }
    } finally {
      f.close();
    }
    writeSafetensors(out, tensors);
    return out;
  }

  it('a short prompt rotated with the long factors is named: "long factors used for a sequence within the original context"', () => {
    const r = phi4(['compare', ref, candidate('long'), '--json']);
    expect(r.status, show(r)).to.equal(1);
    const j = JSON.parse(r.stdout);
    expect(j.firstDivergent).to.equal('layers.0.q_rot');
    expect(j.ropeFingerprint.candidate).to.equal('long');
    expect(j.ropeFingerprint.reference).to.equal('short');
    expect(j.ropeFingerprint.fits.find((x: { set: string }) => x.set === 'long').relL2).to.be.below(1e-6);
    expect(j.diagnosis).to.include('long factors used for a sequence within the original context (T = 11 <= original_max_position_embeddings 32)');
  });

  /** Our dump with its metadata dropped (another runtime's dump has none) and some taps changed. */
  function foreign(src: string, out: string, change: (name: string, d: Float32Array, shape: number[]) => Float32Array = (_n, d) => d): string {
    const f = SafetensorsFile.open(src);
    const tensors: TensorToWrite[] = [];
    try {
      for (const t of f.tensors()) {
        const int = t.dtype.startsWith('I');
        tensors.push({ name: t.name, dtype: int ? 'I32' : 'F32', shape: t.shape, data: int ? f.readInt32(t.name) : change(t.name, f.readFloat32(t.name), t.shape) });
      }
    } finally {
      f.close();
    }
    writeSafetensors(out, tensors);
    return out;
  }

  it('--blame: an RMSNorm eps of 1e-6 instead of 1e-5 passes fp32 on the numbers, but is blamed on layers.0.input_norm', () => {
    // the candidate: our model with rms_norm_eps 1e-6, the shards linked from the real checkpoint
    const dir = path.join(tmp, 'eps6');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(MODEL)) if (f !== 'config.json') fs.symlinkSync(path.join(MODEL, f), path.join(dir, f));
    const cfg = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, rms_norm_eps: 1e-6 }));
    const raw = path.join(tmp, 'eps6.raw.safetensors');
    const d = phi4(['dump', dir, '--ids', '1,5,9,300,7,42,17,99,512,3,8', '--out', raw]);
    expect(d.status, show(d)).to.equal(0);
    const cand = foreign(raw, path.join(tmp, 'eps6.safetensors'));
    const plain = phi4(['compare', ref, cand, '--no-blame']);
    expect(plain.status, show(plain)).to.equal(0); // under 1e-5 everywhere: the numbers alone pass it
    expect(plain.stdout).to.not.include('per-step blame:');
    const r = phi4(['compare', ref, cand, '--blame', MODEL, '--json']);
    expect(r.status, show(r)).to.equal(1);
    const j = JSON.parse(r.stdout);
    expect(j.blame.blamed).to.equal('layers.0.input_norm');
    const local = new Map(j.blame.taps.map((t: { name: string; local: number }) => [t.name, t.local]));
    expect(local.get('layers.0.input_norm')).to.be.above(1e-6);
    expect(local.get('layers.0.qkv')).to.be.below(1e-7); // the projection after it is right on its input
    expect(j.diagnosis).to.include('per-step blame: layers.0.input_norm is the first step whose own error jumps');
  });

  it('--blame: a GQA head-mapping bug on query heads 1 and 4 is blamed on attn_probs, heads 1 and 4 named', () => {
    const cfg = loadConfig(MODEL);
    const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const f = SafetensorsFile.open(ref);
    const q = f.readFloat32('layers.1.q_rot');
    const k = f.readFloat32('layers.1.k_rot');
    f.close();
    const T = 11;
    // heads 1 and 4 read the other key head: softmax(q_h k_wrong^T / sqrt(d) + causal)
    const wrong = (h: number) => 1 - Math.floor(h / (nh / nkv));
    const cand = foreign(ref, path.join(tmp, 'gqa.safetensors'), (name, data) => {
      if (name !== 'layers.1.attn_probs') return data;
      const out = data.slice();
      for (const h of [1, 4]) for (let t = 0; t < T; t++) {
        const s = Array.from({ length: T }, (_, u) => {
          if (u > t) return -Infinity;
          let dot = 0;
          for (let i = 0; i < d; i++) dot += q[(h * T + t) * d + i] * k[(wrong(h) * T + u) * d + i];
          return dot / Math.sqrt(d);
        });
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let u = 0; u < T; u++) out[(h * T + t) * T + u] = e[u] / z;
      }
      return out;
    });
    const r = phi4(['compare', ref, cand, '--blame', MODEL]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.include('first divergence at layers.1.attn_probs').and.include('heads 1, 4 of 6');
    expect(r.stdout).to.include('per-step blame: layers.1.attn_probs is the first step whose own error jumps').and.include('in heads 1, 4 of 6');
  });

  it('--blame: a GQA head-mapping bug on heads 1 and 4 that propagates (a whole forward pass with it): every later tap diverges, the blame stays on attn_probs heads 1 and 4', async () => {
    // our model with a hook that makes query heads 1 and 4 of layer 1 read the wrong key head;
    // the wrong probabilities flow on into attn_out, o_proj and every layer after
    await useBackend('wasm');
    const m = Phi3Model.load(MODEL);
    const { numHeads: nh, numKvHeads: nkv, headDim: d } = m.config;
    const wrong = (h: number) => 1 - Math.floor(h / (nh / nkv));
    const T = 11;
    let q: Float32Array | null = null;
    let k: Float32Array | null = null;
    const hooks = {
      'layers.1.q_rot': (t: tf.Tensor) => void (q = t.dataSync() as Float32Array),
      'layers.1.k_rot': (t: tf.Tensor) => void (k = t.dataSync() as Float32Array),
      'layers.1.attn_probs': (t: tf.Tensor) => {
        const out = (t.dataSync() as Float32Array).slice();
        for (const h of [1, 4]) for (let i = 0; i < T; i++) {
          const s = Array.from({ length: T }, (_, u) => {
            if (u > i) return -Infinity;
            let dot = 0;
            for (let j = 0; j < d; j++) dot += q![(h * T + i) * d + j] * k![(wrong(h) * T + u) * d + j];
            return dot / Math.sqrt(d);
          });
          const mx = Math.max(...s);
          const e = s.map((x) => Math.exp(x - mx));
          const z = e.reduce((a, b) => a + b, 0);
          for (let u = 0; u < T; u++) out[(h * T + i) * T + u] = e[u] / z;
        }
        return tf.tensor(out, t.shape);
      },
    };
    const ids = Int32Array.from([1, 5, 9, 300, 7, 42, 17, 99, 512, 3, 8]);
    const { logits, taps } = m.runWithCache({ inputIds: ids, batch: 1, seq: T }, { hooks });
    const cand = path.join(tmp, 'gqa-propagated.safetensors');
    try {
      writeSafetensors(cand, [
        { name: 'input_ids', dtype: 'I32', shape: [1, T], data: ids },
        ...[...taps].map(([name, t]): TensorToWrite => ({ name, dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array })),
      ]);
    } finally {
      tf.dispose([logits, ...taps.values()]);
      m.dispose();
    }
    const r = phi4(['compare', ref, cand, '--blame', MODEL]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.include('first divergence at layers.1.attn_probs').and.include('heads 1, 4 of 6');
    expect(r.stdout).to.match(/layers\.1\.attn_out .* DIVERGES +heads 1, 4 of 6/); // probs x V carries it, in the same heads
    expect(r.stdout).to.match(/layers\.3\.out .* DIVERGES/);
    expect(r.stdout).to.include('per-step blame: layers.1.attn_probs is the first step whose own error jumps').and.include('in heads 1, 4 of 6');
    const j = JSON.parse(phi4(['compare', ref, cand, '--blame', MODEL, '--json']).stdout);
    const local = new Map(j.blame.taps.map((t: { name: string; local: number }) => [t.name, t.local]));
    expect(j.blame.blamed).to.equal('layers.1.attn_probs');
    expect(local.get('layers.1.attn_out')).to.be.below(1e-6); // probs x V is right on the candidate's probs
    expect(local.get('layers.2.qkv')).to.be.below(1e-6); // and the later steps are right on their inputs
  });

  it('a rotary over all 16 dims instead of 12 (a whole run of it) is a report, not an abort: rope.cos named, partial_rotary_factor said, the rest compared', () => {
    // the candidate: our model with partial_rotary_factor 1 (16 of 16 dims; the factor lists grown to 8)
    const dir = path.join(tmp, 'rot16');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(MODEL)) if (f !== 'config.json') fs.symlinkSync(path.join(MODEL, f), path.join(dir, f));
    const cfg = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
    const rs = cfg.rope_scaling;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      ...cfg, partial_rotary_factor: 1.0,
      rope_scaling: { ...rs, short_factor: [...rs.short_factor, 1.8, 2.1], long_factor: [...rs.long_factor, 60, 80] },
    }));
    const raw = path.join(tmp, 'rot16.raw.safetensors');
    const d = phi4(['dump', dir, '--ids', '1,5,9,300,7,42,17,99,512,3,8', '--out', raw]);
    expect(d.status, show(d)).to.equal(0);
    const cand = foreign(raw, path.join(tmp, 'rot16.safetensors'));
    const r = phi4(['compare', ref, cand, '--no-blame']);
    expect(r.status, show(r)).to.equal(1); // a verdict, not exit 2
    expect(r.stdout).to.match(/rope\.cos +1x11x12 +CANNOT COMPARE: shapes differ: reference \[1,11,12\], candidate \[1,11,16\].*rotates 16 dims where the reference rotates 12: check partial_rotary_factor/);
    // the rotary fit solves the dims from the candidate's own qkv and q_rot
    expect(r.stdout).to.include('rotary fit (layer 0): the candidate rotates 16 dims of each head where the config rotates 12 (partial_rotary_factor)');
    // with the blame (by default: the reference dump records its checkpoint), the blamed step leads
    const b = phi4(['compare', ref, cand]);
    expect(b.status, show(b)).to.equal(1);
    expect(b.stdout).to.match(/^FAIL: per-step blame: layers\.0\.q_rot is the first step whose own error jumps.*rotary fit \(layer 0\): the candidate rotates 16 dims/m);
    expect(r.stdout).to.match(/layers\.0\.qkv .* ok/); // before the rotation nothing differs
    expect(r.stdout).to.match(/layers\.0\.q_rot .* DIVERGES/);
    expect(r.stdout).to.match(/logits .* DIVERGES/);
    expect(r.stdout).to.include('FAIL: first divergence at rope.cos (cannot compare: shapes differ');
  });

  it('a dump of another model is "different checkpoint/config" (not a shape error), on the same ids or on others', () => {
    const ids = '1,5,9,300,7,42,17,99,3,8'; // within phi3-mini-tiny's 512 ids
    const a = path.join(tmp, 'phi4.ids10.safetensors');
    const b = path.join(tmp, 'phi3.ids10.safetensors');
    const c = path.join(tmp, 'phi3.other.safetensors');
    for (const [dir, out, i] of [[MODEL, a, ids], [path.join(ROOT, 'golden', 'models', 'phi3-mini-tiny'), b, ids], [path.join(ROOT, 'golden', 'models', 'phi3-mini-tiny'), c, '4,4,4']]) {
      const d = phi4(['dump', dir, '--ids', i, '--out', out]);
      expect(d.status, show(d)).to.equal(0);
    }
    const r = phi4(['compare', a, b]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/FAIL: different checkpoint\/config: reference \S*phi4-mini-tiny \(config [0-9a-f]+\), candidate \S*phi3-mini-tiny \(config [0-9a-f]+\)/);
    const o = phi4(['compare', a, c]);
    expect(o.status, show(o)).to.equal(2);
    expect(o.stderr).to.include('different checkpoint/config').and.include('and input_ids: the two dumps were run on different inputs');
  });

  it('plain RoPE without the factors is named too', () => {
    const r = phi4(['compare', ref, candidate('none')]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.include('rotated with the none factors').and.include('plain RoPE without the LongRoPE factors (the reference uses the short set)');
  });
});
