// The float64 reference's own products (src/oracle/reference/gemm.wat, gemm.ts, products.ts): the
// committed module against its source, every block and padding path against sums computed here,
// the same result for any number of threads, and the whole forward against an independent numpy
// float64 forward (bench/numpy-forward.py) where python3 with numpy is installed.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../src/model/config.js';
import { modelDir } from '../src/oracle/golden.js';
import { relL2 } from '../src/oracle/metrics.js';
import { referenceForward } from '../src/oracle/reference/forward.js';
import { GemmPool, KIND_BF16, KIND_F64 } from '../src/oracle/reference/gemm.js';
import { GEMM_WASM } from '../src/oracle/reference/gemm-wasm.js';
import { REFERENCE_WASM_TS, referenceKernelSource } from '../tools/assemble-reference.js';
import { Checkpoint, bf16BitsToFloat32, float32ToBf16Bits } from '../weights/index.js';
import { numpyAnchor } from '../bench/numpy-anchor.js';

/** Small integers: every product and every partial sum is exact in float64, whatever the order. */
function ints(n: number, seed: number): Float64Array {
  let s = seed;
  return Float64Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s % 17) - 8;
  });
}

function naive(x: Float64Array, w: ArrayLike<number>, T: number, O: number, K: number): Float64Array {
  const y = new Float64Array(T * O);
  for (let t = 0; t < T; t++) for (let o = 0; o < O; o++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[t * K + k] * w[o * K + k];
    y[t * O + o] = s;
  }
  return y;
}

/** y = x w^T through the pool; w given as float64 values, stored as bf16 bits for KIND_BF16. */
function poolProduct(threads: number, kind: typeof KIND_F64 | typeof KIND_BF16, x: Float64Array, w: Float64Array, T: number, O: number, K: number): Float64Array {
  const p = GemmPool.get(threads);
  p.reset();
  let wa: number;
  if (kind === KIND_BF16) {
    wa = p.alloc(w.length * 2);
    const bits = new Uint16Array(p.memory.buffer, wa, w.length);
    w.forEach((v, i) => { bits[i] = float32ToBf16Bits(v); });
  } else {
    wa = p.put(w);
  }
  const xp = p.packX(p.put(x), K, T, K);
  const y = p.alloc(T * O * 8);
  p.gemm(kind, xp, T, K, wa, K, y, O, O);
  const out = p.f64(y, T * O).slice();
  p.reset();
  return out;
}

describe('float64 reference products', () => {
  it('the committed module is the assembly of src/oracle/reference/gemm.wat (node dist/tools/assemble-reference.js)', async () => {
    expect(readFileSync(REFERENCE_WASM_TS, 'utf8')).to.equal(await referenceKernelSource());
    expect(GEMM_WASM.length).to.be.greaterThan(1000);
  });

  // shapes that take every path: one element, rows not a multiple of 4, odd columns (a padded
  // pair), odd k (a padded pair of k), k over one KC = 256 block and its odd remainder, more
  // columns than one 32-row weight block, and fewer columns than threads' blocks
  const SHAPES: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [4, 2, 256], [37, 45, 513], [8, 64, 257], [6, 33, 300], [130, 3, 2]];
  for (const [T, O, K] of SHAPES) {
    it(`T ${T}, O ${O}, K ${K}: float64 and bf16 weights, 1 and 2 threads, equal to the sums taken here`, () => {
      const x = ints(T * K, T + O + K), w = ints(O * K, 7 * K + 1);
      const want = naive(x, w, T, O, K);
      for (const threads of [1, 2]) {
        for (const kind of [KIND_F64, KIND_BF16] as const) {
          expect(poolProduct(threads, kind, x, w, T, O, K), `${threads} threads, kind ${kind}`).to.deep.equal(want);
        }
      }
    });
  }

  it('widens bf16 weights exactly (fractions, subnormals, signs) and sums non-integers to float64 rounding', () => {
    const T = 9, O = 70, K = 300;
    const x = Float64Array.from({ length: T * K }, (_, i) => Math.sin(i + 1) * 2 ** ((i % 40) - 20));
    const w = Float64Array.from({ length: O * K }, (_, i) => bf16BitsToFloat32(float32ToBf16Bits(Math.cos(3 * i) * 2 ** ((i % 200) - 133))));
    const want = naive(x, w, T, O, K);
    const got = poolProduct(2, KIND_BF16, x, w, T, O, K);
    // another order of float64 sums: measured 2.3e-16 relative L2 here; the float32 sums the
    // model's kernels would be checked with sit near 1e-7
    expect(relL2(got, want)).to.be.below(1e-14);
    expect(poolProduct(1, KIND_F64, x, w, T, O, K)).to.deep.equal(got);
  });

  it('gives every tap bit for bit the same with 1 and 2 threads (phi4-mini-tiny, 40 tokens, long factors)', () => {
    const dir = modelDir('phi4-mini-tiny');
    const cfg = loadConfig(dir);
    const inputs = { inputIds: Int32Array.from({ length: 40 }, (_, i) => (i * 7919 + 11) % cfg.vocabSize), batch: 1, seq: 40 };
    const run = (threads: number) => {
      const taps = new Map<string, Float64Array>();
      const ckpt = Checkpoint.open(dir);
      try {
        referenceForward(ckpt, cfg, inputs, { threads, onTap: (n, a) => taps.set(n, a.slice()) });
      } finally {
        ckpt.close();
      }
      return taps;
    };
    const one = run(1), two = run(2);
    expect([...two.keys()]).to.deep.equal([...one.keys()]);
    for (const [n, a] of one) expect(two.get(n), n).to.deep.equal(a);
  });

  describe('against bench/numpy-forward.py (python3 with numpy)', () => {
    const haveNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
    let tmp: string;
    before(() => { tmp = mkdtempSync(join(tmpdir(), 'phi4-numpy-')); });
    after(() => rmSync(tmp, { recursive: true, force: true }));
    // logits rel L2, 40 tokens (past phi4-mini-tiny's original 32 positions: long factors):
    // measured 0.9e-15 to 2.0e-15 over the six golden models; the limit is 1e-14. (A float32
    // step anywhere, e.g. float32 cos in the rotary tables, shows as 1e-8.)
    for (const model of ['phi4-mini-tiny', 'phi3-mini-tiny', 'phi35-mini-tiny', 'phi3-medium-tiny', 'phi4-mini-geometry', 'phi4-toy-induction']) {
      it(`${model}: the same logits as numpy's float64 forward, to float64 rounding`, function () {
        if (!haveNumpy) {
          console.log('      skipped: python3 with numpy is not installed');
          this.skip();
        }
        const dir = modelDir(model);
        const cfg = loadConfig(dir);
        const T = 40;
        const out = join(tmp, `${model}.f64`);
        const r = spawnSync('python3', ['bench/numpy-forward.py', dir, '--tokens', String(T), '--out', out], { encoding: 'utf8' });
        expect(r.status, r.stderr).to.equal(0);
        expect(JSON.parse(r.stdout).tokens).to.equal(T);
        const theirs = new Float64Array(readFileSync(out).buffer.slice(0));
        const ckpt = Checkpoint.open(dir);
        try {
          const ids = Int32Array.from({ length: T }, (_, i) => (i * 7919 + 11) % cfg.vocabSize);
          const ours = referenceForward(ckpt, cfg, { inputIds: ids, batch: 1, seq: T });
          expect(theirs.length).to.equal(ours.length);
          expect(relL2(ours, theirs)).to.be.below(1e-14);
        } finally {
          ckpt.close();
        }
      });
    }

    it('the benches\' anchor (bench/numpy-anchor.ts): the script\'s own timing, or one line saying why there is none', function () {
      const bad = numpyAnchor(join(tmp, 'no-such-checkpoint'), 4);
      expect(bad.seconds).to.equal(undefined);
      expect(bad.missing).to.match(haveNumpy ? /numpy-forward\.py exited 1: .*no-such-checkpoint/ : /python3|numpy/);
      if (!haveNumpy) this.skip();
      const a = numpyAnchor(modelDir('phi4-mini-tiny'), 8);
      expect(a.missing).to.equal(undefined);
      expect(a.tokens).to.equal(8);
      expect(a.seconds).to.be.above(0);
      // the script prints seconds to the millisecond, tokens per second from the unrounded time
      expect(a.tokens_per_s! * a.seconds!).to.be.closeTo(8, 8 * (0.0005 / a.seconds! + 1e-3));
      expect(a.wall_s).to.be.at.least(a.seconds!);
    });
  });
});
