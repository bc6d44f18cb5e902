import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import {
  Checkpoint,
  DTYPES,
  DTYPE_SIZES,
  SafetensorsFile,
  SafetensorsWriter,
  WeightsError,
  bf16BitsToFloat32,
  decodeToFloat32,
  decodeToFloat64,
  decodeToInt32,
  encodeElements,
  f16BitsToFloat32,
  f8e4m3BitsToFloat32,
  f8e5m2BitsToFloat32,
  float32ToBf16Bits,
  float32ToF16Bits,
  planSafetensors,
  writeSafetensors,
  type DType,
  type TensorToWrite,
} from '../weights/index.js';

// dist/test/weights.test.js -> project root
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GOLDEN = path.join(ROOT, 'golden');
const PHI4_TINY = path.join(GOLDEN, 'models', 'phi4-mini-tiny');
const PHI3_TINY = path.join(GOLDEN, 'models', 'phi3-mini-tiny');
const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';

/** float32 with the given bit pattern */
function f32(bits: number): number {
  return new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;
}

/** Asserts fn throws a one-line WeightsError whose message contains every string in `parts`. */
function expectWeightsError(fn: () => unknown, ...parts: string[]): WeightsError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a WeightsError').to.be.instanceOf(WeightsError);
  const e = caught as WeightsError;
  expect(e.message).to.not.include('\n');
  for (const p of parts) expect(e.message).to.include(p);
  return e;
}

/** A hand-built safetensors file: u64 header length, header text, data bytes. */
function rawFile(file: string, header: unknown, data: Uint8Array | number, headerLength?: number): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerLength ?? h.length));
  fs.writeFileSync(file, Buffer.concat([prefix, h, d]));
  return file;
}

function f32Entry(n: number, b: number, e: number): object {
  return { dtype: 'F32', shape: [n], data_offsets: [b, e] };
}

describe('weights', function () {
  let tmp: string;
  let counter = 0;
  /** A fresh path inside the temp dir. */
  const fresh = (name: string): string => path.join(tmp, `${counter++}-${name}`);
  /** A fresh empty directory inside the temp dir. */
  const freshDir = (name: string): string => {
    const d = fresh(name);
    fs.mkdirSync(d);
    return d;
  };

  before(function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-weights-'));
  });
  after(function () {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('dtypes', function () {
    it('knows the byte size of every dtype', function () {
      expect(DTYPE_SIZES.BF16).to.equal(2);
      expect(DTYPE_SIZES.F16).to.equal(2);
      expect(DTYPE_SIZES.F32).to.equal(4);
      expect(DTYPE_SIZES.F64).to.equal(8);
      expect(DTYPE_SIZES.I32).to.equal(4);
      expect(DTYPE_SIZES.I64).to.equal(8);
      expect(DTYPE_SIZES.BOOL).to.equal(1);
      expect(DTYPE_SIZES.F8_E4M3).to.equal(1);
      expect(DTYPES).to.include.members(['BF16', 'F16', 'F32', 'F64', 'I32', 'I64', 'U8', 'I8', 'I16', 'U16', 'U32', 'U64']);
    });

    it('decodes bf16 exactly', function () {
      expect(bf16BitsToFloat32(0x3f80)).to.equal(1);
      expect(bf16BitsToFloat32(0xc000)).to.equal(-2);
      expect(bf16BitsToFloat32(0x0001)).to.equal(2 ** -133);
      expect(bf16BitsToFloat32(0x7f80)).to.equal(Infinity);
      expect(Object.is(bf16BitsToFloat32(0x8000), -0)).to.equal(true);
      expect(bf16BitsToFloat32(0x7fc0)).to.be.NaN;
    });

    it('encodes float32 -> bf16 with round-to-nearest-even', function () {
      expect(float32ToBf16Bits(1)).to.equal(0x3f80);
      expect(float32ToBf16Bits(f32(0x3f808000))).to.equal(0x3f80); // 1 + 2^-8: tie, 0x3f80 is even
      expect(float32ToBf16Bits(f32(0x3f818000))).to.equal(0x3f82); // tie between 0x3f81 and 0x3f82: even
      expect(float32ToBf16Bits(f32(0x3f808001))).to.equal(0x3f81); // just above the tie
      expect(float32ToBf16Bits(f32(0x3f807fff))).to.equal(0x3f80); // just below the tie
      expect(float32ToBf16Bits(f32(0xbf818000))).to.equal(0xbf82); // negative tie
      expect(float32ToBf16Bits(f32(0x7f7fffff))).to.equal(0x7f80); // max float rounds to inf
      expect(float32ToBf16Bits(-0)).to.equal(0x8000);
      expect(float32ToBf16Bits(Infinity)).to.equal(0x7f80);
      const nan = float32ToBf16Bits(NaN);
      expect(bf16BitsToFloat32(nan)).to.be.NaN;
      // NaN whose payload sits only in the low 16 bits must stay NaN (not become inf), sign kept
      const bits = new Uint32Array([0x7f800001, 0xff800001]);
      const enc = new Uint16Array(encodeElements(new Float32Array(bits.buffer), 'BF16').slice().buffer);
      expect(bf16BitsToFloat32(enc[0]!)).to.be.NaN;
      expect(enc[1]! & 0x8000).to.equal(0x8000);
      expect(bf16BitsToFloat32(enc[1]!)).to.be.NaN;
    });

    it('round-trips all 65536 bf16 and f16 patterns (non-NaN) through float32', function () {
      const bad: string[] = [];
      for (let h = 0; h < 65536; h++) {
        const b = bf16BitsToFloat32(h);
        if (!Number.isNaN(b) && float32ToBf16Bits(b) !== h) bad.push(`bf16 0x${h.toString(16)}`);
        const f = f16BitsToFloat32(h);
        if (Number.isNaN(f) ? !Number.isNaN(f16BitsToFloat32(float32ToF16Bits(f))) : float32ToF16Bits(f) !== h) {
          bad.push(`f16 0x${h.toString(16)}`);
        }
      }
      expect(bad).to.deep.equal([]);
    });

    it('decodes and encodes f16 subnormals, limits and ties', function () {
      expect(f16BitsToFloat32(0x0001)).to.equal(2 ** -24);
      expect(f16BitsToFloat32(0x03ff)).to.equal(1023 * 2 ** -24);
      expect(f16BitsToFloat32(0x0400)).to.equal(2 ** -14);
      expect(f16BitsToFloat32(0x7bff)).to.equal(65504);
      expect(f16BitsToFloat32(0x7c00)).to.equal(Infinity);
      expect(f16BitsToFloat32(0xfc00)).to.equal(-Infinity);
      expect(f16BitsToFloat32(0x7e00)).to.be.NaN;
      expect(Object.is(f16BitsToFloat32(0x8000), -0)).to.equal(true);
      expect(float32ToF16Bits(2 ** -24)).to.equal(0x0001);
      expect(float32ToF16Bits(2 ** -25)).to.equal(0x0000); // tie -> even (zero)
      expect(float32ToF16Bits(1.5 * 2 ** -25)).to.equal(0x0001);
      expect(float32ToF16Bits(3 * 2 ** -25)).to.equal(0x0002); // 1.5 ulp: tie -> even
      expect(float32ToF16Bits(2 ** -14 - 2 ** -26)).to.equal(0x0400); // rounds up into the normals
      expect(float32ToF16Bits(2 ** -30)).to.equal(0x0000);
      expect(float32ToF16Bits(-(2 ** -24))).to.equal(0x8001);
      expect(float32ToF16Bits(65519)).to.equal(0x7bff);
      expect(float32ToF16Bits(65520)).to.equal(0x7c00); // tie at the top rounds to inf
      expect(float32ToF16Bits(1e6)).to.equal(0x7c00);
      expect(float32ToF16Bits(1 + 2 ** -11)).to.equal(0x3c00);
      expect(float32ToF16Bits(1 + 3 * 2 ** -11)).to.equal(0x3c02);
      expect(f16BitsToFloat32(float32ToF16Bits(NaN))).to.be.NaN;
    });

    it('decodes float8 formats', function () {
      expect(f8e4m3BitsToFloat32(0x7e)).to.equal(448);
      expect(f8e4m3BitsToFloat32(0x7f)).to.be.NaN;
      expect(f8e4m3BitsToFloat32(0x01)).to.equal(2 ** -9);
      expect(f8e4m3BitsToFloat32(0x38)).to.equal(1);
      expect(f8e4m3BitsToFloat32(0xb8)).to.equal(-1);
      expect(f8e5m2BitsToFloat32(0x7b)).to.equal(57344);
      expect(f8e5m2BitsToFloat32(0x3c)).to.equal(1);
      expect(f8e5m2BitsToFloat32(0x7c)).to.equal(Infinity);
    });

    it('decodes from unaligned byte offsets', function () {
      const backing = new Uint8Array(1 + 8 * 3);
      const dv = new DataView(backing.buffer);
      [1.5, -2.25, 1e-300].forEach((v, i) => dv.setFloat64(1 + 8 * i, v, true));
      const bytes = backing.subarray(1);
      expect(Array.from(decodeToFloat64('F64', bytes))).to.deep.equal([1.5, -2.25, 1e-300]);
      expect(Array.from(decodeToFloat32('F64', bytes))).to.deep.equal([1.5, -2.25, 0]);
      const b16 = new Uint8Array(5);
      b16.set([0x80, 0x3f, 0x00, 0xc0], 1); // bf16 1, -2 at offset 1
      expect(Array.from(decodeToFloat32('BF16', b16.subarray(1)))).to.deep.equal([1, -2]);
      const i32 = new Uint8Array(9);
      new DataView(i32.buffer).setInt32(1, -7, true);
      new DataView(i32.buffer).setInt32(5, 123456789, true);
      expect(Array.from(decodeToInt32('I32', i32.subarray(1)))).to.deep.equal([-7, 123456789]);
    });

    it('range-checks I64 -> int32 and I64 -> float64', function () {
      const ok = new Uint8Array(new BigInt64Array([-1n, 2147483647n, -2147483648n]).buffer);
      expect(Array.from(decodeToInt32('I64', ok))).to.deep.equal([-1, 2147483647, -2147483648]);
      const big = new Uint8Array(new BigInt64Array([0n, 2147483648n]).buffer);
      expect(() => decodeToInt32('I64', big)).to.throw(RangeError, /element 1 = 2147483648/);
      const low = new Uint8Array(new BigInt64Array([-2147483649n]).buffer);
      expect(() => decodeToInt32('I64', low)).to.throw(RangeError, /-2147483649/);
      const safe = new Uint8Array(new BigInt64Array([2n ** 53n - 1n, -(2n ** 53n - 1n)]).buffer);
      expect(Array.from(decodeToFloat64('I64', safe))).to.deep.equal([2 ** 53 - 1, -(2 ** 53 - 1)]);
      const unsafe = new Uint8Array(new BigInt64Array([2n ** 53n + 1n]).buffer);
      expect(() => decodeToFloat64('I64', unsafe)).to.throw(RangeError, /9007199254740993/);
    });

    it('writes into a given output at an offset and rejects partial elements', function () {
      const out = new Float32Array(4);
      decodeToFloat32('BF16', new Uint8Array([0x80, 0x3f, 0x00, 0x40]), out, 2);
      expect(Array.from(out)).to.deep.equal([0, 0, 1, 2]);
      expect(() => decodeToFloat32('F32', new Uint8Array(6))).to.throw(RangeError, /whole number/);
      expect(() => decodeToFloat32('F32', new Uint8Array(8), new Float32Array(1))).to.throw(RangeError);
    });
  });

  describe('writer + reader round trip', function () {
    const f32vals = new Float32Array([0, -0, 1, -1.5, Math.PI, 1e-40, 3.4e38, -Infinity, NaN]);
    const f64vals = new Float64Array([0.1, -1e300, 2 ** -1074, Math.E]);
    // bf16 hand-picked: exact, tie-to-even down, tie-to-even up, above tie, max -> inf
    const bf16in = new Float32Array([1, f32(0x3f808000), f32(0x3f818000), f32(0x3f808001), f32(0x7f7fffff), -2.5]);
    const bf16bits = [0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0xc020];
    const f16in = new Float32Array([2 ** -24, 3 * 2 ** -25, 2 ** -14, 65504, 1e5, -0.333251953125, 0.1]);
    const f16bits = [0x0001, 0x0002, 0x0400, 0x7bff, 0x7c00, 0xb555, 0x2e66];
    const i32vals = new Int32Array([0, -1, 2147483647, -2147483648, 42]);
    const rawBy: Partial<Record<DType, Uint8Array>> = {
      U8: new Uint8Array([0, 1, 255]),
      I8: new Uint8Array([0x80, 0xff, 0x7f]),
      BOOL: new Uint8Array([1, 0, 1]),
      F8_E4M3: new Uint8Array([0x38, 0x7e, 0x01]),
      F8_E5M2: new Uint8Array([0x3c, 0x7b, 0xbc]),
      I16: new Uint8Array([0x00, 0x80, 0xff, 0xff, 0x34, 0x12]),
      U16: new Uint8Array([0xff, 0xff, 0x01, 0x00, 0x34, 0x12]),
      U32: new Uint8Array([0xff, 0xff, 0xff, 0x7f, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]),
      U64: new Uint8Array(new BigUint64Array([1n, 2n ** 40n, 0n]).buffer),
    };
    let file: string;
    let tensors: TensorToWrite[];

    before(function () {
      file = fresh('roundtrip.safetensors');
      tensors = [
        { name: 'f32', dtype: 'F32', shape: [3, 3], data: f32vals },
        { name: 'f64', dtype: 'F64', shape: [2, 2], data: f64vals },
        { name: 'f32_as_f64', dtype: 'F64', shape: [2], data: new Float32Array([0.1, -3]) },
        { name: 'f64_as_f32', dtype: 'F32', shape: [2], data: new Float64Array([0.1, 1e300]) },
        { name: 'bf16', dtype: 'BF16', shape: [6], data: bf16in },
        { name: 'bf16_bits', dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc000]) },
        { name: 'f16', dtype: 'F16', shape: [7], data: f16in },
        { name: 'i32', dtype: 'I32', shape: [5], data: i32vals },
        { name: 'i64_from_i32', dtype: 'I64', shape: [5], data: i32vals },
        { name: 'i64_big', dtype: 'I64', shape: [3], data: new BigInt64Array([-5n, 2n ** 40n, 2n ** 60n]) },
        { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([7]) },
        { name: 'empty', dtype: 'BF16', shape: [0, 4], data: new Float32Array(0) },
        ...Object.entries(rawBy).map(([dt, data]) => ({
          name: `raw_${dt}`, dtype: dt as DType, shape: [3], data: data!,
        })),
      ];
      writeSafetensors(file, tensors, { case: 'roundtrip', note: 'ünïcødé' });
    });

    it('writes a header padded with spaces to a multiple of 8, tensors contiguous in the given order', function () {
      const bytes = fs.readFileSync(file);
      const n = Number(bytes.readBigUInt64LE(0));
      expect(n % 8).to.equal(0);
      const text = bytes.subarray(8, 8 + n).toString('utf8');
      expect(text.startsWith('{"__metadata__":')).to.equal(true);
      expect(text.trimEnd().endsWith('}')).to.equal(true);
      expect(/^ *$/.test(text.slice(text.trimEnd().length))).to.equal(true);
      const layout = planSafetensors(tensors, { case: 'roundtrip', note: 'ünïcødé' });
      expect(bytes.length).to.equal(layout.fileSize);
      const sf = SafetensorsFile.open(file);
      try {
        expect(sf.names()).to.deep.equal(tensors.map((t) => t.name));
        expect(sf.metadata).to.deep.equal({ case: 'roundtrip', note: 'ünïcødé' });
        expect(sf.headerLength).to.equal(n);
        for (const t of tensors) {
          const info = sf.info(t.name);
          expect(info.dtype).to.equal(t.dtype);
          expect(info.shape).to.deep.equal(t.shape);
          expect(info.file).to.equal(file);
          expect(info.end - info.begin).to.equal(info.byteLength);
          expect(Buffer.from(sf.readBytes(t.name)).equals(bytes.subarray(info.begin, info.end))).to.equal(true);
        }
      } finally {
        sf.close();
      }
    });

    it('round-trips F32, F64 and the F32<->F64 conversions', function () {
      const sf = SafetensorsFile.open(file);
      try {
        const a = sf.readFloat32('f32');
        expect(Array.from(a.subarray(0, 8))).to.deep.equal(Array.from(f32vals.subarray(0, 8)));
        expect(Object.is(a[1], -0)).to.equal(true);
        expect(a[8]).to.be.NaN;
        expect(Array.from(sf.readFloat64('f64'))).to.deep.equal(Array.from(f64vals));
        expect(Array.from(sf.readFloat32('f64'))).to.deep.equal(Array.from(f64vals, Math.fround));
        expect(Array.from(sf.readFloat64('f32_as_f64'))).to.deep.equal([Math.fround(0.1), -3]);
        expect(Array.from(sf.readFloat64('f64_as_f32'))).to.deep.equal([Math.fround(0.1), Infinity]);
        expect(Array.from(sf.readFloat64('f32').subarray(0, 8))).to.deep.equal(Array.from(f32vals.subarray(0, 8)));
        expect(Array.from(sf.readFloat32('scalar'))).to.deep.equal([7]);
        expect(sf.info('scalar').shape).to.deep.equal([]);
      } finally {
        sf.close();
      }
    });

    it('round-trips BF16 with round-to-nearest-even and F16 including subnormals', function () {
      const sf = SafetensorsFile.open(file);
      try {
        const bits = new Uint16Array(sf.readBytes('bf16').buffer);
        expect(Array.from(bits)).to.deep.equal(bf16bits);
        expect(Array.from(sf.readFloat32('bf16'))).to.deep.equal(bf16bits.map(bf16BitsToFloat32));
        expect(Array.from(sf.readFloat32('bf16_bits'))).to.deep.equal([1, -2]);
        const hbits = new Uint16Array(sf.readBytes('f16').buffer);
        expect(Array.from(hbits)).to.deep.equal(f16bits);
        const h = sf.readFloat32('f16');
        expect(h[0]).to.equal(2 ** -24);
        expect(h[1]).to.equal(2 ** -23);
        expect(h[4]).to.equal(Infinity);
        expect(Array.from(sf.readFloat64('f16'))).to.deep.equal(f16bits.map(f16BitsToFloat32));
        expect(sf.readFloat32('empty').length).to.equal(0);
        expect(sf.info('empty').byteLength).to.equal(0);
      } finally {
        sf.close();
      }
    });

    it('round-trips I32 and I64, with a range error for I64 values outside int32', function () {
      const sf = SafetensorsFile.open(file);
      try {
        expect(Array.from(sf.readInt32('i32'))).to.deep.equal(Array.from(i32vals));
        expect(Array.from(sf.readInt32('i64_from_i32'))).to.deep.equal(Array.from(i32vals));
        expect(Array.from(sf.readFloat64('i64_from_i32'))).to.deep.equal(Array.from(i32vals));
        expect(Array.from(new BigInt64Array(sf.readBytes('i64_big').buffer))).to.deep.equal([-5n, 2n ** 40n, 2n ** 60n]);
        expectWeightsError(() => sf.readInt32('i64_big'), path.basename(file), '"i64_big"', 'I64', 'element 1', '1099511627776', 'int32');
        expectWeightsError(() => sf.readFloat64('i64_big'), path.basename(file), '"i64_big"', 'element 2');
        expect(Array.from(sf.readFloat32('i64_big'))).to.deep.equal([-5, 2 ** 40, 2 ** 60]);
        // a float tensor holding a non-integer is refused by readInt32
        expectWeightsError(() => sf.readInt32('f32_as_f64'), '"f32_as_f64"', 'F64', 'not an integer');
      } finally {
        sf.close();
      }
    });

    it('reads floats as int32 only when they are exact integers', function () {
      const p = fresh('intfloats.safetensors');
      writeSafetensors(p, [
        { name: 'ids', dtype: 'F32', shape: [3], data: new Float32Array([3, -4, 1023]) },
        { name: 'frac', dtype: 'F32', shape: [2], data: new Float32Array([1, 0.5]) },
      ]);
      const sf = SafetensorsFile.open(p);
      try {
        expect(Array.from(sf.readInt32('ids'))).to.deep.equal([3, -4, 1023]);
        expectWeightsError(() => sf.readInt32('frac'), path.basename(p), '"frac"', 'element 1 = 0.5');
      } finally {
        sf.close();
      }
    });

    it('round-trips raw bytes of the other dtypes and converts them', function () {
      const sf = SafetensorsFile.open(file);
      try {
        for (const [dt, data] of Object.entries(rawBy)) {
          expect(Array.from(sf.readBytes(`raw_${dt}`)), dt).to.deep.equal(Array.from(data!));
        }
        expect(Array.from(sf.readInt32('raw_U8'))).to.deep.equal([0, 1, 255]);
        expect(Array.from(sf.readInt32('raw_I8'))).to.deep.equal([-128, -1, 127]);
        expect(Array.from(sf.readInt32('raw_BOOL'))).to.deep.equal([1, 0, 1]);
        expect(Array.from(sf.readFloat32('raw_F8_E4M3'))).to.deep.equal([1, 448, 2 ** -9]);
        expect(Array.from(sf.readFloat32('raw_F8_E5M2'))).to.deep.equal([1, 57344, -1]);
        expect(Array.from(sf.readInt32('raw_I16'))).to.deep.equal([-32768, -1, 0x1234]);
        expect(Array.from(sf.readFloat32('raw_U16'))).to.deep.equal([65535, 1, 0x1234]);
        expect(Array.from(sf.readInt32('raw_U32'))).to.deep.equal([0x7fffffff, 1, 2]);
        expect(Array.from(sf.readFloat64('raw_U64'))).to.deep.equal([1, 2 ** 40, 0]);
        expectWeightsError(() => sf.readInt32('raw_U64'), '"raw_U64"', 'int32');
      } finally {
        sf.close();
      }
    });

    it('reads and decodes in several chunks when tensors exceed the read chunk', function () {
      const p = fresh('chunks.safetensors');
      const n = 1001;
      const vals = Float32Array.from({ length: n }, (_, i) => (i - 500) / 7);
      const ids = Int32Array.from({ length: n }, (_, i) => i * 3 - 1000);
      const oldRead = SafetensorsFile.readChunkBytes;
      const oldEnc = SafetensorsWriter.encodeChunkElements;
      try {
        SafetensorsWriter.encodeChunkElements = 10;
        writeSafetensors(p, [
          { name: 'bf16', dtype: 'BF16', shape: [n], data: vals },
          { name: 'f16', dtype: 'F16', shape: [n], data: vals },
          { name: 'f64', dtype: 'F64', shape: [n], data: vals },
          { name: 'i64', dtype: 'I64', shape: [n], data: ids },
        ]);
        SafetensorsWriter.encodeChunkElements = oldEnc;
        const whole = SafetensorsFile.open(p);
        const expected = {
          bf16: whole.readFloat32('bf16'), f16: whole.readFloat32('f16'), f64: whole.readFloat64('f64'),
          i64: whole.readInt32('i64'), bytes: whole.readBytes('f64'),
        };
        whole.close();
        SafetensorsFile.readChunkBytes = 24;
        const sf = SafetensorsFile.open(p);
        try {
          expect(Array.from(sf.readFloat32('bf16'))).to.deep.equal(Array.from(expected.bf16));
          expect(Array.from(sf.readFloat32('bf16'))).to.deep.equal(Array.from(vals, (v) => bf16BitsToFloat32(float32ToBf16Bits(v))));
          expect(Array.from(sf.readFloat32('f16'))).to.deep.equal(Array.from(expected.f16));
          expect(Array.from(sf.readFloat64('f64'))).to.deep.equal(Array.from(vals));
          expect(Array.from(sf.readFloat64('f64'))).to.deep.equal(Array.from(expected.f64));
          expect(Array.from(sf.readInt32('i64'))).to.deep.equal(Array.from(ids));
          expect(Array.from(expected.i64)).to.deep.equal(Array.from(ids));
          expect(Buffer.from(sf.readBytes('f64')).equals(Buffer.from(expected.bytes))).to.equal(true);
        } finally {
          sf.close();
        }
      } finally {
        SafetensorsFile.readChunkBytes = oldRead;
        SafetensorsWriter.encodeChunkElements = oldEnc;
      }
    });

    it('streams a tensor written in several pieces to the same bytes as a one-shot write', function () {
      const specs = [
        { name: 'a', dtype: 'BF16' as DType, shape: [2, 3] },
        { name: 'z', dtype: 'F32' as DType, shape: [0] },
        { name: 'b', dtype: 'I64' as DType, shape: [3] },
      ];
      const a = new Float32Array([1, 2, 3, 4, 5, 6]);
      const b = new Int32Array([-1, 0, 7]);
      const oneShot = fresh('oneshot.safetensors');
      writeSafetensors(oneShot, [
        { ...specs[0]!, data: a }, { ...specs[1]!, data: new Float32Array(0) }, { ...specs[2]!, data: b },
      ], { k: 'v' });
      const streamed = fresh('streamed.safetensors');
      const w = SafetensorsWriter.create(streamed, specs, { k: 'v' });
      expect(w.nextTensor).to.equal('a');
      w.write('a', a.subarray(0, 2));
      w.write('a', a.subarray(2, 5));
      w.write('a', a.subarray(5));
      expect(w.nextTensor).to.equal('b'); // the empty tensor needs no write
      const bBytes = encodeElements(b, 'I64');
      w.write('b', bBytes.subarray(0, 5)); // raw bytes may split an element
      w.write('b', bBytes.subarray(5));
      expect(w.nextTensor).to.equal(undefined);
      expect(fs.existsSync(streamed)).to.equal(false); // nothing at the target before finish
      w.finish();
      expect(fs.readFileSync(streamed).equals(fs.readFileSync(oneShot))).to.equal(true);
      expect(fs.readdirSync(path.dirname(streamed)).filter((f) => f.includes('.tmp-'))).to.deep.equal([]);
    });
  });

  describe('golden checkpoints and dumps', function () {
    it('opens the sharded phi4-mini-tiny checkpoint through its index', function () {
      const ck = Checkpoint.open(PHI4_TINY);
      try {
        expect(ck.dir).to.equal(PHI4_TINY);
        expect(ck.indexPath).to.equal(path.join(PHI4_TINY, 'model.safetensors.index.json'));
        expect(ck.files.map((f) => path.basename(f))).to.deep.equal([SHARD1, SHARD2]);
        const index = JSON.parse(fs.readFileSync(ck.indexPath!, 'utf8'));
        expect(ck.names().slice().sort()).to.deep.equal(Object.keys(index.weight_map).sort());
        const info = ck.info('model.embed_tokens.weight');
        expect(info.shape).to.deep.equal([1024, 96]);
        expect(info.dtype).to.equal('BF16');
        expect(info.byteLength).to.equal(1024 * 96 * 2);
        expect(path.basename(info.file)).to.equal(SHARD1);
        expect(ck.indexTotalSize).to.equal(984768);
        expect(ck.totalBytes).to.equal(ck.indexTotalSize);
        expect(ck.totalBytes).to.equal(ck.names().reduce((s, n) => s + ck.info(n).byteLength, 0));
        expect(ck.has('model.layers.3.mlp.down_proj.weight')).to.equal(true);
        expect(path.basename(ck.info('model.layers.3.mlp.down_proj.weight').file)).to.equal(SHARD2);
        expect(ck.has('lm_head.weight')).to.equal(false); // tied embeddings

        const emb = ck.readFloat32('model.embed_tokens.weight');
        expect(emb.length).to.equal(1024 * 96);
        expect(Array.from(emb.subarray(0, 4))).to.deep.equal([-0.51171875, 1.03125, -0.353515625, 0.123046875]);
        // against an independent, per-element decode of the raw bytes
        const raw = ck.readBytes('model.embed_tokens.weight');
        const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        for (let i = 0; i < emb.length; i += 97) expect(emb[i]).to.equal(bf16BitsToFloat32(dv.getUint16(2 * i, true)));
        expect(Array.from(ck.readFloat64('model.layers.0.input_layernorm.weight')))
          .to.deep.equal(Array.from(ck.readFloat32('model.layers.0.input_layernorm.weight')));
      } finally {
        ck.close();
      }
    });

    it('opens a checkpoint from the index path or from one shard file', function () {
      const viaIndex = Checkpoint.open(path.join(PHI4_TINY, 'model.safetensors.index.json'));
      expect(viaIndex.files).to.have.length(2);
      viaIndex.close();
      const viaShard = Checkpoint.open(path.join(PHI4_TINY, SHARD2));
      expect(viaShard.files).to.have.length(1);
      expect(viaShard.indexTotalSize).to.equal(undefined);
      expect(viaShard.has('model.embed_tokens.weight')).to.equal(false);
      viaShard.close();
    });

    it('opens the single-file phi3-mini-tiny checkpoint', function () {
      const ck = Checkpoint.open(PHI3_TINY);
      try {
        expect(ck.files).to.deep.equal([path.join(PHI3_TINY, 'model.safetensors')]);
        expect(ck.indexPath).to.equal(undefined);
        expect(ck.indexTotalSize).to.equal(undefined);
        expect(ck.names()).to.have.length(21);
        expect(ck.info('lm_head.weight')).to.include({ dtype: 'BF16' });
        expect(ck.info('model.embed_tokens.weight').shape).to.deep.equal([512, 64]);
        expect(ck.totalBytes).to.equal(fs.statSync(ck.files[0]!).size - 8 - SafetensorsFile.open(ck.files[0]!).headerLength);
        const names = ck.names();
        const begins = names.map((n) => ck.info(n).begin);
        expect(begins).to.deep.equal(begins.slice().sort((x, y) => x - y)); // data-offset order
      } finally {
        ck.close();
      }
      const sf = SafetensorsFile.open(path.join(PHI3_TINY, 'model.safetensors'));
      expect(sf.metadata).to.deep.equal({ format: 'pt' });
      sf.close();
    });

    it('reads golden dumps: F32 and I32 tensors and __metadata__', function () {
      const sf = SafetensorsFile.open(path.join(GOLDEN, 'dumps', 'phi4-mini-tiny.short.safetensors'));
      try {
        expect(sf.metadata['case']).to.equal('phi4-mini-tiny.short');
        expect(JSON.parse(sf.metadata['json']!)).to.include({ model: 'phi4-mini-tiny' });
        expect(sf.info('input_ids')).to.include({ dtype: 'I32' });
        expect(sf.info('input_ids').shape).to.deep.equal([1, 11]);
        expect(Array.from(sf.readInt32('input_ids'))).to.deep.equal([270, 160, 863, 135, 893, 134, 393, 350, 885, 826, 658]);
        expect(sf.info('logits').shape).to.deep.equal([1, 11, 1024]);
        const embed = sf.readFloat32('embed');
        expect(embed.length).to.equal(11 * 96);
        // embed[0, 0, :] is row 270 of the embedding table of the checkpoint
        const ck = Checkpoint.open(PHI4_TINY);
        const table = ck.readFloat32('model.embed_tokens.weight');
        ck.close();
        expect(Array.from(embed.subarray(0, 96))).to.deep.equal(Array.from(table.subarray(270 * 96, 271 * 96)));
      } finally {
        sf.close();
      }
    });

    it('reads golden F64 dumps exactly', function () {
      const f64 = SafetensorsFile.open(path.join(GOLDEN, 'dumps', 'phi4-mini-tiny.short.f64.safetensors'));
      const f32 = SafetensorsFile.open(path.join(GOLDEN, 'dumps', 'phi4-mini-tiny.short.safetensors'));
      try {
        expect(f64.metadata['case']).to.equal('phi4-mini-tiny.short.f64');
        expect(f64.info('logits')).to.include({ dtype: 'F64' });
        const e64 = f64.readFloat64('embed');
        expect(e64[0]).to.equal(-0.97265625);
        expect(e64[1]).to.equal(0.259765625);
        expect(Array.from(f64.readFloat32('embed'))).to.deep.equal(Array.from(e64, Math.fround));
        const l64 = f64.readFloat64('logits');
        const l32 = f32.readFloat32('logits');
        let num = 0;
        let den = 0;
        for (let i = 0; i < l64.length; i++) {
          num += (l64[i]! - l32[i]!) ** 2;
          den += l64[i]! ** 2;
        }
        expect(Math.sqrt(num / den)).to.be.below(1e-3);
      } finally {
        f64.close();
        f32.close();
      }
    });

    it('opens every golden dump and model file and reads every tensor', function () {
      const files = [
        ...fs.readdirSync(path.join(GOLDEN, 'dumps')).map((f) => path.join(GOLDEN, 'dumps', f)),
        ...fs.readdirSync(path.join(GOLDEN, 'models')).flatMap((d) =>
          fs.readdirSync(path.join(GOLDEN, 'models', d)).filter((f) => f.endsWith('.safetensors'))
            .map((f) => path.join(GOLDEN, 'models', d, f))),
      ].filter((f) => f.endsWith('.safetensors'));
      expect(files.length).to.be.at.least(12);
      for (const f of files) {
        const sf = SafetensorsFile.open(f);
        try {
          expect(sf.totalBytes).to.equal(fs.statSync(f).size - 8 - sf.headerLength);
          for (const n of sf.names()) {
            const info = sf.info(n);
            if (info.dtype === 'I32') sf.readInt32(n);
            else expect(sf.readFloat32(n).length).to.equal(info.shape.reduce((a, b) => a * b, 1));
          }
        } finally {
          sf.close();
        }
      }
      for (const d of fs.readdirSync(path.join(GOLDEN, 'models'))) {
        const ck = Checkpoint.open(path.join(GOLDEN, 'models', d));
        if (ck.indexTotalSize !== undefined) expect(ck.totalBytes, d).to.equal(ck.indexTotalSize);
        ck.close();
      }
    });
  });

  describe('bad inputs', function () {
    it('rejects a truncated shard, naming the file and the tensor past the end', function () {
      const dir = freshDir('truncated');
      const src = fs.readFileSync(path.join(PHI4_TINY, SHARD1));
      fs.writeFileSync(path.join(dir, SHARD1), src.subarray(0, src.length - 100));
      fs.copyFileSync(path.join(PHI4_TINY, SHARD2), path.join(dir, SHARD2));
      fs.copyFileSync(path.join(PHI4_TINY, 'model.safetensors.index.json'), path.join(dir, 'model.safetensors.index.json'));
      const good = SafetensorsFile.open(path.join(PHI4_TINY, SHARD1));
      const last = good.names()[good.names().length - 1]!;
      const dataLen = good.totalBytes;
      good.close();
      expectWeightsError(() => SafetensorsFile.open(path.join(dir, SHARD1)), SHARD1, 'truncated',
        `expected ${dataLen} bytes of data, file has ${dataLen - 100}`, `"${last}"`, 'end past the data section');
      expectWeightsError(() => Checkpoint.open(dir), SHARD1, 'truncated', `"${last}"`);
    });

    it('readRange reads part of a tensor where the caller keeps it, and refuses bytes outside it', function () {
      const ck = Checkpoint.open(PHI4_TINY);
      try {
        const name = 'model.layers.1.mlp.down_proj.weight';
        const whole = ck.readBytes(name);
        const part = new Uint8Array(100);
        ck.readRange(name, 37, part);
        expect(Array.from(part)).to.deep.equal(Array.from(whole.subarray(37, 137)));
        expectWeightsError(() => ck.readRange(name, whole.length - 99, part), SHARD1.slice(0, 6), `"${name}"`, `bytes [${whole.length - 99}, ${whole.length + 1}) are outside its ${whole.length}`);
        expectWeightsError(() => ck.readRange(name, -1, part), `"${name}"`, 'outside');
      } finally {
        ck.close();
      }
    });

    it('reports a short read when the file shrinks after open', function () {
      const p = fresh('shrinks.safetensors');
      fs.copyFileSync(path.join(PHI3_TINY, 'model.safetensors'), p);
      const sf = SafetensorsFile.open(p);
      try {
        const last = sf.names()[sf.names().length - 1]!;
        fs.truncateSync(p, fs.statSync(p).size - 10);
        expectWeightsError(() => sf.readFloat32(last), path.basename(p), `"${last}"`, 'short read', 'truncated');
        expectWeightsError(() => sf.readBytes(last), path.basename(p), `"${last}"`, 'short read');
      } finally {
        sf.close();
      }
      expectWeightsError(() => sf.readBytes('model.embed_tokens.weight'), 'closed', '"model.embed_tokens.weight"');
    });

    it('rejects header offsets past the end of the data', function () {
      const p = rawFile(fresh('pastend.safetensors'), { a: f32Entry(2, 0, 8), big: f32Entry(4, 8, 24) }, 16);
      expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), '"big"', 'data_offsets [8,24]', 'end past the data section (16 bytes)');
    });

    it('rejects overlapping ranges, naming both tensors', function () {
      const p = rawFile(fresh('overlap.safetensors'), { a: f32Entry(4, 0, 16), b: f32Entry(4, 8, 24) }, 24);
      expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), 'overlap', '"a"', '"b"');
    });

    it('rejects a gap between ranges and at the start', function () {
      const p = rawFile(fresh('gap.safetensors'), { a: f32Entry(4, 0, 16), b: f32Entry(4, 20, 36) }, 36);
      expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), 'gap', '[16,20)', '"a"', '"b"');
      const q = rawFile(fresh('gap0.safetensors'), { b: f32Entry(1, 4, 8) }, 8);
      expectWeightsError(() => SafetensorsFile.open(q), path.basename(q), 'gap', '[0,4)', '"b"');
    });

    it('rejects trailing bytes after the last tensor', function () {
      const p = rawFile(fresh('trailing.safetensors'), { a: f32Entry(1, 0, 4) }, 12);
      expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), 'trailing');
    });

    it('rejects a dtype/shape mismatch', function () {
      const p = rawFile(fresh('mismatch.safetensors'),
        { 'model.layers.0.mlp.down_proj.weight': { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 16] } }, 16);
      expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), '"model.layers.0.mlp.down_proj.weight"',
        'dtype/shape mismatch', 'BF16', '[2,3]', '12 bytes', '[0,16]');
    });

    it('rejects a header length larger than the file, zero, or beyond the limit, and tiny files', function () {
      const p = rawFile(fresh('hlen.safetensors'), { a: f32Entry(1, 0, 4) }, 4, 1000);
      expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), 'header length 1000', 'larger than the file');
      const z = rawFile(fresh('hzero.safetensors'), '', 8, 0);
      expectWeightsError(() => SafetensorsFile.open(z), path.basename(z), 'header length is 0');
      const h = rawFile(fresh('hhuge.safetensors'), '{}', 0, 200_000_000);
      expectWeightsError(() => SafetensorsFile.open(h), path.basename(h), 'exceeds', 'limit');
      const t = fresh('tiny.safetensors');
      fs.writeFileSync(t, Buffer.from([1, 2, 3]));
      expectWeightsError(() => SafetensorsFile.open(t), path.basename(t), 'too short');
      expectWeightsError(() => SafetensorsFile.open(fresh('absent.safetensors')), 'absent.safetensors', 'ENOENT');
    });

    it('rejects an invalid JSON header, invalid UTF-8, and a non-object header', function () {
      const p = rawFile(fresh('badjson.safetensors'), '{"a": {"dtype": "F32",', 0);
      expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), 'not valid JSON');
      const nl = rawFile(fresh('badjson-nl.safetensors'), '{\n"a":\n}\n   ', 0); // still a one-line message
      expectWeightsError(() => SafetensorsFile.open(nl), path.basename(nl), 'not valid JSON');
      const u = fresh('badutf8.safetensors');
      const hdr = Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d, 0x20]); // {"\xff":1}
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(hdr.length));
      fs.writeFileSync(u, Buffer.concat([prefix, hdr]));
      expectWeightsError(() => SafetensorsFile.open(u), path.basename(u), 'UTF-8');
      const arr = rawFile(fresh('array.safetensors'), '[1,2]', 0);
      expectWeightsError(() => SafetensorsFile.open(arr), path.basename(arr), 'not a JSON object');
    });

    it('rejects unknown dtypes and malformed entries, naming the tensor', function () {
      const cases: Array<[unknown, string[]]> = [
        [{ q: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 2] } }, ['"q"', 'unknown dtype', 'Q4_K']],
        [{ q: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, ['"q"', 'shape']],
        [{ q: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, ['"q"', 'shape']],
        [{ q: { dtype: 'F32', shape: [1], data_offsets: [4] } }, ['"q"', 'data_offsets']],
        [{ q: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, ['"q"', 'begin > end']],
        [{ q: 'F32' }, ['"q"', 'not an object']],
        [{ __metadata__: { n: 1 } }, ['__metadata__', '"n"', 'string']],
        [{ __metadata__: ['x'] }, ['__metadata__']],
      ];
      for (const [header, parts] of cases) {
        const p = rawFile(fresh('malformed.safetensors'), header, 4);
        expectWeightsError(() => SafetensorsFile.open(p), path.basename(p), ...parts);
      }
    });

    it('accepts an empty header and names absent tensors in errors', function () {
      const p = rawFile(fresh('empty.safetensors'), '{}      ', 0);
      const sf = SafetensorsFile.open(p);
      expect(sf.names()).to.deep.equal([]);
      expect(sf.metadata).to.deep.equal({});
      expect(sf.totalBytes).to.equal(0);
      expectWeightsError(() => sf.info('model.norm.weight'), path.basename(p), '"model.norm.weight"');
      sf.close();
      const ck = Checkpoint.open(PHI4_TINY);
      expectWeightsError(() => ck.readFloat32('nope.weight'), 'model.safetensors.index.json', '"nope.weight"');
      ck.close();
    });

    /** A sharded checkpoint in a fresh dir: shards given as {file: {tensor: values}}. */
    function shardedDir(shards: Record<string, Record<string, number[]>>, weightMap: Record<string, string> | string): string {
      const dir = freshDir('sharded');
      for (const [file, tensors] of Object.entries(shards)) {
        writeSafetensors(path.join(dir, file), Object.entries(tensors).map(([name, v]) => (
          { name, dtype: 'F32' as DType, shape: [v.length], data: new Float32Array(v) })));
      }
      fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'),
        typeof weightMap === 'string' ? weightMap : JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
      return dir;
    }

    it('opens a well-formed hand-built sharded checkpoint', function () {
      const dir = shardedDir({ 's1.safetensors': { a: [1, 2], b: [3] }, 's2.safetensors': { c: [4] } },
        { a: 's1.safetensors', c: 's2.safetensors', b: 's1.safetensors' });
      const ck = Checkpoint.open(dir);
      expect(ck.names()).to.deep.equal(['a', 'b', 'c']);
      expect(Array.from(ck.readFloat32('c'))).to.deep.equal([4]);
      expect(ck.totalBytes).to.equal(16);
      expect(ck.indexTotalSize).to.equal(0); // as written; not cross-checked
      ck.close();
    });

    it('rejects an index referencing a missing shard', function () {
      const dir = shardedDir({ 's1.safetensors': { a: [1] } }, { a: 's1.safetensors', b: 'model-00009-of-00009.safetensors' });
      expectWeightsError(() => Checkpoint.open(dir), 'model.safetensors.index.json', 'model-00009-of-00009.safetensors', 'missing', '"b"');
    });

    it('rejects an index naming a tensor absent from its shard', function () {
      const dir = shardedDir({ 's1.safetensors': { a: [1] }, 's2.safetensors': { c: [2] } },
        { a: 's1.safetensors', c: 's2.safetensors', ghost: 's2.safetensors' });
      expectWeightsError(() => Checkpoint.open(dir), '"ghost"', 's2.safetensors');
    });

    it('rejects a tensor present in a shard but not in the index', function () {
      const dir = shardedDir({ 's1.safetensors': { a: [1], extra: [5] } }, { a: 's1.safetensors' });
      expectWeightsError(() => Checkpoint.open(dir), '"extra"', 's1.safetensors', 'not in the index');
    });

    it('rejects a tensor present in two shards', function () {
      const dir = shardedDir({ 's1.safetensors': { a: [1] }, 's2.safetensors': { a: [1], c: [2] } },
        { a: 's1.safetensors', c: 's2.safetensors' });
      expectWeightsError(() => Checkpoint.open(dir), '"a"', 's1.safetensors', 's2.safetensors', 'two shards');
    });

    it('rejects a malformed index and a directory without weights', function () {
      const bad = shardedDir({ 's1.safetensors': { a: [1] } }, '{"weight_map": ');
      expectWeightsError(() => Checkpoint.open(bad), 'model.safetensors.index.json', 'not valid JSON');
      const noMap = shardedDir({ 's1.safetensors': { a: [1] } }, '{"metadata": {}}');
      expectWeightsError(() => Checkpoint.open(noMap), 'model.safetensors.index.json', 'weight_map');
      const badSize = shardedDir({ 's1.safetensors': { a: [1] } }, '{"metadata": {"total_size": "4"}, "weight_map": {"a": "s1.safetensors"}}');
      expectWeightsError(() => Checkpoint.open(badSize), 'total_size');
      const empty = freshDir('noweights');
      expectWeightsError(() => Checkpoint.open(empty), path.basename(empty), 'model.safetensors');
      expectWeightsError(() => Checkpoint.open(path.join(empty, 'nope')), 'nope', 'no such file');
    });
  });

  describe('writer validation and atomicity', function () {
    const leftovers = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));

    it('rejects duplicate names, bad shapes, unknown dtypes and unsupported data, creating nothing', function () {
      const dir = freshDir('invalid');
      const target = path.join(dir, 'out.safetensors');
      const one = new Float32Array([1]);
      expectWeightsError(() => writeSafetensors(target, [
        { name: 'w', dtype: 'F32', shape: [1], data: one }, { name: 'w', dtype: 'F32', shape: [1], data: one },
      ]), 'out.safetensors', 'duplicate', '"w"');
      expectWeightsError(() => writeSafetensors(target, [{ name: 'w', dtype: 'F32', shape: [-1], data: one }]), '"w"', 'shape');
      expectWeightsError(() => writeSafetensors(target, [{ name: 'w', dtype: 'Q8' as DType, shape: [1], data: one }]), '"w"', 'dtype');
      expectWeightsError(() => writeSafetensors(target, [{ name: 'w', dtype: 'I32', shape: [1], data: one }]),
        '"w"', 'Float32Array', 'I32');
      expectWeightsError(() => writeSafetensors(target, [{ name: 'w', dtype: 'F32', shape: [1], data: new Uint8Array(3) }]),
        '"w"', '3 bytes');
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    });

    it('turns file-system failures into one-line errors naming the target, leaving nothing behind', function () {
      const dir = freshDir('fs-errors');
      const missing = path.join(dir, 'no-such-dir', 'out.safetensors');
      expectWeightsError(() => writeSafetensors(missing, [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }]),
        missing, 'cannot create', 'ENOENT');
      const asDir = path.join(dir, 'a-directory');
      fs.mkdirSync(asDir);
      fs.writeFileSync(path.join(asDir, 'keep'), 'x'); // a non-empty directory cannot be renamed over
      expectWeightsError(() => writeSafetensors(asDir, [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }]),
        asDir, 'cannot write');
      expect(fs.readdirSync(dir).sort()).to.deep.equal(['a-directory']);
      expect(fs.readdirSync(asDir)).to.deep.equal(['keep']);
    });

    it('fails on a data length mismatch after the first tensor, leaving no target and no temp file', function () {
      const dir = freshDir('mismatch');
      const target = path.join(dir, 'model.safetensors');
      expectWeightsError(() => writeSafetensors(target, [
        { name: 'first', dtype: 'F32', shape: [4], data: new Float32Array(4) },
        { name: 'second', dtype: 'BF16', shape: [2, 3], data: new Float32Array(5) },
      ]), 'model.safetensors', '"second"', 'mismatch', '[2,3]', '6 elements', '5 elements');
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    });

    it('cleans up when a streaming write fails midway, keeping an existing target intact', function () {
      const dir = freshDir('midway');
      const target = path.join(dir, 'model.safetensors');
      fs.writeFileSync(target, 'previous contents');
      const specs = [{ name: 'first', dtype: 'F32' as DType, shape: [4] }, { name: 'second', dtype: 'F16' as DType, shape: [3] }];
      const w = SafetensorsWriter.create(target, specs);
      expect(fs.existsSync(w.tempPath)).to.equal(true);
      expect(path.dirname(w.tempPath)).to.equal(dir);
      w.write('first', new Float32Array(4));
      expectWeightsError(() => w.write('second', new Float32Array(4)), 'model.safetensors', '"second"', 'too much data');
      expect(fs.existsSync(w.tempPath)).to.equal(false);
      expect(leftovers(dir)).to.deep.equal([]);
      expect(fs.readFileSync(target, 'utf8')).to.equal('previous contents');
      expectWeightsError(() => w.finish(), 'aborted');

      const w2 = SafetensorsWriter.create(target, specs);
      expectWeightsError(() => w2.write('second', new Float32Array(3)), '"second"', 'out of order', '"first"');
      expect(leftovers(dir)).to.deep.equal([]);

      const w3 = SafetensorsWriter.create(target, specs);
      w3.write('first', new Float32Array(4));
      w3.write('second', new Float32Array(1));
      expectWeightsError(() => w3.finish(), '"second"', 'incomplete');
      expect(leftovers(dir)).to.deep.equal([]);
      expect(fs.readFileSync(target, 'utf8')).to.equal('previous contents');

      const w4 = SafetensorsWriter.create(target, specs);
      w4.abort();
      expect(leftovers(dir)).to.deep.equal([]);
    });

    it('cleans up when the final rename fails', function () {
      const dir = freshDir('rename');
      const target = path.join(dir, 'is-a-directory');
      fs.mkdirSync(target);
      fs.writeFileSync(path.join(target, 'keep'), 'x'); // non-empty: rename over it must fail
      expect(() => writeSafetensors(target, [{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }])).to.throw();
      expect(leftovers(dir)).to.deep.equal([]);
      expect(fs.statSync(target).isDirectory()).to.equal(true);
    });

    it('replaces an existing target atomically on success', function () {
      const dir = freshDir('replace');
      const target = path.join(dir, 'model.safetensors');
      fs.writeFileSync(target, 'old');
      writeSafetensors(target, [{ name: 'w', dtype: 'BF16', shape: [2], data: new Float32Array([1, 2]) }]);
      expect(fs.readdirSync(dir)).to.deep.equal(['model.safetensors']);
      const sf = SafetensorsFile.open(target);
      expect(Array.from(sf.readFloat32('w'))).to.deep.equal([1, 2]);
      expect(sf.metadata).to.deep.equal({});
      sf.close();
    });
  });
});
