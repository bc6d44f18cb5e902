// `phi4 compare`: the pure comparison (src/compare/compare.ts, src/compare/map.ts) and the command line,
// run as a child process as a user runs it. Expected values are computed by hand here, never by
// the code under test.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { Entries, Entry } from '../src/compare/entries.js';
import { PRESETS } from '../src/compare/report.js';
import { compare, forwardOrder } from '../src/compare/compare.js';
import { compareFiles } from '../src/compare/files.js';
import { formatReport } from '../src/compare/render.js';
import { logitStats } from '../src/compare/measures.js';
import { plotSvg } from '../src/compare/plot.js';
import { applyMap, parseMapSpec, permute } from '../src/compare/map.js';
import { writeDump } from '../src/oracle/dump.js';
import { dumpPath, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { Phi3Model } from '../src/model/model.js';
import { tapNames } from '../layers/taps.js';
import { tfjsVersion } from '../src/backend.js';
import { compareCommand } from '../src/cli/commands/compare.js';
import { SafetensorsFile, writeSafetensors } from '../weights/index.js';
import { rewriteDump, useBackend } from './helpers.js';
import { ROOT, type Run, expectBadInput, phi4, show } from './cli-helpers.js';

const SHORT = dumpPath('phi4-mini-tiny.short');
const BATCH = dumpPath('phi4-mini-tiny.batch');

/** Exit 2 with exactly one line on stderr, "phi4: ...", naming everything in `names`, no stack trace, no output. */
function expectBadInputAlone(r: Run, names: string[]): void {
  expectBadInput(r, names);
  expect(r.stderr.split('\n').filter((l) => l.trim() !== ''), r.stderr).to.have.length(1); // not even a banner
  expect(r.stdout).to.equal('');
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

  it('different shapes are a finding, listed and named in the verdict; different inputs are refused', () => {
    const a = entries({ embed: { shape: [1, 2, 2], data: [1, 2, 3, 4] }, logits: { shape: [1, 2, 2], data: [1, 2, 3, 4] }, input_ids: { shape: [1, 2], data: [5, 6], int: true } });
    const b = entries({ embed: { shape: [1, 4], data: [1, 2, 3, 4] }, logits: { shape: [1, 2, 2], data: [1, 2, 3, 4] } });
    const r = compare(a, b);
    expect(r.ok).to.equal(false);
    expect(r.findings).to.deep.equal(['embed']);
    expect(r.taps.map((t) => [t.name, t.ok])).to.deep.equal([['embed', false], ['logits', true]]); // the rest is still compared
    expect(r.taps[0].finding).to.match(/shapes differ: reference \[1,2,2\], candidate \[1,4\]/);
    expect(r.diagnosis).to.match(/^first divergence at embed \(cannot compare: shapes differ/);
    const c = entries({ embed: { shape: [1, 2, 2], data: [1, 2, 3, 4] }, input_ids: { shape: [1, 2], data: [5, 7], int: true } });
    expect(() => compare(a, c)).to.throw(/input_ids: the two dumps were run on different inputs \(element 1: 6 vs 7\)/);
    expect(() => compare(a, entries({ other: { shape: [1], data: [0] } }))).to.throw(/no tensor name in common/);
  });

  it('a rotary over all 16 dims instead of 12 is a finding at rope.cos naming partial_rotary_factor, and the taps after it are still compared', () => {
    const ref = entries({ 'rope.cos': { shape: [1, 2, 12], data: new Float32Array(24).fill(1) }, embed: { shape: [1, 2, 1], data: [1, 2] } });
    const cand = entries({ 'rope.cos': { shape: [1, 2, 16], data: new Float32Array(32).fill(1) }, embed: { shape: [1, 2, 1], data: [1, 2] } });
    const r = compare(ref, cand);
    expect(r.ok).to.equal(false);
    expect(r.taps.find((t) => t.name === 'rope.cos')!.finding).to.include('rotates 16 dims where the reference rotates 12: check partial_rotary_factor');
    expect(r.taps.find((t) => t.name === 'embed')!.ok).to.equal(true);
  });

  it('integer logits against float ones are a finding, never a pass (issue 12)', () => {
    const ref = entries({ embed: { shape: [2], data: [1, 2] }, logits: { shape: [1, 1, 2], data: [0.5, 1] } });
    const cand = entries({ embed: { shape: [2], data: [1, 2] }, logits: { shape: [1, 1, 2], data: [0, 0], int: true } });
    const r = compare(ref, cand);
    expect(r.ok).to.equal(false);
    expect(r.findings).to.deep.equal(['logits']);
    expect(r.diagnosis).to.include('logits').and.include('dtypes differ: reference float, candidate integer');
  });

  it('metrics survive extreme values: a 1e200 float64 reference, a 3e38 outlier hiding +1e3 on every logit (issue 12)', () => {
    // rel L2 of x + 1 against x = [1e200, 1]: ||(1, 1)|| / ||(1e200, 1)|| = sqrt(2) * 1e-200, not 0 (and not NaN)
    const big = new Map([['embed', { shape: [2], int: false, read: () => Float64Array.from([1e200, 1]) }]]) as Entries;
    const moved = new Map([['embed', { shape: [2], int: false, read: () => Float64Array.from([1e200, 2e200]) }]]) as Entries;
    const r1 = compare(big, moved);
    expect(r1.taps[0].relL2).to.be.closeTo(2e200 / 1e200, 1e-12); // ||(0, 2e200 - 1)|| / ||(1e200, 1)|| = 2
    expect(r1.ok).to.equal(false);
    expect(r1.taps[0].cosine).to.be.closeTo(1 / Math.sqrt(5), 1e-12);
    // logits [1, 4, 8]: one value of 3e38 at position 0; the candidate adds 1e3 everywhere
    const T = 4;
    const V = 8;
    const ref = new Float32Array(T * V).map((_, i) => (i % 7) - 3);
    ref[0] = 3e38;
    const cand = ref.map((x) => x + 1e3);
    const r2 = compare(entries({ logits: { shape: [1, T, V], data: ref } }), entries({ logits: { shape: [1, T, V], data: cand } }), { preset: 'bf16' });
    expect(r2.taps[0].relL2).to.be.below(1e-30); // the whole-tensor measure alone would pass it
    expect(r2.ok).to.equal(false);
    expect(r2.taps[0].positions!.slice(1).every((p) => p > 10)).to.equal(true);
    expect(r2.diagnosis).to.include('per-position rel L2').and.include('positions 1-3 of 4');
  });

  it('a tap named layers.20000000.out on both sides is ordered without a table of 20 M layers (issue 12)', () => {
    const names = ['logits', 'layers.20000000.out', 'layers.3.qkv', 'embed', 'layers.20000000.input_norm', 'zzz'];
    expect(forwardOrder(names)).to.deep.equal(['embed', 'layers.3.qkv', 'layers.20000000.input_norm', 'layers.20000000.out', 'logits', 'zzz']);
    const e = entries({ 'layers.20000000.out': { shape: [1, 1, 2], data: [1, 2] } });
    const r = compare(e, e);
    expect(r.ok).to.equal(true);
    expect(plotSvg(r, 'x')).to.include('</svg>');
    // no timing: at layer 2^53 - 2 a table (or a loop) over the layers cannot exist, so this can only
    // pass when the order is computed from the names
    const huge = `layers.${Number.MAX_SAFE_INTEGER - 1}.out`;
    expect(forwardOrder(['logits', huge, 'embed'])).to.deep.equal(['embed', huge, 'logits']);
    const h = entries({ [huge]: { shape: [1, 1, 2], data: [1, 2] } });
    expect(compare(h, h).ok).to.equal(true);
  });

  it('per-head and per-position detail names the heads and positions carrying the error', () => {
    // q_rot [1, nh=6, T=3, d=2]: heads 1 and 4 corrupted at every position
    const q = new Float32Array(36).map((_, i) => 1 + (i % 5));
    const bad = q.map((x, i) => (Math.floor(i / 6) === 1 || Math.floor(i / 6) === 4 ? -x : x));
    const r = compare(entries({ 'layers.0.q_rot': { shape: [1, 6, 3, 2], data: q } }), entries({ 'layers.0.q_rot': { shape: [1, 6, 3, 2], data: bad } }));
    expect(r.taps[0].heads!.map((h) => h > 0)).to.deep.equal([false, true, false, false, true, false]);
    expect(r.taps[0].heads![1]).to.be.closeTo(2, 1e-12);
    expect(r.diagnosis).to.include('heads 1, 4 of 6');
    // attn_out [1, T=2, nh*d = 6*2] takes nh from the layer's q_rot: head 3 wrong at position 1 only
    const o = new Float32Array(24).map((_, i) => 1 + (i % 3));
    const ob = o.slice();
    ob[12 + 3 * 2] += 1;
    const r2 = compare(entries({ 'layers.0.q_rot': { shape: [1, 6, 3, 2], data: q }, 'layers.0.attn_out': { shape: [1, 2, 12], data: o } }),
      entries({ 'layers.0.q_rot': { shape: [1, 6, 3, 2], data: q }, 'layers.0.attn_out': { shape: [1, 2, 12], data: ob } }));
    const t = r2.taps.find((x) => x.name === 'layers.0.attn_out')!;
    expect(t.heads!.map((h) => h > 0)).to.deep.equal([false, false, false, true, false, false]);
    expect(t.positions!.map((p) => p > 0)).to.deep.equal([false, true]);
    expect(r2.diagnosis).to.include('head 3 of 6').and.include('position 1 of 2');
  });

  it('metadata: dumps of different configs are "different checkpoint/config"; candidate-only names are summarised by pattern', () => {
    const e = entries({ embed: { shape: [2], data: [1, 2] } });
    const other = entries({ embed: { shape: [2], data: [1, 2] }, 'blk.0.x': { shape: [1], data: [0] }, 'blk.1.x': { shape: [1], data: [0] }, 'kq-3': { shape: [1], data: [0] } });
    const r = compare(e, other, { metadata: { reference: { checkpoint: 'a', config_hash: 'h1' }, candidate: { checkpoint: 'b', config_hash: 'h2' } } });
    expect(r.ok).to.equal(false);
    expect(r.diagnosis).to.match(/^different checkpoint\/config: reference a \(config h1\), candidate b \(config h2\)/);
    expect(r.onlyCandidateSummary).to.deep.equal([{ pattern: 'blk.N.x', count: 2 }, { pattern: 'kq-N', count: 1 }]);
    expect(formatReport(r, { reference: 'a', candidate: 'b' })).to.include('only in candidate (3 tensors matching no tap, 2 patterns): blk.N.x (x2), kq-N');
    const same = compare(e, e, { metadata: { reference: { checkpoint: 'a', config_hash: 'h1' }, candidate: { checkpoint: 'b', config_hash: 'h1' } } });
    expect(same.ok).to.equal(true);
    expect(formatReport(same, { reference: 'a', candidate: 'b' })).to.include('note: different checkpoint files with the same config');
  });

  it('NaN in the candidate is a divergence, not a pass', () => {
    const r = compare(entries({ embed: { shape: [2], data: [1, 2] } }), entries({ embed: { shape: [2], data: [1, NaN] } }));
    expect(r.ok).to.equal(false);
    expect(r.diagnosis).to.include('non-finite');
  });

  it('presets: fp32 is the golden float32 tolerance; bf16 and fp16 as measured and derived in docs/compare.md', () => {
    expect(PRESETS).to.deep.equal({ fp32: 1e-5, bf16: 6e-2, fp16: 8e-3 }); // measured at full size: docs/compare.md
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

  it('--map slice and drop: scores over a KV cache padded to 8 cells cropped to T, a tensor dropped', () => {
    // kq [1, nh=1, T=2, S=8] padded; the tap is attn_probs [1, 1, 2, 2]
    const kq = Array.from({ length: 16 }, (_, i) => i);
    const cand = entries({ 'kq-0': { shape: [1, 1, 2, 8], data: kq }, 'noise-3': { shape: [1], data: [0] }, input_ids: { shape: [1, 2], data: [4, 5], int: true } });
    const spec = parseMapSpec({ tensors: [{ from: 'kq-{N}', to: 'layers.{N}.attn_probs', slice: [null, null, null, [0, 'T']] }, { from: 'noise-{N}', drop: true }] }, 'm.json');
    const m = applyMap(cand, spec, 'candidate');
    expect([...m.keys()]).to.deep.equal(['layers.0.attn_probs', 'input_ids']);
    expect(m.get('layers.0.attn_probs')!.shape).to.deep.equal([1, 1, 2, 2]);
    expect([...m.get('layers.0.attn_probs')!.read()]).to.deep.equal([0, 1, 8, 9]);
    const spec2 = parseMapSpec({ tensors: [{ from: 'kq-{N}', to: 'x{N}', slice: [null, null, [1, 2], [3, 5]] }] }, 'm.json');
    expect([...applyMap(cand, spec2, 'candidate').get('x0')!.read()]).to.deep.equal([11, 12]);
    expect(() => parseMapSpec({ tensors: [{ from: 'a', slice: [[2, 1]] }] }, 'm.json')).to.throw(/m\.json: tensors\[0\]: "slice"/);
    expect(() => applyMap(cand, parseMapSpec({ tensors: [{ from: 'kq-{N}', to: 'y', slice: [null, null, null, [0, 9]] }] }, 'm.json'), 'candidate')).to.throw(/kq-0.*does not fit axis 3/);
    expect(() => applyMap(cand, parseMapSpec({ tensors: [{ from: 'kq-{N}', to: 'y', slice: [null, null] }] }, 'm.json'), 'candidate')).to.throw(/its slice has 2/);
  });

  it('--plot: a layer\'s 13 taps sit left to right in forward order, every series has its own colour, and a divergent tap gets a per-position / per-head panel', () => {
    const names = tapNames(2);
    const spec: Record<string, { shape: number[]; data: number[] }> = {};
    const heads = (n: string) => /(q_rot|k_rot|attn_probs)$/.test(n);
    for (const n of names) spec[n] = { shape: heads(n) ? [1, 2, 2, 2] : [1, 2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] };
    const ref = entries(spec);
    const cand = entries({ ...spec, 'layers.1.q_rot': { shape: [1, 2, 2, 2], data: [1, 2, 3, 4, 50, 60, 70, 80] } });
    const svg = plotSvg(compare(ref, cand), 't');
    // the x of each layer-0 tap, from the circles' tooltips
    const xs = new Map<string, number>();
    for (const m of svg.matchAll(/<circle cx="([\d.]+)" cy="[\d.]+" r="3" fill="[^"]+"><title>(\w+) @ layer 0:/g)) xs.set(m[2], Number(m[1]));
    const layerTaps = names.filter((n) => n.startsWith('layers.0.')).map((n) => n.slice('layers.0.'.length));
    expect([...xs.keys()].sort()).to.deep.equal(layerTaps.slice().sort());
    for (let i = 1; i < layerTaps.length; i++) expect(xs.get(layerTaps[i])!, layerTaps[i]).to.be.above(xs.get(layerTaps[i - 1])!);
    // legend: one line per series, all colours different
    const legend = [...svg.matchAll(/<line x1="\d+" y1="[\d.]+" x2="\d+" y2="[\d.]+" stroke="(#[0-9a-f]{6})" stroke-width="2"/g)].map((m) => m[1]);
    expect(legend.length).to.equal(layerTaps.length + 3); // 13 layer taps (out also draws embed and final_norm), logits, rope.cos, rope.sin
    expect(new Set(legend).size).to.equal(legend.length);
    expect(svg).to.include('layers.1.q_rot: rel L2 per position and per head').and.include('<title>head 1: ');
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
    rewriteDump(SHORT, one, (n, d, s) => ({ data: n === 'layers.2.qkv' ? scaled(d as Float32Array, 1.0001) : d, shape: s }));
    const r = phi4(['compare', SHORT, one]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/^FAIL: first divergence at layers\.2\.qkv \(rel L2 1\.0e-4 > 1\.0e-5.*the tap before it, layers\.2\.input_norm, agrees \(0\)/m);
    expect(r.stdout.match(/DIVERGES/g)).to.have.length(1);
    // a looser tolerance lets the same perturbation through
    expect(compareFiles(SHORT, one, { tolerance: 2e-4 }).report.ok).to.equal(true);
    // with a later tap perturbed too (attn_out sorts before qkv by name), the forward-order first is named
    const two = path.join(tmp, 'two.safetensors');
    rewriteDump(SHORT, two, (n, d, s) => ({ data: n === 'layers.2.qkv' || n === 'layers.2.attn_out' ? scaled(d as Float32Array, 1.001) : d, shape: s }));
    expect(compareFiles(SHORT, two).report.firstDivergent).to.equal('layers.2.qkv');
  });

  it('lists taps present on one side only', () => {
    const fewer = path.join(tmp, 'fewer.safetensors');
    rewriteDump(SHORT, fewer, (n, d, s) => (n.startsWith('layers.1.') ? null : { data: d, shape: s }));
    const { report } = compareFiles(SHORT, fewer);
    expect(report.ok).to.equal(true);
    expect(report.onlyReference).to.deep.equal(tapNames(4).filter((n) => n.startsWith('layers.1.')));
    expect(report.onlyCandidate).to.deep.equal([]);
    expect(compareFiles(fewer, SHORT).report.onlyCandidate).to.have.length(13);
  });

  it('cli --map: another runtime\'s [B,T,nh,d] queries under its own names line up after rename + transpose', () => {
    // the "other runtime" stores q_rot as [B, T, nh, d] under its own name
    const theirs = path.join(tmp, 'theirs.safetensors');
    rewriteDump(SHORT, theirs, (n, d, s) => {
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
    const r = phi4(['compare', ours.long, dumpPath('phi4-mini-tiny.long.cuda-bf16'), '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/^FAIL: first divergence at layers\.0\.out/m);
    // blamed by default (our dump records its checkpoint): under fp32 every bf16 step is a local error,
    // under bf16 none is (the honest runtime's steps are within the bf16 blame threshold)
    const fp32 = phi4(['compare', ours.long, dumpPath('phi4-mini-tiny.long.cuda-bf16')]);
    expect(fp32.stdout).to.match(/^FAIL: per-step blame: layers\.0\.out is the first step whose own error jumps/m);
    const bf16 = phi4(['compare', ours.long, dumpPath('phi4-mini-tiny.long.cuda-bf16'), '--preset', 'bf16']);
    expect(bf16.status, show(bf16)).to.equal(0);
    expect(bf16.stdout).to.include('per-step blame: every step re-run on the candidate\'s own input agrees to 3.0e-2');
  });

  it('cli --plot writes an SVG document atomically', () => {
    const out = path.join(fs.mkdtempSync(path.join(tmp, 'plot-')), 'errors.svg');
    const r = phi4(['compare', ours.long, dumpPath('phi4-mini-tiny.long.cuda-bf16'), '--preset', 'bf16', '--plot', out]);
    expect(r.status, show(r)).to.equal(0);
    expect(fs.readdirSync(path.dirname(out))).to.deep.equal(['errors.svg']);
    const svg = fs.readFileSync(out, 'utf8');
    expect(svg).to.match(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.trimEnd().endsWith('</svg>')).to.equal(true);
    expect(svg).to.include('<polyline').and.include('tolerance 6e-2 (bf16)').and.include('PASS');
  });

  it('cli: different shapes are a finding (exit 1, named); a missing file or a file that is not safetensors: exit 2, one line', () => {
    const other = path.join(tmp, 'other-shape.safetensors');
    rewriteDump(SHORT, other, (n, d, s) => (n === 'layers.1.attn_probs' ? { data: d, shape: [s[0], s[2], s[1], s[3]] } : { data: d, shape: s }));
    const r = phi4(['compare', SHORT, other]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.include('layers.1.attn_probs').and.include('CANNOT COMPARE: shapes differ: reference [1,6,11,11], candidate [1,11,6,11]');
    expect(r.stdout).to.match(/FAIL: first divergence at layers\.1\.attn_probs \(cannot compare/);
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
      rewriteDump(SHORT, otherInputs, (n, d, s) => ({ data: n === 'input_ids' ? d.map((x, i) => (i === 3 ? x + 1 : x)) : d, shape: s }));
      await rejects([SHORT, otherInputs], /input_ids: the two dumps were run on different inputs \(element 3/);
    })();
  });
});

describe('metrics', () => {
  it('a NaN anywhere, even before larger values, makes rel L2 and max|d| NaN (found by npm run fuzz -- --kinds compare)', async () => {
    const { relL2, maxAbs } = await import('../src/oracle/metrics.js');
    const ref = Float32Array.of(1, 2, 3, 4);
    for (const at of [0, 1, 3]) {
      const c = Float32Array.of(1, 2, 3, 4);
      c[at] = NaN;
      expect(relL2(c, ref), `NaN at ${at}`).to.be.NaN;
      expect(maxAbs(c, ref), `NaN at ${at}`).to.be.NaN;
    }
    expect(relL2(Float32Array.of(1, 2, 3, 5), ref)).to.be.closeTo(1 / Math.sqrt(30), 1e-15);
  });
});
