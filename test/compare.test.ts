// `phi4 compare`: the pure comparison (src/compare.ts, src/compare-map.ts) and the command line,
// run as a child process as a user runs it. Expected values are computed by hand here, never by
// the code under test.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { type Entries, type Entry, PRESETS, compare, compareFiles, forwardOrder, logitStats } from '../src/compare.js';
import { applyMap, parseMapSpec, permute } from '../src/compare-map.js';
import { writeDump } from '../src/dump.js';
import { dumpPath, modelDir } from '../src/golden.js';
import { readInputs } from '../src/inputs.js';
import { Phi3Model } from '../src/model.js';
import { tapNames } from '../src/taps.js';
import { tfjsVersion } from '../src/backend.js';
import { compareCommand } from '../src/commands/compare.js';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../weights/index.js';
import { useBackend } from './helpers.js';
import { ROOT, type Run, expectBadInput, phi4, show } from './cli-helpers.js';

const SHORT = dumpPath('phi4-mini-tiny.short');
const BATCH = dumpPath('phi4-mini-tiny.batch');

/** Exit 2 with exactly one line on stderr, "phi4: ...", naming everything in `names`, no stack trace, no output. */
function expectBadInputAlone(r: Run, names: string[]): void {
  expectBadInput(r, names);
  expect(r.stderr.split('\n').filter((l) => l.trim() !== ''), r.stderr).to.have.length(1); // not even a banner
  expect(r.stdout).to.equal('');
}

/** Copies a safetensors file with some tensors changed (data as float32 or int32 arrays). */
function rewrite(src: string, dst: string, change: (name: string, data: Float32Array | Int32Array, shape: number[]) => { data: Float32Array | Int32Array; shape: number[] } | null): void {
  const f = SafetensorsFile.open(src);
  const tensors: TensorToWrite[] = [];
  try {
    for (const t of f.tensors()) {
      const int = t.dtype.startsWith('I');
      const data = int ? f.readInt32(t.name) : f.readFloat32(t.name);
      const r = change(t.name, data, t.shape);
      if (r) tensors.push({ name: t.name, dtype: int ? 'I32' : 'F32', shape: r.shape, data: r.data });
    }
  } finally {
    f.close();
  }
  writeSafetensors(dst, tensors);
}

const scaled = (a: Float32Array, s: number) => a.map((x) => x * s);

/** Entries from plain arrays. */
function entries(spec: Record<string, { shape: number[]; data: number[] | Float32Array; int?: boolean }>): Entries {
  const m: Entries = new Map();
  for (const [name, t] of Object.entries(spec)) {
    const e: Entry = { shape: t.shape, int: !!t.int, read: () => (t.int ? Int32Array.from(t.data) : Float32Array.from(t.data)) };
    m.set(name, e);
  }
  return m;
}

describe('compare (pure)', () => {
  it('a golden dump against itself: every tap, zero error, cosine 1, top-1 everywhere, KL 0', () => {
    const { report } = compareFiles(SHORT, SHORT);
    expect(report.ok).to.equal(true);
    expect(report.taps.map((t) => t.name)).to.deep.equal(tapNames(4));
    for (const t of report.taps) {
      expect([t.relL2, t.maxAbs, t.cosine], t.name).to.deep.equal([0, 0, 1]);
    }
    expect(report.taps.at(-1)!.logits).to.deep.equal({ top1: 11, positions: 11, klMean: 0, klMax: 0 });
    expect(report.onlyReference).to.deep.equal([]);
    expect(report.onlyCandidate).to.deep.equal([]);
  });

  it('orders taps by the forward pass, not by name or file order (layers.10 after layers.2, qkv before attn_out)', () => {
    const names = ['logits', 'layers.10.out', 'layers.2.attn_out', 'layers.2.qkv', 'embed', 'zzz', 'final_norm', 'aaa', 'rope.cos'];
    expect(forwardOrder(names)).to.deep.equal(['embed', 'rope.cos', 'layers.2.qkv', 'layers.2.attn_out', 'layers.10.out', 'final_norm', 'logits', 'aaa', 'zzz']);
  });

  it('KL(softmax(ref) || softmax(cand)) and top-1, stable at large logits', () => {
    const want = 0.5 * Math.log(4 / 3); // p = (1/2, 1/2), q = (3/4, 1/4)
    for (const base of [0, 1000, -1e4]) {
      const s = logitStats(Float64Array.from([base + Math.log(3), base]), Float64Array.from([base, base]), 2);
      expect(s.klMean).to.be.closeTo(want, 1e-12);
      expect(s.klMax).to.be.closeTo(want, 1e-12);
      expect(s.top1).to.equal(1); // argmax of a tie is the first index, which the candidate shares
    }
    const s = logitStats(Float32Array.from([0, 2, 5, 1]), Float32Array.from([3, 0, 0, 1]), 2);
    expect(s.top1).to.equal(0);
    expect(s.positions).to.equal(2);
  });

  it('a padded batch counts only real positions (attention_mask = 1)', () => {
    // batch 2 x 3 positions, the second row left-padded by one
    const mask = [1, 1, 1, 0, 1, 1];
    const ref = entries({ attention_mask: { shape: [2, 3], data: mask, int: true }, embed: { shape: [2, 3, 2], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] } });
    const junk = entries({ embed: { shape: [2, 3, 2], data: [1, 2, 3, 4, 5, 6, 99, -99, 9, 10, 11, 12] } }); // pad position differs
    const r1 = compare(ref, junk);
    expect(r1.ok).to.equal(true);
    expect(r1.taps[0].relL2).to.equal(0);
    expect(r1.maskedPositions).to.deep.equal({ kept: 5, total: 6 });
    const real = entries({ embed: { shape: [2, 3, 2], data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13] } }); // a real one does
    const r2 = compare(ref, real);
    expect(r2.firstDivergent).to.equal('embed');
    // |d| = 1 over the real positions' norm (all but 7, 8)
    const norm = Math.sqrt([1, 2, 3, 4, 5, 6, 9, 10, 11, 12].reduce((s, x) => s + x * x, 0));
    expect(r2.taps[0].relL2).to.be.closeTo(1 / norm, 1e-15);
  });

  it('refuses different shapes and different inputs, naming the tensor', () => {
    const a = entries({ embed: { shape: [1, 2, 2], data: [1, 2, 3, 4] }, input_ids: { shape: [1, 2], data: [5, 6], int: true } });
    const b = entries({ embed: { shape: [1, 4], data: [1, 2, 3, 4] } });
    expect(() => compare(a, b)).to.throw(/embed: shapes differ: reference \[1,2,2\], candidate \[1,4\]/);
    const c = entries({ embed: { shape: [1, 2, 2], data: [1, 2, 3, 4] }, input_ids: { shape: [1, 2], data: [5, 7], int: true } });
    expect(() => compare(a, c)).to.throw(/input_ids: the two dumps were run on different inputs \(element 1: 6 vs 7\)/);
    expect(() => compare(a, entries({ other: { shape: [1], data: [0] } }))).to.throw(/no tensor name in common/);
  });

  it('NaN in the candidate is a divergence, not a pass', () => {
    const r = compare(entries({ embed: { shape: [2], data: [1, 2] } }), entries({ embed: { shape: [2], data: [1, NaN] } }));
    expect(r.ok).to.equal(false);
    expect(r.diagnosis).to.include('non-finite');
  });

  it('presets: fp32 is the golden float32 tolerance; bf16 and fp16 as measured and derived in docs/compare.md', () => {
    expect(PRESETS).to.deep.equal({ fp32: 1e-5, bf16: 5e-2, fp16: 7e-3 });
  });

  it('permute follows numpy.transpose', () => {
    // x[a][b][c] = 100a + 10b + c, shape [2, 3, 2]; y = x.transpose(2, 0, 1): y[c][a][b] = x[a][b][c]
    const x = Float32Array.from({ length: 12 }, (_, i) => 100 * Math.floor(i / 6) + 10 * (Math.floor(i / 2) % 3) + (i % 2));
    const { data, shape } = permute(x, [2, 3, 2], [2, 0, 1]);
    expect(shape).to.deep.equal([2, 2, 3]);
    expect(Array.from(data)).to.deep.equal([0, 10, 20, 100, 110, 120, 1, 11, 21, 101, 111, 121]);
  });

  it('--map spec: {N} placeholders, first rule wins, permute then reshape; bad specs name the rule', () => {
    const spec = parseMapSpec({ tensors: [
      { from: 'blk.{N}.ctx', to: 'layers.{N}.attn_out', reshape: [0, 0, -1] },
      { from: 'blk.{N}.q', to: 'layers.{N}.q_rot', permute: [0, 2, 1, 3] },
      { from: 'blk.{N}.{M}', to: 'never.{N}' },
    ] }, 'm.json');
    const src = entries({
      'blk.12.ctx': { shape: [1, 2, 2, 1], data: [1, 2, 3, 4] },
      'blk.3.q': { shape: [1, 1, 2, 2], data: [1, 2, 3, 4] },
      'blk.3.7': { shape: [1], data: [7] },
      logits: { shape: [1], data: [0] },
    });
    const out = applyMap(src, spec, 'candidate');
    expect([...out.keys()]).to.deep.equal(['layers.12.attn_out', 'layers.3.q_rot', 'never.3', 'logits']);
    expect(out.get('layers.12.attn_out')!.shape).to.deep.equal([1, 2, 2]);
    expect(out.get('layers.3.q_rot')!.shape).to.deep.equal([1, 2, 1, 2]);
    expect(Array.from(out.get('layers.3.q_rot')!.read())).to.deep.equal([1, 2, 3, 4]);
    expect(() => parseMapSpec({ tensors: [{ from: 'a', to: 'b', permute: [0, 0] }] }, 'm.json')).to.throw(/--map m\.json: tensors\[0\]: "permute" must be a permutation/);
    expect(() => parseMapSpec({ tensors: [{ from: 'a', to: 'b.{N}' }] }, 'm.json')).to.throw(/tensors\[0\]: "to" uses \{N\}/);
    expect(() => parseMapSpec({ rename: {} }, 'm.json')).to.throw(/unknown key "rename"/);
    const clash = parseMapSpec({ tensors: [{ from: 'x{N}', to: 'embed' }] }, 'm.json');
    expect(() => applyMap(entries({ x1: { shape: [1], data: [0] }, x2: { shape: [1], data: [0] } }), clash, 'candidate')).to.throw(/"x1" and "x2" both map to "embed"/);
  });
});

describe('phi4 compare: files and the command line', function () {
  this.timeout(60_000);
  let tmp: string;
  const ours: Record<string, string> = {};

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-compare-'));
    await useBackend('wasm');
    const m = Phi3Model.load(modelDir('phi4-mini-tiny'));
    try {
      for (const c of ['short', 'long', 'batch']) {
        ours[c] = path.join(tmp, `ours.${c}.safetensors`);
        writeDump(m, readInputs(dumpPath(`phi4-mini-tiny.${c}`)), ours[c], { backend: 'wasm', tfjs: tfjsVersion() });
      }
    } finally {
      m.dispose();
    }
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('cli: a file against itself reports zero error on every tap and exits 0 (text and --json)', () => {
    const r = phi4(['compare', SHORT, SHORT]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.match(/^PASS: all 57 common taps within rel L2 1\.0e-5/m);
    const j = phi4(['compare', SHORT, SHORT, '--json']);
    expect(j.status, show(j)).to.equal(0);
    const report = JSON.parse(j.stdout) as { ok: boolean; taps: { name: string; relL2: number; maxAbs: number }[]; firstDivergent: null };
    expect(report.ok).to.equal(true);
    expect(report.firstDivergent).to.equal(null);
    expect(report.taps).to.have.length(57);
    expect(report.taps.every((t) => t.relL2 === 0 && t.maxAbs === 0)).to.equal(true);
  });

  it('cli: one tap perturbed (x 1.0001) exits 1 and names exactly that tap first', () => {
    const one = path.join(tmp, 'one.safetensors');
    rewrite(SHORT, one, (n, d, s) => ({ data: n === 'layers.2.qkv' ? scaled(d as Float32Array, 1.0001) : d, shape: s }));
    const r = phi4(['compare', SHORT, one]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/^FAIL: first divergence at layers\.2\.qkv \(rel L2 1\.0e-4 > 1\.0e-5.*the tap before it, layers\.2\.input_norm, agrees \(0\)/m);
    expect(r.stdout.match(/DIVERGES/g)).to.have.length(1);
    // a looser tolerance lets the same perturbation through
    expect(compareFiles(SHORT, one, { tolerance: 2e-4 }).report.ok).to.equal(true);
    // with a later tap perturbed too (attn_out sorts before qkv by name), the forward-order first is named
    const two = path.join(tmp, 'two.safetensors');
    rewrite(SHORT, two, (n, d, s) => ({ data: n === 'layers.2.qkv' || n === 'layers.2.attn_out' ? scaled(d as Float32Array, 1.001) : d, shape: s }));
    expect(compareFiles(SHORT, two).report.firstDivergent).to.equal('layers.2.qkv');
  });

  it('lists taps present on one side only', () => {
    const fewer = path.join(tmp, 'fewer.safetensors');
    rewrite(SHORT, fewer, (n, d, s) => (n.startsWith('layers.1.') ? null : { data: d, shape: s }));
    const { report } = compareFiles(SHORT, fewer);
    expect(report.ok).to.equal(true);
    expect(report.onlyReference).to.deep.equal(tapNames(4).filter((n) => n.startsWith('layers.1.')));
    expect(report.onlyCandidate).to.deep.equal([]);
    expect(compareFiles(fewer, SHORT).report.onlyCandidate).to.have.length(13);
  });

  it('cli --map: another runtime\'s [B,T,nh,d] queries under its own names line up after rename + transpose', () => {
    // the "other runtime" stores q_rot as [B, T, nh, d] under its own name
    const theirs = path.join(tmp, 'theirs.safetensors');
    rewrite(SHORT, theirs, (n, d, s) => {
      if (!n.endsWith('.q_rot')) return n === 'input_ids' ? { data: d, shape: s } : null;
      return { data: permute(d, s, [0, 2, 1, 3]).data as Float32Array, shape: [s[0], s[2], s[1], s[3]] };
    });
    const renamed = path.join(tmp, 'renamed.safetensors');
    const f = SafetensorsFile.open(theirs);
    writeSafetensors(renamed, f.tensors().map((t) => ({ name: t.name.replace(/^layers\.(\d+)\.q_rot$/, 'model.layers.$1.attn.q'), dtype: t.dtype, shape: t.shape, data: f.readBytes(t.name) })));
    f.close();
    const map = path.join(tmp, 'map.json');
    fs.writeFileSync(map, JSON.stringify({ tensors: [{ from: 'model.layers.{N}.attn.q', to: 'layers.{N}.q_rot', permute: [0, 2, 1, 3] }] }));
    const r = phi4(['compare', SHORT, renamed, '--map', map, '--json']);
    expect(r.status, show(r)).to.equal(0);
    const j = JSON.parse(r.stdout) as { taps: { name: string; relL2: number }[] };
    expect(j.taps.map((t) => t.name)).to.deep.equal(['layers.0.q_rot', 'layers.1.q_rot', 'layers.2.q_rot', 'layers.3.q_rot']);
    expect(j.taps.every((t) => t.relL2 === 0)).to.equal(true);
    // without the map nothing lines up
    expect(() => compareFiles(SHORT, renamed)).to.throw(/no tensor name in common.*--map/);
  });

  it('a padded golden batch against our dump of it passes on the real positions only', () => {
    const { report } = compareFiles(BATCH, ours.batch);
    expect(report.maskedPositions).to.deep.equal({ kept: 19, total: 24 });
    expect(report.ok, report.diagnosis).to.equal(true);
    expect(report.taps).to.have.length(57);
  });

  it('CUDA bf16 (transformers, sdpa) against our float32: passes under the bf16 preset, fails under fp32', () => {
    for (const c of ['short', 'long']) {
      const cuda = dumpPath(`phi4-mini-tiny.${c}.cuda-bf16`);
      const { report } = compareFiles(ours[c], cuda, { preset: 'bf16' });
      expect(report.taps.map((t) => t.name)).to.deep.equal(['embed', 'layers.0.out', 'layers.1.out', 'layers.2.out', 'final_norm', 'logits']);
      expect(report.ok, report.diagnosis).to.equal(true);
      // bf16-level errors: the embedding is exact (bf16 weights), every later tap 2^-9 .. 2^-5 off
      expect(report.taps[0].relL2).to.equal(0);
      for (const t of report.taps.slice(1)) expect(t.relL2, t.name).to.be.within(2 ** -9, 2 ** -5);
      const fp32 = compareFiles(ours[c], cuda).report;
      expect(fp32.ok).to.equal(false);
      expect(fp32.firstDivergent).to.equal('layers.0.out');
    }
    const r = phi4(['compare', ours.long, dumpPath('phi4-mini-tiny.long.cuda-bf16')]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/^FAIL: first divergence at layers\.0\.out/m);
  });

  it('cli --plot writes an SVG document atomically', () => {
    const out = path.join(fs.mkdtempSync(path.join(tmp, 'plot-')), 'errors.svg');
    const r = phi4(['compare', ours.long, dumpPath('phi4-mini-tiny.long.cuda-bf16'), '--preset', 'bf16', '--plot', out]);
    expect(r.status, show(r)).to.equal(0);
    expect(fs.readdirSync(path.dirname(out))).to.deep.equal(['errors.svg']);
    const svg = fs.readFileSync(out, 'utf8');
    expect(svg).to.match(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.trimEnd().endsWith('</svg>')).to.equal(true);
    expect(svg).to.include('<polyline').and.include('tolerance 5e-2 (bf16)').and.include('PASS');
  });

  it('cli bad input: different shapes, a missing file, a file that is not safetensors: exit 2, one line', () => {
    const other = path.join(tmp, 'other-shape.safetensors');
    rewrite(SHORT, other, (n, d, s) => (n === 'layers.1.attn_probs' ? { data: d, shape: [s[0], s[2], s[1], s[3]] } : { data: d, shape: s }));
    expectBadInputAlone(phi4(['compare', SHORT, other]), ['layers.1.attn_probs', 'shapes differ', '[1,6,11,11]', '[1,11,6,11]']);
    const missing = path.join(tmp, 'missing.safetensors');
    expectBadInputAlone(phi4(['compare', SHORT, missing]), [missing, 'cannot open']);
    const notSt = path.join(ROOT, 'package.json');
    expectBadInputAlone(phi4(['compare', notSt, SHORT, '--plot', path.join(tmp, 'p.svg')]), [notSt]);
    expect(fs.existsSync(path.join(tmp, 'p.svg'))).to.equal(false);
    expectBadInputAlone(phi4(['compare', SHORT, SHORT, '--preset', 'int8']), ['--preset', 'int8']);
  });

  it('other bad input names the option, file or tensor', () => {
    const usage = (argv: string[]) => compareCommand.run(argv);
    const rejects = async (argv: string[], re: RegExp) => {
      let err: Error | null = null;
      try {
        await usage(argv);
      } catch (e) {
        err = e as Error;
      }
      expect(err, argv.join(' ')).to.be.an('error');
      expect(['UsageError', 'InputError', 'WeightsError']).to.include(err!.name);
      expect(err!.message).to.match(re);
    };
    return (async () => {
      await rejects(['compare-needs-two'], /two files/);
      await rejects([SHORT, SHORT, '--rtol', 'abc'], /--rtol: "abc"/);
      await rejects([SHORT, SHORT, '--plot', path.join(tmp, 'no-such-dir', 'x.svg')], /--plot: .*no-such-dir/);
      const badMap = path.join(tmp, 'bad-map.json');
      fs.writeFileSync(badMap, '{"tensors": [{"from": "x", "permute": "no"}]}');
      await rejects([SHORT, SHORT, '--map', badMap], /--map .*bad-map\.json: tensors\[0\]: "permute"/);
      await rejects([SHORT, SHORT, '--map', path.join(tmp, 'nope.json')], /--map .*nope\.json: cannot read/);
      const otherInputs = path.join(tmp, 'other-inputs.safetensors');
      rewrite(SHORT, otherInputs, (n, d, s) => ({ data: n === 'input_ids' ? d.map((x, i) => (i === 3 ? x + 1 : x)) : d, shape: s }));
      await rejects([SHORT, otherInputs], /input_ids: the two dumps were run on different inputs \(element 3/);
    })();
  });
});
