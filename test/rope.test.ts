// Rotary tables against transformers' own Phi3RotaryEmbedding, at positions spread over the
// whole context (golden/rope/, made by golden/generator/rope_tables.py): 701 short-factor
// positions up to 4095 and 2291 long-factor positions up to 131071 for the real Phi-4-mini config.

import { expect } from 'chai';
import { join } from 'node:path';
import { cosSin, inverseFrequencies, rotaryTableData } from '../layers/rotary.js';
import { loadConfig } from '../src/model/config.js';
import { GOLDEN_DIR, modelDir } from '../src/oracle/golden.js';
import { SafetensorsFile } from '../weights/index.js';

const CASES = [
  { name: 'phi-4-mini-instruct', config: join(GOLDEN_DIR, 'configs/phi-4-mini-instruct.json') },
  { name: 'phi4-mini-tiny', config: modelDir('phi4-mini-tiny') },
  { name: 'phi3-mini-tiny', config: modelDir('phi3-mini-tiny') },
];

// Two float32 ulps of a value in [1, 2): transformers' float32 cos/sin is within one ulp of the
// true value (Sleef), ours is the correctly rounded one, and the scaling multiply rounds once more.
const TABLE_TOLERANCE = 2 ** -22;

/** max |a[:, :half] - ref| with a [n, 2 half] and ref [n, half]; optionally only some columns. */
function maxDiff(a: Float32Array, ref: Float32Array, half: number, cols?: (i: number) => boolean): number {
  let m = 0;
  for (let n = 0; n < ref.length / half; n++) {
    for (let i = 0; i < half; i++) if (!cols || cols(i)) m = Math.max(m, Math.abs(a[n * 2 * half + i] - ref[n * half + i]));
  }
  return m;
}

describe('rotary tables against transformers over the whole context', () => {
  for (const c of CASES) {
    describe(c.name, () => {
      const f = SafetensorsFile.open(join(GOLDEN_DIR, `rope/rope.${c.name}.safetensors`));
      const rope = loadConfig(c.config).rope;
      after(() => f.close());

      for (const set of ['short', 'long']) {
        const pos = f.readInt32(`${set}.positions`);
        const long = Math.max(...pos) + 1 > rope.originalMaxPositions && rope.type === 'longrope';
        const hfInv = f.readFloat32(`inv_freq.${set}`);
        const half = rope.rotaryDim / 2;

        it(`${set} set: from transformers' frequencies, our angle/cos/sin/scaling rounding gives its tables (${pos.length} positions up to ${Math.max(...pos)})`, () => {
          const t = cosSin(hfInv, pos, rope.attentionScaling);
          expect(maxDiff(t.cos, f.readFloat32(`${set}.cos`), half)).to.be.at.most(TABLE_TOLERANCE);
          expect(maxDiff(t.sin, f.readFloat32(`${set}.sin`), half)).to.be.at.most(TABLE_TOLERANCE);
        });

        it(`${set} set: our frequencies are transformers' bit for bit, except where its vectorised pow is not correctly rounded`, () => {
          const ours = inverseFrequencies(rope, long);
          const vec = f.readFloat32('pow.vectorised');
          const scalar = f.readFloat32('pow.scalar');
          const factors = rope.type === 'longrope' ? (long ? rope.longFactor! : rope.shortFactor!) : null;
          for (let i = 0; i < half; i++) {
            // what transformers computes from its correctly rounded (scalar) pow
            const fromScalar = Math.fround(1 / (factors ? Math.fround(Math.fround(factors[i]) * scalar[i]) : scalar[i]));
            expect(ours[i], `inv_freq[${i}]`).to.equal(fromScalar);
            if (vec[i] === scalar[i]) expect(ours[i], `inv_freq[${i}]`).to.equal(hfInv[i]);
          }
        });

        it(`${set} set: our tables match transformers' wherever the frequencies do; the rest is bounded by position x one ulp`, () => {
          const t = rotaryTableData(rope, pos);
          expect(t.long).to.equal(long);
          const ours = inverseFrequencies(rope, long);
          const same = (i: number) => ours[i] === hfInv[i];
          const refCos = f.readFloat32(`${set}.cos`);
          const refSin = f.readFloat32(`${set}.sin`);
          expect(maxDiff(t.cos, refCos, half, same)).to.be.at.most(TABLE_TOLERANCE);
          expect(maxDiff(t.sin, refSin, half, same)).to.be.at.most(TABLE_TOLERANCE);
          // where transformers' own pow is one ulp off, the angle differs by p * |d inv_freq|
          let bound = TABLE_TOLERANCE;
          for (let i = 0; i < half; i++) if (!same(i)) bound = Math.max(bound, Math.max(...pos) * Math.abs(ours[i] - hfInv[i]) * rope.attentionScaling + TABLE_TOLERANCE);
          expect(maxDiff(t.cos, refCos, half)).to.be.at.most(bound);
          expect(maxDiff(t.sin, refSin, half)).to.be.at.most(bound);
        });
      }
    });
  }
});
