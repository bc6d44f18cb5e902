// GGUF container and block decoders against llama.cpp's gguf-py: golden/gguf/quants.gguf was
// written by gguf-py's GGUFWriter and quants.expected.safetensors holds gguf-py's own
// dequantization of every tensor (golden/gguf/make_quants.py, run once).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { GgufFile, SafetensorsFile, WeightsError } from '../weights/index.js';
import { configHash, loadConfig } from '../src/model/config.js';
import { ROOT, phi4, show } from './cli-helpers.js';
import { rewriteDump } from './helpers.js';

const FIX = path.join(ROOT, 'golden', 'gguf', 'quants.gguf');
const EXPECTED = path.join(ROOT, 'golden', 'gguf', 'quants.expected.safetensors');

describe('GGUF reader (weights/gguf.ts)', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-gguf-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads every metadata value type as gguf-py wrote it', () => {
    const g = GgufFile.open(FIX);
    try {
      expect(g.version).to.equal(3);
      const m = g.metadata;
      expect(m.get('general.architecture')).to.equal('fixture');
      expect([m.get('fixture.u8'), m.get('fixture.i8'), m.get('fixture.u16'), m.get('fixture.i16'), m.get('fixture.u32'), m.get('fixture.i32')])
        .to.deep.equal([200, -100, 60000, -30000, 4000000000, -2000000000]);
      expect(m.get('fixture.f32')).to.equal(Math.fround(0.1));
      expect(m.get('fixture.f64')).to.equal(0.1);
      expect(m.get('fixture.u64')).to.equal(2n ** 53n - 1n);
      expect(m.get('fixture.i64')).to.equal(-(2n ** 40n));
      expect(m.get('fixture.bool')).to.equal(true);
      expect(m.get('fixture.str')).to.equal('phi3 \u00e9');
      expect(m.get('fixture.arr_f32')).to.deep.equal([0.5, -1.25, 3]);
      expect(m.get('fixture.arr_str')).to.deep.equal(['a', 'bc']);
    } finally {
      g.close();
    }
  });

  it('dequantizes F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K bit for bit as gguf-py does', () => {
    const g = GgufFile.open(FIX);
    const e = SafetensorsFile.open(EXPECTED);
    try {
      const types = new Set<string>();
      expect(e.tensors().length).to.equal(g.tensors().length);
      for (const t of e.tensors()) {
        const info = g.info(t.name);
        types.add(info.type.name);
        expect(info.shape, t.name).to.deep.equal(t.shape);
        const want = e.readFloat32(t.name);
        const got = g.readFloat32(t.name);
        let bad = -1;
        for (let i = 0; i < want.length && bad < 0; i++) if (!Object.is(got[i], want[i])) bad = i;
        expect(bad, `${t.name} (${info.type.name}) element ${bad}: ${got[bad]} vs ${want[bad]}`).to.equal(-1);
      }
      expect([...types].sort()).to.deep.equal(['BF16', 'F16', 'F32', 'Q4_0', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_0']);
    } finally {
      g.close();
      e.close();
    }
  });

  it('refuses malformed files with one line naming the file and the problem', () => {
    const good = fs.readFileSync(FIX);
    const write = (name: string, b: Buffer) => {
      const p = path.join(tmp, name);
      fs.writeFileSync(p, b);
      return p;
    };
    const refuses = (p: string, re: RegExp) => {
      let err: Error | null = null;
      try {
        GgufFile.open(p).close();
      } catch (e) {
        err = e as Error;
      }
      expect(err, p).to.be.instanceOf(WeightsError);
      expect(err!.message).to.include(p).and.match(re);
      expect(err!.message).not.to.include('\n');
    };
    refuses(write('magic.gguf', Buffer.concat([Buffer.from('GGML'), good.subarray(4)])), /no "GGUF" magic/);
    const v = Buffer.from(good);
    v.writeUInt32LE(7, 4);
    refuses(write('version.gguf', v), /version 7/);
    const many = Buffer.from(good);
    many.writeBigUInt64LE(2n ** 40n, 16); // kv count
    refuses(write('count.gguf', many), /cannot fit/);
    refuses(write('truncated.gguf', good.subarray(0, good.length - 40)), /run past the end of the file/);
    refuses(write('header-cut.gguf', good.subarray(0, 400)), /past the end of the file/);
    // an unsupported type: patch the first tensor's type id (found after its name and dims)
    const t = Buffer.from(good);
    const at = t.indexOf(Buffer.from([3, 0, 0, 0, 0, 0, 0, 0, 0x66, 0x33, 0x32])) + 11; // name "f32" (u64 length 3), then n_dims u32 = 2, ne 2 x u64, type u32
    expect(t.readUInt32LE(at)).to.equal(2);
    t.writeUInt32LE(10, at + 4 + 16); // Q2_K
    refuses(write('type.gguf', t), /f32: type Q2_K is not supported/);
    const dup = Buffer.from(good);
    const k = dup.indexOf(Buffer.from('fixture.i8'));
    dup.write('fixture.u8', k, 'latin1'); // a duplicate key, same length
    refuses(write('dup.gguf', dup), /"fixture\.u8" appears twice/);
    refuses(path.join(tmp, 'missing.gguf'), /cannot open/);
  });
});

describe('GGUF checkpoints: phi4 dump model.gguf, and quantization told apart from bugs', function () {
  // golden/gguf/phi4-mini-tiny.{bf16,q8_0,q4_0}.gguf: golden/models/phi4-mini-tiny converted by
  // golden/gguf/to_gguf.py (gguf-py; Q8_0/Q4_0 blocks by gguf-py's quantizer)
  const IDS = '1,5,9,300,7,42,17,99,512,3,8';
  const gguf = (t: string) => path.join(ROOT, 'golden', 'gguf', `phi4-mini-tiny.${t}.gguf`);
  let tmp: string;
  const dumps: Record<string, string> = {};
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-gguf-model-'));
    for (const [k, ckpt] of [['st', path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny')], ['bf16', gguf('bf16')], ['q4_0', gguf('q4_0')]]) {
      dumps[k] = path.join(tmp, `${k}.safetensors`);
      const r = phi4(['dump', ckpt, '--ids', IDS, '--out', dumps[k]]);
      expect(r.status, show(r)).to.equal(0);
    }
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the config comes from the GGUF metadata and equals the safetensors checkpoint\'s (LongRoPE factors, eps, window)', () => {
    const a = loadConfig(path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny'));
    const b = loadConfig(gguf('q8_0'));
    expect(b).to.deep.equal(a);
    expect(configHash(b)).to.equal(configHash(a));
  });

  it('a bf16 GGUF dumps bit-identical taps to the bf16 safetensors checkpoint; compare passes fp32 at 0 with the same config', () => {
    const r = phi4(['compare', dumps.st, dumps.bf16, '--json']);
    expect(r.status, show(r)).to.equal(0);
    const j = JSON.parse(r.stdout);
    expect(j.taps.length).to.equal(57);
    expect(j.taps.every((t: { relL2: number }) => t.relL2 === 0)).to.equal(true);
    expect(j.metadata.sameConfig).to.equal(true);
  });

  it('Q4_0 weights against float: fails bf16 from the embedding; with --weights-reference the same Q4_0 weights pass, "weight quantization"', () => {
    const plain = phi4(['compare', dumps.st, dumps.q4_0, '--preset', 'bf16']);
    expect(plain.status, show(plain)).to.equal(1);
    // blamed by default on the float checkpoint the reference records: the Q4_0 embedding is its first own error
    expect(plain.stdout).to.match(/^FAIL: per-step blame: embed is the first step whose own error jumps.*; the numbers: first divergence at embed/m);
    // a candidate on the Q4_0 weights with its own float noise (x (1 + 1e-4) everywhere)
    const noisy = path.join(tmp, 'noisy.safetensors');
    rewriteDump(dumps.q4_0, noisy, (_n, d, shape) => ({ data: d instanceof Float32Array ? d.map((x, i) => x * (1 + 1e-4 * ((i % 3) - 1))) : d, shape }), true);
    const r = phi4(['compare', dumps.st, noisy, '--preset', 'bf16', '--weights-reference', dumps.q4_0]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.match(/\n  logits\s+\S+\s+\S+\s+\S+\s+weight quantization/);
    expect(r.stdout).to.match(/PASS: the candidate matches the reference run on the same quantized weights .*error from the float reference is weight quantization at \d+ taps/);
  });

  it('a kernel bug under quantization noise (head 3 of layer 2 scaled 1.5x) is caught and not blamed on quantization', () => {
    const buggy = path.join(tmp, 'buggy.safetensors');
    // attn_out [1, 11, 6 * 16]: head 3 is columns 48..63
    rewriteDump(dumps.q4_0, buggy, (n, d, shape) => ({ data: n === 'layers.2.attn_out' ? (d as Float32Array).map((x, i) => (Math.floor((i % 96) / 16) === 3 ? x * 1.5 : x)) : d, shape }), true);
    const r = phi4(['compare', dumps.st, buggy, '--preset', 'bf16', '--weights-reference', dumps.q4_0]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/layers\.2\.attn_out\s+\S+\s+\S+\s+\S+\s+the candidate/);
    expect(r.stdout).to.include('not explained by weight quantization').and.include('first divergence at layers.2.attn_out').and.include('head 3 of 6');
    // re-run on the Q4_0 weights (the quantized reference's checkpoint), the blame is the planted step
    expect(r.stdout).to.match(/^FAIL: per-step blame: layers\.2\.attn_out is the first step whose own error jumps/m);
  });

  it('a GGUF of another architecture is refused naming the file, nothing written', () => {
    const r = phi4(['dump', path.join(ROOT, 'golden', 'gguf', 'quants.gguf'), '--ids', '1,2', '--out', path.join(tmp, 'x.safetensors')]);
    expect(r.status, show(r)).to.equal(2);
    expect(r.stderr).to.include('quants.gguf').and.include('general.architecture is "fixture"');
    expect(fs.existsSync(path.join(tmp, 'x.safetensors'))).to.equal(false);
  });
});
