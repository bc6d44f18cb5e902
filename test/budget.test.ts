// compare --budget bf16|f16 (issue 20, item 9): each tap judged against K x the float64
// reference's own error with that storage emulated, on the checkpoint and inputs the reference
// dump records. The real bf16 runtime (transformers on CUDA, golden/dumps/*.cuda-bf16) passes its
// budget; a small rope_theta bug that the constant presets pass fails it; the f16 budget is
// exercised on emulated f16 candidates only (no fp16 runtime's dump exists here: no GPU).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { plantedCheckpoint, rewriteDump } from './helpers.js';
import { ROOT, expectBadInput, phi4, show } from './cli-helpers.js';
import { BUDGET_K } from '../src/compare/budget.js';

const MODEL = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const CUDA = (c: string) => path.join(ROOT, 'golden', 'dumps', `phi4-mini-tiny.${c}.cuda-bf16.safetensors`);

interface JTap { name: string; relL2: number; ok: boolean; budget?: number; presetOk?: boolean }

describe('compare --budget: tolerances from the case at hand (issue 20)', function () {
  this.timeout(180_000);
  let tmp: string;
  const ref: Record<string, string> = {};
  const cand: Record<string, string> = {};
  /** `phi4 dump DIR --inputs INPUTS ...extra` written as another runtime's dump (no metadata). */
  const foreignDump = (name: string, dir: string, inputs: string, extra: string[]) => {
    const raw = path.join(tmp, `${name}.raw.safetensors`);
    const r = phi4(['dump', dir, '--inputs', inputs, '--out', raw, ...extra]);
    expect(r.status, show(r)).to.equal(0);
    cand[name] = path.join(tmp, `${name}.safetensors`);
    rewriteDump(raw, cand[name], (_n, data, shape) => ({ data, shape }));
  };
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-budget-'));
    for (const c of ['short', 'long']) {
      ref[c] = path.join(tmp, `ref-${c}.safetensors`);
      const r = phi4(['dump', MODEL, '--inputs', CUDA(c), '--out', ref[c]]);
      expect(r.status, show(r)).to.equal(0);
    }
    const f64 = ['--precision', 'float64'];
    // a bf16 runtime with rope_theta 11000 for 10000; an f16 one with 10300; an honest f16 one
    foreignDump('theta-bf16', plantedCheckpoint(MODEL, tmp, 'theta11000', (c) => ({ ...c, rope_theta: 11000 })), CUDA('short'), [...f64, '--rounding', 'bf16']);
    foreignDump('theta-f16', plantedCheckpoint(MODEL, tmp, 'theta10300', (c) => ({ ...c, rope_theta: 10300 })), CUDA('short'), [...f64, '--rounding', 'f16']);
    foreignDump('honest-f16', MODEL, CUDA('long'), [...f64, '--rounding', 'f16']);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const c of ['short', 'long']) {
    it(`transformers on CUDA in bf16 (${c}) passes --budget bf16, and the table prints each tap's budget beside the preset`, () => {
      const r = phi4(['compare', ref[c], CUDA(c), '--budget', 'bf16']);
      expect(r.status, show(r)).to.equal(0);
      expect(r.stdout).to.include(`tolerance: per tap, its bf16 budget: ${BUDGET_K} x the float64 reference's own error with bf16 storage emulated`);
      expect(r.stdout).to.include('beside it the constant preset bf16 (rel L2 <= 6.0e-2)');
      const rows = r.stdout.split('\n').filter((l) => /^ {2}(embed|layers\.\d\.out|final_norm|logits) /.test(l));
      expect(rows, show(r)).to.have.length(6);
      // rel L2, max|d|, cosine, then the budget and the preset's verdict
      for (const row of rows) expect(row, row).to.match(/ \d\.\d{8} +(\d\.\de-\d|0) +ok +ok/);
      expect(r.stdout).to.match(/^PASS: all 6 common taps within their bf16 budgets/m);

      const j = JSON.parse(phi4(['compare', ref[c], CUDA(c), '--budget', 'bf16', '--json']).stdout);
      expect(j.schemaVersion).to.equal(1);
      expect(j.tolerance).to.equal(6e-2);
      expect(j.budget.rounding).to.equal('bf16');
      expect(j.budget.k).to.equal(BUDGET_K);
      expect(j.budget.checkpoint).to.equal(path.resolve(MODEL));
      const emulated = new Map<string, number>(j.budget.taps.map((t: { name: string; emulated: number }) => [t.name, t.emulated]));
      expect(emulated.size).to.be.greaterThan(50); // every tap of the reference dump
      for (const t of j.taps as JTap[]) {
        expect(t.budget, t.name).to.equal(Math.max(BUDGET_K * emulated.get(t.name)!, 1e-5));
        expect(t.presetOk, t.name).to.equal(true);
        expect(t.relL2, t.name).to.be.at.most(t.budget!);
      }
      // the budget is far tighter than the constant on the real case: the first layer's output
      const l0 = (j.taps as JTap[]).find((t) => t.name === 'layers.0.out')!;
      expect(l0.budget).to.be.below(6e-2 / 3);
    });
  }

  it('the emulation budget is its own error: layers.0.out under bf16 is the float64 reference with bf16 storage against float64', () => {
    const exact = path.join(tmp, 'exact.safetensors');
    const bf = path.join(tmp, 'bf16.safetensors');
    expect(phi4(['dump', MODEL, '--inputs', CUDA('short'), '--out', exact, '--precision', 'float64', '--taps', 'layers.0.out']).status).to.equal(0);
    expect(phi4(['dump', MODEL, '--inputs', CUDA('short'), '--out', bf, '--precision', 'float64', '--rounding', 'bf16', '--taps', 'layers.0.out']).status).to.equal(0);
    const e = JSON.parse(phi4(['compare', exact, bf, '--no-blame', '--preset', 'bf16', '--json']).stdout).taps.find((t: JTap) => t.name === 'layers.0.out');
    const j = JSON.parse(phi4(['compare', ref.short, CUDA('short'), '--budget', 'bf16', '--json', '--no-blame']).stdout);
    const b = j.budget.taps.find((t: { name: string }) => t.name === 'layers.0.out');
    expect(b.emulated / Math.max(e.relL2, e.positionRms)).to.be.closeTo(1, 1e-6);
  });

  it('rope_theta 11000 in a bf16 runtime: the constant bf16 preset passes it, the bf16 budget fails it at rope.cos', () => {
    const plain = phi4(['compare', ref.short, cand['theta-bf16'], '--preset', 'bf16', '--no-blame']);
    expect(plain.status, show(plain)).to.equal(0);
    const r = phi4(['compare', ref.short, cand['theta-bf16'], '--budget', 'bf16', '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    const row = r.stdout.split('\n').find((l) => l.startsWith('  rope.cos '))!;
    expect(row, show(r)).to.match(/ok +DIVERGES/); // within the preset, over its budget
    expect(r.stdout).to.match(/^FAIL: first divergence at rope\.cos \(rel L2 \S+ > \S+/m);
    const j = JSON.parse(phi4(['compare', ref.short, cand['theta-bf16'], '--budget', 'bf16', '--no-blame', '--json']).stdout);
    expect(j.ok).to.equal(false);
    expect(j.firstDivergent).to.equal('rope.cos');
    expect((j.taps as JTap[]).every((t) => t.presetOk)).to.equal(true);
  });

  it('--budget f16: an emulated f16 candidate passes, rope_theta 10300 (within the constant fp16 preset) fails, the CUDA bf16 run fails', () => {
    const honest = phi4(['compare', ref.long, cand['honest-f16'], '--budget', 'f16']);
    expect(honest.status, show(honest)).to.equal(0);
    expect(honest.stdout).to.include('beside it the constant preset fp16 (rel L2 <= 8.0e-3)');
    expect(phi4(['compare', ref.short, cand['theta-f16'], '--preset', 'fp16', '--no-blame']).status).to.equal(0);
    const theta = phi4(['compare', ref.short, cand['theta-f16'], '--budget', 'f16', '--no-blame']);
    expect(theta.status, show(theta)).to.equal(1);
    expect(theta.stdout).to.match(/^FAIL: first divergence at rope\.cos/m);
    // a bf16 runtime is not an f16 one
    const bf = phi4(['compare', ref.short, CUDA('short'), '--budget', 'f16', '--no-blame']);
    expect(bf.status, show(bf)).to.equal(1);
  });

  it('no readable recorded checkpoint: one line, exit 2; --checkpoint gives it', () => {
    const bare = path.join(tmp, 'ref-bare.safetensors');
    rewriteDump(ref.short, bare, (_n, data, shape) => ({ data, shape }));
    expectBadInput(phi4(['compare', bare, CUDA('short'), '--budget', 'bf16']), ['--budget', bare, 'records no checkpoint', '--checkpoint DIR']);
    expect(phi4(['compare', bare, CUDA('short'), '--budget', 'bf16', '--checkpoint', MODEL]).status).to.equal(0);
    // a dump whose checkpoint has gone since
    const dir = plantedCheckpoint(MODEL, tmp, 'gone', (c) => c);
    const gone = path.join(tmp, 'ref-gone.safetensors');
    expect(phi4(['dump', dir, '--inputs', CUDA('short'), '--out', gone]).status).to.equal(0);
    fs.rmSync(dir, { recursive: true });
    expectBadInput(phi4(['compare', gone, CUDA('short'), '--budget', 'bf16']), ['--budget', dir, 'can no longer be read']);
  });

  it('usage: unknown precision, a conflicting --preset, --rtol: exit 2', () => {
    expectBadInput(phi4(['compare', ref.short, CUDA('short'), '--budget', 'fp8']), ['--budget', 'fp8', 'bf16, f16']);
    expectBadInput(phi4(['compare', ref.short, CUDA('short'), '--budget', 'bf16', '--preset', 'fp16']), ['--budget bf16', 'fp16']);
    expectBadInput(phi4(['compare', ref.short, CUDA('short'), '--budget', 'bf16', '--rtol', '1e-3']), ['--budget', '--rtol']);
  });
});
