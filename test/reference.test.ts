// The float64 reference (src/oracle/reference/): against transformers' float64 and float32 dumps on every
// golden case, its rounding emulation, its memory refusal and its command line.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../src/model/config.js';
import { FORWARD_CASES, F32_TOLERANCE, GOLDEN_DIR, dumpPath, manifestF64Cases, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { relL2, selectPositions } from '../src/oracle/metrics.js';
import { referenceForward } from '../src/oracle/reference/forward.js';
import { type Rounding, roundInPlace } from '../src/oracle/reference/rounding.js';
import { seqAxis, tapNames } from '../layers/taps.js';
import { Checkpoint, SafetensorsFile, bf16BitsToFloat32, f16BitsToFloat32, float32ToBf16Bits, float32ToF16Bits } from '../weights/index.js';
import { expectBadInput, phi4, show } from './cli-helpers.js';
import { rand } from './helpers.js';

/** rel L2 of every tap of a reference run against a dump (only unmasked positions of a padded batch). */
function againstDump(name: string, dump: string, rounding: Rounding): Map<string, { rel: number; data: Float64Array }> {
  const c = FORWARD_CASES.find((f) => f.name === name)!;
  const ckpt = Checkpoint.open(modelDir(c.model));
  const ref = SafetensorsFile.open(dumpPath(dump));
  const inputs = readInputs(dumpPath(name));
  const keep = inputs.attentionMask;
  const out = new Map<string, { rel: number; data: Float64Array }>();
  try {
    referenceForward(ckpt, loadConfig(modelDir(c.model)), inputs, {
      rounding,
      onTap: (tap, data, shape) => {
        const sel = (a: Float64Array) => (keep ? selectPositions(a, shape, seqAxis(tap), keep) : a);
        out.set(tap, { rel: relL2(sel(data), sel(ref.readFloat64(tap))), data: sel(data.slice()) });
      },
    });
  } finally {
    ckpt.close();
    ref.close();
  }
  return out;
}

describe('float64 reference', () => {
  for (const c of FORWARD_CASES) {
    it(`${c.name}: with float32 storage, every tap within the float32 tolerance of transformers' float32`, () => {
      const errs = againstDump(c.name, c.name, 'f32');
      expect([...errs.keys()]).to.deep.equal(tapNames(loadConfig(modelDir(c.model)).numLayers));
      const bad = [...errs].filter(([, e]) => !(e.rel <= F32_TOLERANCE)).map(([t, e]) => `${t}: ${e.rel.toExponential(2)}`);
      expect(bad).to.deep.equal([]);
    });
  }

  // transformers' float64 dumps keep RMSNorm's statistics and scaling, the softmax and the rotary
  // tables in float32 (golden/README.md), so they are not float64 throughout: the reference
  // cannot agree with them to float64 precision, but must sit closer to them than transformers'
  // own float32 does. Measured: at most 0.55x transformers' float32 error (or of 1e-7 where that
  // is smaller), the worst at layers.0.input_norm, where both transformers runs share the
  // float32 norm; the limit is 0.75x.
  // One exception, phi4-toy-induction.short (the trained toy): 0.975x at final_norm and logits
  // (its long case: 0.544x). There transformers' float64 run is the odd one out, not the
  // reference: at position 1, layer 1, head 0, the reference and transformers' float32 give the
  // same attention probability within 3e-8 while transformers' float64 differs from both by
  // 6.7e-7 (its eager attention takes the softmax in float32 even in a float64 run), and the
  // final norm, which weighs every position alike, brings that position's error forward. For
  // that case the check is only that the reference is no farther off than transformers' float32.
  const MARGIN: Record<string, number> = { 'phi4-toy-induction.short': 1 };
  // the cases come from golden/manifest.json, not from the files present: a deleted .f64 dump fails
  // (its open throws) instead of removing its checks; the count is pinned
  const F64_CASES = manifestF64Cases();
  it('golden/manifest.json lists 5 float64 dumps, each of a golden case, all present', () => {
    expect(F64_CASES).to.deep.equal(['phi4-mini-tiny.short', 'phi4-mini-tiny.long', 'phi4-mini-geometry.short', 'phi4-toy-induction.short', 'phi4-toy-induction.long']);
    for (const n of F64_CASES) {
      expect(FORWARD_CASES.map((c) => c.name), n).to.include(n);
      expect(existsSync(dumpPath(`${n}.f64`)), `${n}.f64 missing`).to.equal(true);
    }
    // and the golden cases themselves: 14, each with its dump; every file the manifest lists exists
    expect(FORWARD_CASES).to.have.length(14);
    for (const c of FORWARD_CASES) expect(existsSync(dumpPath(c.name)), c.name).to.equal(true);
    const manifest = JSON.parse(readFileSync(join(GOLDEN_DIR, 'manifest.json'), 'utf8')) as { cases: { file: string }[] };
    expect(manifest.cases).to.have.length(16);
    for (const c of manifest.cases) expect(existsSync(join(GOLDEN_DIR, c.file)), c.file).to.equal(true);
  });
  for (const c of FORWARD_CASES.filter((f) => F64_CASES.includes(f.name))) {
    const margin = MARGIN[c.name] ?? 0.75;
    it(`${c.name}: in float64, closer to transformers' float64 than transformers' float32 is (x${margin}), on every tap`, () => {
      const errs = againstDump(c.name, `${c.name}.f64`, 'none');
      const hf32 = SafetensorsFile.open(dumpPath(c.name));
      const hf64 = SafetensorsFile.open(dumpPath(`${c.name}.f64`));
      try {
        const bad: string[] = [];
        for (const [tap, e] of errs) {
          const theirs = relL2(hf32.readFloat64(tap), hf64.readFloat64(tap));
          const limit = margin * Math.max(theirs, 1e-7);
          if (!(e.rel <= limit)) bad.push(`${tap}: ${e.rel.toExponential(2)} > ${limit.toExponential(2)}`);
        }
        expect(bad).to.deep.equal([]);
        expect(errs.get('embed')!.rel).to.equal(0);
      } finally {
        hf32.close();
        hf64.close();
      }
    });
  }

  it('rounds float64 values to float32, bf16 and f16 as IEEE round-to-nearest-even does', () => {
    // Every float32 test value is rounded both by the reference and by the weights module's
    // independent float32 -> bf16 / f16 encoders (bit manipulation), then compared.
    const xs = Array.from(rand(4000, 7), (r, i) => Math.fround(r * 2 ** ((i % 60) - 30)));
    xs.push(1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, 65520, 3e38, 2 ** -20, 2 ** -25, 2 ** -24 * 1.5, -0, 0);
    const bf = roundInPlace(Float64Array.from(xs), 'bf16');
    const hf = roundInPlace(Float64Array.from(xs), 'f16');
    xs.forEach((x, i) => {
      expect(bf[i], `bf16(${x})`).to.equal(bf16BitsToFloat32(float32ToBf16Bits(x)));
      expect(hf[i], `f16(${x})`).to.equal(f16BitsToFloat32(float32ToF16Bits(x)));
    });
    expect(roundInPlace(Float64Array.of(0.1, 1 / 3), 'f32')).to.deep.equal(Float64Array.of(Math.fround(0.1), Math.fround(1 / 3)));
    expect(roundInPlace(Float64Array.of(0.1), 'none')[0]).to.equal(0.1);
    // a float64 just above a bf16 tie rounds up (double rounding through float32 would not)
    const above = 1 + 2 ** -8 + 2 ** -40;
    expect(roundInPlace(Float64Array.of(above), 'bf16')[0]).to.equal(1 + 2 ** -7);
  });

  it('refuses a run it cannot hold in memory, naming the estimate', () => {
    const dir = modelDir('phi4-mini-tiny');
    const ckpt = Checkpoint.open(dir);
    try {
      const inputs = { inputIds: new Int32Array(8).fill(3), batch: 1, seq: 8 };
      expect(() => referenceForward(ckpt, loadConfig(dir), inputs, { memoryBudget: 1e5 })).to.throw(/needs about .* GiB for 1 x 8 positions; .* is available/);
    } finally {
      ckpt.close();
    }
  });

  describe('phi4 dump --precision float64', () => {
    let tmp: string;
    before(() => { tmp = mkdtempSync(join(tmpdir(), 'phi4-ref-')); });
    after(() => rmSync(tmp, { recursive: true, force: true }));

    it('writes every tap as F64, equal to the library run, with bf16 rounding recorded', () => {
      const out = join(tmp, 'ref.safetensors');
      const r = phi4(['dump', 'golden/models/phi4-mini-tiny', '--inputs', dumpPath('phi4-mini-tiny.short'), '--out', out, '--precision', 'float64', '--rounding', 'bf16']);
      expect(r.status, show(r)).to.equal(0);
      const f = SafetensorsFile.open(out);
      try {
        expect(f.metadata.precision).to.equal('float64');
        expect(f.metadata.rounding).to.equal('bf16');
        expect(f.info('logits').dtype).to.equal('F64');
        const lib = againstDump('phi4-mini-tiny.short', 'phi4-mini-tiny.short', 'bf16');
        for (const tap of tapNames(4)) expect(f.readFloat64(tap), tap).to.deep.equal(lib.get(tap)!.data);
      } finally {
        f.close();
      }
    });

    it('refuses bad precision arguments and out-of-vocabulary ids with one line, writing nothing', () => {
      const out = join(tmp, 'bad.safetensors');
      expectBadInput(phi4(['dump', 'golden/models/phi4-mini-tiny', '--ids', '1,2', '--out', out, '--precision', 'float16']), ['--precision', 'float16']);
      expectBadInput(phi4(['dump', 'golden/models/phi4-mini-tiny', '--ids', '1,2', '--out', out, '--rounding', 'bf16']), ['--rounding', '--precision float64']);
      expectBadInput(phi4(['dump', 'golden/models/phi4-mini-tiny', '--ids', '1,99999', '--out', out, '--precision', 'float64']), ['input_ids', '99999']);
      expect(existsSync(out)).to.equal(false);
    });
  });
});
