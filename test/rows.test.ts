// Batched dumps row by row (issue 20, item 5), and shapes of another model named as such (item 8).
// The candidates are the committed transformers dump of a left-padded batch (row 1 has 5 pad
// positions) with one row, or only the pad positions, changed.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { describeRows, rowErrors } from '../src/compare/rows.js';
import { rewriteDump } from './helpers.js';
import { ROOT, phi4, show } from './cli-helpers.js';

const BATCH = path.join(ROOT, 'golden', 'dumps', 'phi4-mini-tiny.batch.safetensors');

describe('batched dumps: which rows diverge (issue 20)', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-rows-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** BATCH with layers.1.mlp_out scaled by 1.01 where `hit(row, t)` says. */
  function planted(name: string, hit: (row: number, t: number) => boolean): string {
    const out = path.join(tmp, `${name}.safetensors`);
    rewriteDump(BATCH, out, (n, data, shape) => {
      if (n !== 'layers.1.mlp_out') return { data, shape };
      const [, T, H] = shape;
      return { data: (data as Float32Array).map((x, i) => (hit(Math.floor(i / (T * H)), Math.floor(i / H) % T) ? x * 1.01 : x)), shape };
    }, true);
    return out;
  }

  it('only the padded row wrong: "row 1 of 2 diverges (only the padded row: row 1 has 5 pad positions)"', () => {
    const r = phi4(['compare', BATCH, planted('row1', (row) => row === 1), '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/layers\.1\.mlp_out .* DIVERGES +row 1 of 2 diverges \(only the padded row: row 1 has 5 pad positions\)/);
    expect(r.stdout).to.match(/FAIL: first divergence at layers\.1\.mlp_out \(.*row 1 of 2 diverges \(only the padded row/);
  });

  it('only the unpadded row wrong: "row 0 of 2 diverges (only unpadded rows)"', () => {
    const r = phi4(['compare', BATCH, planted('row0', (row) => row === 0), '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/layers\.1\.mlp_out .* DIVERGES +row 0 of 2 diverges \(only unpadded rows\)/);
  });

  it('only the pad positions differ: a PASS that says so (attention_mask 0 is not judged)', () => {
    const r = phi4(['compare', BATCH, planted('pads', (row, t) => row === 1 && t < 5), '--no-blame']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.match(/PASS: .*layers\.1\.mlp_out: only the padded positions of row 1 differ \(rel L2 up to 1\.0e-2; attention_mask 0, not judged\)/);
  });

  it('rowErrors: per row, real and padded positions apart', () => {
    const ref = Float32Array.from([1, 1, 1, 1, 1, 1]); // [B=2, T=3, 1]
    const cand = Float32Array.from([1, 1, 1, 2, 1, 1]);
    const rows = rowErrors(cand, ref, [2, 3, 1], 1, [1, 1, 1, 0, 1, 1])!;
    expect(rows.real).to.deep.equal([0, 0]);
    expect(rows.padded).to.deep.equal([null, 1]);
    expect(rows.pads).to.deep.equal([0, 1]);
    expect(describeRows(rows, 1e-5, true)).to.equal('only the padded positions of row 1 differ (rel L2 up to 1.0e+0; attention_mask 0, not judged)');
  });

  it('a dump of another model (hidden 64 vs 96) is not told to "transpose with --map"', () => {
    const a = path.join(tmp, 'phi4.safetensors');
    const b = path.join(tmp, 'phi3.safetensors');
    for (const [m, out] of [['phi4-mini-tiny', a], ['phi3-mini-tiny', b]]) {
      const d = phi4(['dump', path.join(ROOT, 'golden', 'models', m), '--ids', '1,5,9', '--out', out]);
      expect(d.status, show(d)).to.equal(0);
    }
    const r = phi4(['compare', a, b, '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.match(/embed +1x3x96 +CANNOT COMPARE: shapes differ: reference \[1,3,96\], candidate \[1,3,64\] \(layout B,T,H\): sizes 96 vs 64, not a layout: a different model or config/);
    expect(r.stdout).to.not.include('transpose with --map');
  });
});
