// llama.cpp as a compare target: dumps made once by tools/llamacpp/phi4-tapdump.cpp (llama.cpp's
// eval callback, every graph node under its ggml name) and committed in golden/llamacpp/
// (README.md there; remade by golden/llamacpp/make.sh). Each is lined up with the taps by the
// built-in map (src/compare/maps/llamacpp.ts), detected from the names, and judged against transformers'
// golden dumps or our own reference.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { Entries } from '../src/compare/entries.js';
import { compareFiles, fileEntries } from '../src/compare/files.js';
import { cutToRows } from '../src/compare/cut-rows.js';
import { applyMap } from '../src/compare/map.js';
import { configHash, loadConfig } from '../src/model/config.js';
import { BUILTIN_MAPS, detectMap } from '../src/compare/maps/index.js';
import { resolveMap } from '../src/compare/map-file.js';
import { looksLikeLlamaCpp } from '../src/compare/maps/llamacpp.js';
import { windowFromPositions } from '../src/compare/diagnose/sliding-window.js';
import { synthesize } from '../src/checkpoint/synth.js';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../weights/index.js';
import { ROOT, phi4, show } from './cli-helpers.js';

const LLAMA = (f: string) => path.join(ROOT, 'golden', 'llamacpp', f);
const GOLDEN = (c: string) => path.join(ROOT, 'golden', 'dumps', `${c}.safetensors`);
const MODEL = (m: string) => path.join(ROOT, 'golden', 'models', m);

function entriesOf(file: string): Entries {
  const f = SafetensorsFile.open(file);
  const e = fileEntries(f);
  // read everything now, so the file can close
  const out: Entries = new Map();
  for (const [n, x] of e) {
    const data = x.read();
    out.set(n, { shape: x.shape, int: x.int, read: () => data });
  }
  f.close();
  return out;
}

describe('llama.cpp: the built-in map (src/compare/maps/llamacpp.ts)', () => {
  it('is detected from ggml node names, and not from our own taps', () => {
    expect(looksLikeLlamaCpp(entriesOf(LLAMA('phi4-mini-tiny.long.f32.safetensors')).keys())).to.equal(true);
    expect(looksLikeLlamaCpp(entriesOf(GOLDEN('phi4-mini-tiny.long')).keys())).to.equal(false);
    expect(detectMap(entriesOf(GOLDEN('phi4-mini-tiny.short')))).to.equal(null);
  });

  it('renames and reshapes nodes to taps: q_rot permuted to [B,nh,T,d], scores over 256 padded KV cells sliced to [B,nh,T,T]', () => {
    const cand = entriesOf(LLAMA('phi4-mini-tiny.short.n_ctx1024.safetensors'));
    expect(cand.get('kq_soft_max-0')!.shape).to.deep.equal([6, 11, 256]); // the KV cache padded to 256 cells
    expect(cand.get('Qcur-0.rope')!.shape).to.deep.equal([11, 6, 16]);
    const m = applyMap(cand, BUILTIN_MAPS['llama.cpp'], 'candidate');
    expect(m.get('layers.0.attn_probs')!.shape).to.deep.equal([1, 6, 11, 11]);
    expect(m.get('layers.0.q_rot')!.shape).to.deep.equal([1, 6, 11, 16]);
    expect(m.get('layers.0.o_proj')!.shape).to.deep.equal([1, 11, 96]);
    expect(m.get('logits')!.shape).to.deep.equal([1, 11, 1024]);
    // q_rot[0, h, t, i] is Qcur-0.rope[t, h, i]
    const src = cand.get('Qcur-0.rope')!.read();
    const dst = m.get('layers.0.q_rot')!.read();
    expect(dst[(2 * 11 + 5) * 16 + 7]).to.equal(src[(5 * 6 + 2) * 16 + 7]);
    // the padded cells hold no weight: every kept row still sums to 1
    const p = m.get('layers.0.attn_probs')!.read();
    for (let r = 0; r < 6 * 11; r++) {
      let s = 0;
      for (let j = 0; j < 11; j++) s += p[r * 11 + j];
      expect(s).to.be.closeTo(1, 1e-5);
    }
  });
});

describe('llama.cpp: --map resolution and edge shapes', () => {
  it('--map names a built-in map, "none", or a file; not given means detect', () => {
    expect(resolveMap(undefined)).to.equal(undefined);
    expect(resolveMap('none')).to.equal(null);
    expect(resolveMap('llama.cpp')!.name).to.equal('llama.cpp');
    expect(() => resolveMap('no-such-map.json')).to.throw(/--map no-such-map\.json: cannot read/);
  });

  it('a one-token dump (ggml drops axes of size 1) still lands on [1, 1, n] and [1, nh, 1, d]', () => {
    const e = (shape: number[], int = false) => ({ shape, int, read: () => new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    const cand: Entries = new Map([['input_ids', e([1, 1], true)], ['embd', e([96])], ['Qcur-0.rope', e([6, 16])], ['kq_soft_max-0', e([6, 1, 256])],
      ['l_out-0', e([96])], ['kqv_out-0', e([96])], ['result_output', e([1024])]]);
    const m = applyMap(cand, BUILTIN_MAPS['llama.cpp'], 'candidate');
    expect(m.get('embed')!.shape).to.deep.equal([1, 1, 96]);
    expect(m.get('layers.0.q_rot')!.shape).to.deep.equal([1, 6, 1, 16]);
    expect(m.get('layers.0.attn_probs')!.shape).to.deep.equal([1, 6, 1, 1]);
    expect(m.get('logits')!.shape).to.deep.equal([1, 1, 1024]);
  });

  it('cli: --map llama.cpp names the map in the header; --map none turns detection off (exit 2, nothing in common)', () => {
    const cand = LLAMA('phi4-mini-tiny.long.f32.safetensors');
    const r = phi4(['compare', GOLDEN('phi4-mini-tiny.long'), cand, '--map', 'llama.cpp']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.match(/^candidate: .*phi4-mini-tiny\.long\.f32\.safetensors \(tools\/llamacpp\/phi4-tapdump\.cpp: llama\.cpp \S+, ggml [\d.]+, cpu, n_ctx 256, kv cache f32, flash attention off\); map: llama\.cpp$/m);
    const none = phi4(['compare', GOLDEN('phi4-mini-tiny.long'), cand, '--map', 'none']);
    expect(none.status, show(none)).to.equal(2);
    expect(none.stderr).to.include('no tensor name in common');
  });
});

describe('llama.cpp against transformers and phi4-ts (golden/llamacpp/)', function () {
  this.timeout(120_000);
  let tmp: string;
  const ours: Record<string, string> = {};
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-llamacpp-'));
    // our own reference dumps record their checkpoint, so compare can read its config (fingerprints)
    for (const [k, model, inputs] of [['short', 'phi4-mini-tiny', 'phi4-mini-tiny.short'], ['phi3', 'phi3-mini-tiny', 'phi3-mini-tiny.long']]) {
      ours[k] = path.join(tmp, `${k}.safetensors`);
      const r = phi4(['dump', MODEL(model), '--inputs', GOLDEN(inputs), '--out', ours[k]]);
      expect(r.status, show(r)).to.equal(0);
    }
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('f32 GGUF, 48-token prompt: passes the fp32 preset against transformers; unmatched nodes summarised', () => {
    const { report, map } = compareFiles(GOLDEN('phi4-mini-tiny.long'), LLAMA('phi4-mini-tiny.long.f32.safetensors'), { preset: 'fp32' });
    expect(map?.name).to.match(/^llama\.cpp/);
    expect(report.ok, report.diagnosis).to.equal(true);
    const names = report.taps.map((t) => t.name);
    expect(names).to.include.members(['embed', 'layers.0.input_norm', 'layers.0.qkv', 'layers.0.q_rot', 'layers.0.k_rot', 'layers.0.attn_out', 'layers.0.o_proj',
      'layers.0.post_attn_residual', 'layers.0.post_attn_norm', 'layers.0.gate_up', 'layers.0.mlp_act', 'layers.0.mlp_out', 'layers.3.out', 'final_norm', 'logits']);
    expect(report.taps.length).to.equal(21); // embed, layer 0's 12 taps (no attn_probs kept), 3 x (attn_out, out), final_norm, logits
    const worst = Math.max(...report.taps.map((t) => t.relL2));
    expect(worst).to.be.below(1e-5).and.above(0); // a different runtime: not bitwise, within fp32
    // nodes no tap matches (the raw rms_norm, the scaled query, V, the last layer's row selection)
    expect(report.onlyCandidate).to.have.members(['norm-0.rms_norm', 'norm-0.rms_norm#2', 'Qcur-0.scale', 'Vcur-0']);
    expect(report.onlyCandidateSummary.map((s) => s.pattern)).to.include('norm-N.rms_norm').and.include('Qcur-N.scale');
    // without the map nothing lines up: the map is what makes this pass
    expect(() => compareFiles(GOLDEN('phi4-mini-tiny.long'), LLAMA('phi4-mini-tiny.long.f32.safetensors'), { map: null })).to.throw(/no tensor name in common/);
  });

  it('short 11-token prompt at n_ctx 1024: diagnosed by name as long factors used within the original context', () => {
    const r = phi4(['compare', ours.short, LLAMA('phi4-mini-tiny.short.n_ctx1024.safetensors'), '--json']);
    expect(r.status, show(r)).to.equal(1);
    const j = JSON.parse(r.stdout);
    expect(j.firstDivergent).to.equal('layers.0.q_rot');
    expect(j.taps.find((t: { name: string }) => t.name === 'layers.0.qkv').ok).to.equal(true);
    expect(j.ropeFingerprint.candidate).to.equal('long');
    expect(j.ropeFingerprint.reference).to.equal('short');
    const fit = (s: string) => j.ropeFingerprint.fits.find((f: { set: string }) => f.set === s).relL2;
    expect(fit('long')).to.be.below(1e-6);
    expect(fit('short')).to.be.above(1e-2);
    expect(j.diagnosis).to.include('long factors used for a sequence within the original context (T = 11 <= original_max_position_embeddings 32)')
      .and.include('allocated n_ctx of 1024');
    // the scores over 256 padded cells were sliced to the 11 keys
    const text = phi4(['compare', ours.short, LLAMA('phi4-mini-tiny.short.n_ctx1024.safetensors')]);
    expect(text.stdout).to.match(/layers\.0\.attn_probs\s+1x6x11x11 /);
  });

  it('phi3-mini-tiny (sliding window 8): llama.cpp\'s disabled window is named; positions 0-7 agree, 8 on differ', () => {
    const r = phi4(['compare', ours.phi3, LLAMA('phi3-mini-tiny.long.f32.safetensors'), '--json']);
    expect(r.status, show(r)).to.equal(1);
    const j = JSON.parse(r.stdout);
    expect(j.firstDivergent).to.equal('layers.0.attn_probs');
    const probs = j.taps.find((t: { name: string }) => t.name === 'layers.0.attn_probs');
    expect(probs.positions.slice(0, 8).every((x: number) => x < 1e-5)).to.equal(true);
    expect(probs.positions.slice(8).every((x: number) => x > 1e-2)).to.equal(true);
    expect(j.windowFingerprint.ignored).to.equal(true);
    expect(j.windowFingerprint.referenceMass).to.equal(0);
    expect(j.windowFingerprint.candidateMass).to.be.above(0.1);
    expect(j.diagnosis).to.include('the candidate ignores the sliding window (sliding_window 8)');
    // the same model's phi4-ts dump against itself names nothing
    const same = phi4(['compare', ours.phi3, ours.phi3, '--json']);
    expect(JSON.parse(same.stdout).windowFingerprint).to.equal(undefined);
  });

  it('without attention weights, the positions alone name the window (clean before W, over tolerance from W on)', () => {
    const pos = [0, 0, 0, 0, 0, 0, 0, 0, 0.3, 0.2, 0.4];
    expect(windowFromPositions(8, 'layers.0.attn_out', pos, 1e-5)!.text).to.include('probably ignores the sliding window');
    expect(windowFromPositions(8, 'layers.0.attn_out', [0, 0.3, ...pos.slice(2)], 1e-5)).to.equal(null);
    expect(windowFromPositions(8, 'layers.0.attn_out', [...pos.slice(0, 9), 0, 0.1], 1e-5)).to.equal(null);
  });
});

describe('llama.cpp Q8_0 and Q4_K_M: quantization told apart from bugs (--weights-reference)', function () {
  // golden/llamacpp/phi4-mini-q256: K-quants need rows of 256, so a random checkpoint of hidden 256
  // (2 heads of 128 dims, 96 rotary, GQA 2:1, Phi-4-mini's LongRoPE factors), regenerated here by
  // phi4 synth (seed 0) exactly as golden/llamacpp/make.sh made it before llama-quantize.
  this.timeout(180_000);
  const IDS = '250,158,221,187,192,20,234,221';
  let tmp: string;
  const ref: Record<string, string> = {};
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-llamacpp-q-'));
    const ckpt = path.join(tmp, 'phi4-mini-q256');
    synthesize(LLAMA('phi4-mini-q256.config.json'), ckpt, { seed: 0, layers: 2 });
    for (const [k, src] of [['float', ckpt], ['Q8_0', LLAMA('phi4-mini-q256.Q8_0.gguf')], ['Q4_K_M', LLAMA('phi4-mini-q256.Q4_K_M.gguf')]]) {
      ref[k] = path.join(tmp, `${k}.safetensors`);
      const r = phi4(['dump', src, '--ids', IDS, '--out', ref[k]]);
      expect(r.status, show(r)).to.equal(0);
    }
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the GGUFs were quantized from this checkpoint (their exact-math dumps are near the float one)', () => {
    // a checkpoint that is not the one the GGUFs came from would be at rel L2 ~1.4 (independent weights)
    const { report } = compareFiles(ref.float, ref.Q8_0, { preset: 'bf16' });
    expect(report.ok, report.diagnosis).to.equal(true);
    // Phi-4-mini's factors have more digits than the GGUF's F32 tensor: the config hash uses float32 factors
    expect(report.metadata?.sameConfig).to.equal(true);
    const a = loadConfig(path.join(tmp, 'phi4-mini-q256'));
    const b = loadConfig(LLAMA('phi4-mini-q256.Q8_0.gguf'));
    expect(b.rope.longFactor).to.not.deep.equal(a.rope.longFactor);
    expect(b.rope.longFactor!.map((x) => Math.fround(x))).to.deep.equal(a.rope.longFactor!.map((x) => Math.fround(x)));
    expect(configHash(b)).to.equal(configHash(a));
  });

  it('Q4_K_M: fails bf16 against the float reference; with --weights-reference it passes, "weight quantization"', () => {
    const cand = LLAMA('phi4-mini-q256.Q4_K_M.safetensors');
    const plain = phi4(['compare', ref.float, cand, '--preset', 'bf16']);
    expect(plain.status, show(plain)).to.equal(1);
    const r = phi4(['compare', ref.float, cand, '--preset', 'bf16', '--weights-reference', ref.Q4_K_M, '--json']);
    expect(r.status, show(r)).to.equal(0);
    const j = JSON.parse(r.stdout);
    const by = (w: string) => j.quantization.taps.filter((t: { explainedBy: string }) => t.explainedBy === w).length;
    expect(by('the candidate')).to.equal(0);
    expect(by('weight quantization')).to.be.above(10);
    expect(j.quantization.taps.find((t: { name: string }) => t.name === 'logits').explainedBy).to.equal('weight quantization');
    expect(j.diagnosis).to.match(/^the candidate matches the reference run on the same quantized weights .*its error from the float reference is weight quantization at \d+ taps/);
    // the candidate is much nearer the quantized-weights reference than the float one
    const mlp = j.quantization.taps.find((t: { name: string }) => t.name === 'layers.1.mlp_out');
    expect(mlp.fromQuantized).to.be.below(mlp.fromFloat / 4);
  });

  it('--weights-reference takes the .gguf itself: compare dumps it on the reference\'s inputs, same verdict as our dump of it', () => {
    const cand = LLAMA('phi4-mini-q256.Q4_K_M.safetensors');
    const gguf = LLAMA('phi4-mini-q256.Q4_K_M.gguf');
    const viaDump = JSON.parse(phi4(['compare', ref.float, cand, '--preset', 'bf16', '--weights-reference', ref.Q4_K_M, '--json', '--no-blame']).stdout);
    const r = phi4(['compare', ref.float, cand, '--preset', 'bf16', '--weights-reference', gguf]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stderr.match(/^phi4-ts .* · backend /gm)).to.have.length(1); // one backend start for the dump and the blame
    expect(r.stdout).to.include(`quantized-weights reference: our dump of ${gguf} on the reference's inputs, made by compare`);
    expect(r.stdout).to.match(/^PASS: the candidate matches the reference run on the same quantized weights/m);
    const j = JSON.parse(phi4(['compare', ref.float, cand, '--preset', 'bf16', '--weights-reference', gguf, '--json', '--no-blame']).stdout);
    expect(j.quantization.taps.map((t: { fromQuantized: number }) => t.fromQuantized)).to.deep.equal(viaDump.quantization.taps.map((t: { fromQuantized: number }) => t.fromQuantized));
    // a GGUF or a checkpoint where a dump is expected is named as such
    for (const [args, what] of [[[gguf, cand], 'a GGUF checkpoint, not a dump'], [[ref.float, path.join(tmp, 'phi4-mini-q256')], 'a checkpoint directory, not a dump'],
      [[ref.float, path.join(tmp, 'phi4-mini-q256', 'model-00001-of-00002.safetensors')], 'a checkpoint\'s weights']] as [string[], string][]) {
      const bad = phi4(['compare', ...args]);
      expect(bad.status, show(bad)).to.equal(2);
      expect(bad.stderr).to.include(what).and.not.include('header length');
    }
  });

  it('Q8_0: passes with --weights-reference; the Q4_K_M weights are not its weights', () => {
    const cand = LLAMA('phi4-mini-q256.Q8_0.safetensors');
    const r = phi4(['compare', ref.float, cand, '--preset', 'bf16', '--weights-reference', ref.Q8_0]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.include('PASS: the candidate matches the reference run on the same quantized weights');
    const wrong = phi4(['compare', ref.float, cand, '--preset', 'bf16', '--weights-reference', ref.Q4_K_M]);
    expect(wrong.status, show(wrong)).to.equal(1);
    expect(wrong.stdout).to.include('not explained by weight quantization');
    // blamed by default on the quantized weights' own GGUF (the quantized reference records it): nothing
    expect(r.stdout).to.include('per-step blame: every step re-run on the candidate\'s own input agrees to 3.0e-2');
    expect(wrong.stdout).to.match(/^FAIL: per-step blame: layers\.0\.qkv is the first step whose own error jumps/m);
  });

  it('a kernel bug planted in the Q4_K_M run (layer 1\'s SwiGLU 10% off from position 4 on) is caught where it is', () => {
    const buggy = path.join(tmp, 'buggy.safetensors');
    // ffn_swiglu-1 is [T = 8, I = 512]: a tiled kernel whose second tile is wrong
    rewrite(LLAMA('phi4-mini-q256.Q4_K_M.safetensors'), buggy, (n, d) => (n === 'ffn_swiglu-1' ? d.map((x, i) => (i >= 4 * 512 ? x * 1.1 : x)) : d));
    // against the float reference alone the bug is lost in quantization noise: it diverges from the first matmul
    const plain = phi4(['compare', ref.float, buggy, '--preset', 'bf16', '--no-blame']);
    expect(plain.stdout).to.include('FAIL: first divergence at layers.0.qkv');
    const r = phi4(['compare', ref.float, buggy, '--preset', 'bf16', '--weights-reference', ref.Q4_K_M]);
    expect(r.status, show(r)).to.equal(1);
    // re-run on the GGUF's own weights, the blame lands on the planted step
    expect(r.stdout).to.match(/^FAIL: per-step blame: layers\.1\.mlp_act is the first step whose own error jumps/m);
    expect(r.stdout).to.include('not explained by weight quantization').and.include('first divergence at layers.1.mlp_act').and.include('positions 4-7 of 8');
    expect(r.stdout).to.match(/\n  layers\.1\.mlp_act\s+\S+\s+\S+\s+\S+\s+the candidate/);
    expect(r.stdout).to.match(/\n  layers\.1\.gate_up\s+\S+\s+\S+\s+\S+\s+weight quantization/);
  });
});

/** Copies a safetensors file with some float tensors changed. */
function rewrite(src: string, dst: string, change: (name: string, data: Float32Array) => Float32Array): void {
  const f = SafetensorsFile.open(src);
  try {
    const tensors: TensorToWrite[] = f.tensors().map((t) => (t.dtype === 'F32'
      ? { name: t.name, dtype: 'F32', shape: t.shape, data: change(t.name, f.readFloat32(t.name)) }
      : { name: t.name, dtype: 'I32', shape: t.shape, data: f.readInt32(t.name) }));
    writeSafetensors(dst, tensors, f.metadata);
  } finally {
    f.close();
  }
}

describe('llama.cpp --rows: a selected capture against a selected dump (phi4-tapdump --rows, phi4 dump --positions)', function () {
  this.timeout(120_000);
  const ROWS = LLAMA('phi4-mini-tiny.long.rows40-47.f32.safetensors');
  let tmp: string;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-llamacpp-rows-')); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('each node of the 8-row capture is, bit for bit, rows 40-47 of the same node in the full capture', () => {
    const sel = entriesOf(ROWS);
    const full = entriesOf(LLAMA('phi4-mini-tiny.long.f32.safetensors'));
    let checked = 0;
    for (const [name, e] of sel) {
      if (name === 'input_ids' || !full.has(name)) continue;
      const f = full.get(name)!;
      const axis = f.shape.indexOf(48); // the token axis: the first of length T
      expect(axis, name).to.be.at.least(0);
      expect(e.shape, name).to.deep.equal(f.shape.map((n, i) => (i === axis ? 8 : n)));
      const outer = f.shape.slice(0, axis).reduce((a, b) => a * b, 1);
      const inner = f.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const a = e.read();
      const b = f.read();
      for (let o = 0; o < outer; o++) {
        const got = a.subarray(o * 8 * inner, (o + 1) * 8 * inner);
        const want = b.subarray((o * 48 + 40) * inner, (o * 48 + 48) * inner);
        expect(Buffer.compare(Buffer.from(got.buffer, got.byteOffset, got.byteLength), Buffer.from(want.buffer, want.byteOffset, want.byteLength)), name).to.equal(0);
      }
      checked++;
    }
    expect(checked).to.equal(25); // every node but kq_soft_max-0, which the full capture does not keep
    const f = SafetensorsFile.open(ROWS);
    try {
      expect(JSON.parse(f.metadata.selection!).rows).to.deep.equal([40, 48]);
      const ops = JSON.parse(f.metadata.ops!);
      expect(ops['Qcur-0.rope']).to.equal('rope');
      expect(ops['kq_soft_max-0']).to.equal('soft_max');
    } finally {
      f.close();
    }
  });

  it('passes the fp32 preset against phi4 dump --positions 40-47, attention rows over all 48 keys included', () => {
    const ref = path.join(tmp, 'ref.safetensors');
    const r = phi4(['dump', MODEL('phi4-mini-tiny'), '--inputs', GOLDEN('phi4-mini-tiny.long'), '--positions', '40-47', '--out', ref]);
    expect(r.status, show(r)).to.equal(0);
    const { report } = compareFiles(ref, ROWS, { preset: 'fp32' });
    expect(report.ok, report.diagnosis).to.equal(true);
    const probs = report.taps.find((t) => t.name === 'layers.0.attn_probs');
    expect(probs?.shape).to.deep.equal([1, 6, 8, 48]); // 256 padded cells sliced to the 48 keys, 8 query rows
    expect(report.taps.map((t) => t.name)).to.include.members(['layers.0.q_rot', 'layers.0.k_rot', 'layers.3.out', 'logits']);
    expect(Math.max(...report.taps.map((t) => t.relL2))).to.be.below(1e-5).and.above(0);
    // the whole 48-row capture against this 8-row reference: cut to rows 40-47 and compared there,
    // giving exactly the numbers of the 8-row capture (the same rows of the same run)
    const whole = compareFiles(ref, LLAMA('phi4-mini-tiny.long.f32.safetensors'), { preset: 'fp32' });
    expect(whole.labels.candidate).to.include('rows 40-47 of its 48 compared');
    expect(whole.report.ok, whole.report.diagnosis).to.equal(true);
    for (const t of whole.report.taps) expect(t.relL2, t.name).to.equal(report.taps.find((u) => u.name === t.name)!.relL2);
    const cli = phi4(['compare', ref, LLAMA('phi4-mini-tiny.long.f32.safetensors')]);
    expect(cli.status, show(cli)).to.equal(0);
    expect(cli.stdout).to.match(/^PASS: all 21 common taps/m);
  });

  it('the other way round: a whole reference (transformers, 48 rows) is cut to the capture\'s rows 40-47', () => {
    const { report, labels } = compareFiles(GOLDEN('phi4-mini-tiny.long'), ROWS, { preset: 'fp32' });
    expect(labels.reference).to.include('rows 40-47 of its 48 compared');
    expect(report.ok, report.diagnosis).to.equal(true);
    expect(report.taps.find((t) => t.name === 'logits')?.shape).to.deep.equal([1, 8, 1024]);
  });

  it('cuts nothing by guess: another T, or shapes that differ on more than the token axis, stay as they are', () => {
    const e = (shape: number[]): Entries => new Map([['x', { shape, int: false, read: () => new Float32Array(shape.reduce((a, b) => a * b, 1)) }]]);
    expect(cutToRows(e([1, 48, 4]), e([1, 8, 4]), { start: 40, end: 48, T: 48 }).cut).to.deep.equal(['x']);
    expect(cutToRows(e([1, 50, 4]), e([1, 8, 4]), { start: 40, end: 48, T: 48 }).cut).to.deep.equal([]);
    expect(cutToRows(e([1, 48, 5]), e([1, 8, 4]), { start: 40, end: 48, T: 48 }).cut).to.deep.equal([]);
    expect(cutToRows(e([1, 48, 4]), e([1, 9, 4]), { start: 40, end: 48, T: 48 }).cut).to.deep.equal([]);
    // the kept rows are the right ones: [2, 3, 2] cut to rows 1-2 along axis 1
    const w: Entries = new Map([['x', { shape: [2, 3, 2], int: false, read: () => Float32Array.from({ length: 12 }, (_, i) => i) }]]);
    const s: Entries = new Map([['x', { shape: [2, 2, 2], int: false, read: () => new Float32Array(8) }]]);
    expect(Array.from(cutToRows(w, s, { start: 1, end: 3, T: 3 }).entries.get('x')!.read())).to.deep.equal([2, 3, 4, 5, 8, 9, 10, 11]);
  });
});
