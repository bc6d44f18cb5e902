// GGUF container and block decoders against llama.cpp's gguf-py: golden/gguf/quants.gguf was
// written by gguf-py's GGUFWriter and quants.expected.safetensors holds gguf-py's own
// dequantization of every tensor (golden/gguf/make_quants.py, run once).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { GgufFile, SafetensorsFile, WeightsError } from '../weights/index.js';
import { ROOT } from './cli-helpers.js';

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
