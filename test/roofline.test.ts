// The bench's machine limits (bench/limits.ts, layers/kernels/roofline.wat): the committed module
// is the assembly of its source, the micro-kernels compute what they claim (so a fast number
// cannot come from skipped work), and a small measurement runs on every thread.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { ROOFLINE_WASM } from '../layers/kernels/roofline-wasm.js';
import { KERNEL_DIR, assemble, kernelSource } from '../tools/assemble-kernels.js';
import { D_CHAIN, M_CHAIN, rooflineInstance } from '../bench/limits-worker.js';
import { chainsExpected, measureLimits } from '../bench/limits.js';
import { rand } from './helpers.js';

describe('machine limits (bench/limits.ts)', () => {
  it('the committed roofline module is the assembly of layers/kernels/roofline.wat (npm run kernels)', async () => {
    const bytes = await assemble(join(KERNEL_DIR, 'roofline.wat'));
    expect(Buffer.from(ROOFLINE_WASM, 'base64').equals(Buffer.from(bytes))).to.equal(true);
    expect(readFileSync(join(KERNEL_DIR, 'roofline-wasm.ts'), 'utf8')).to.equal(await kernelSource('roofline'));
  });

  it('the chains compute the recurrence they time, float64 and float32, bit for bit', () => {
    const f = rooflineInstance(new WebAssembly.Memory({ initial: 0, maximum: 1, shared: true }));
    for (const iters of [0, 1, 7, 1000, 100_000]) {
      expect(f.chains_f64(iters, M_CHAIN, D_CHAIN)).to.equal(chainsExpected('f64', iters));
      expect(f.chains_f32(iters, M_CHAIN, D_CHAIN)).to.equal(chainsExpected('f32', iters));
    }
    expect(chainsExpected('f64', 1000)).to.not.equal(chainsExpected('f64', 999)); // every step changes the result
  });

  it('read sums every 32-bit word of its range (modulo 2^32)', () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 2, shared: true });
    const words = new Uint32Array(memory.buffer);
    const r = rand(words.length, 9);
    for (let i = 0; i < words.length; i++) words[i] = Math.floor((r[i]! + 1) * 2 ** 31);
    const f = rooflineInstance(memory);
    for (const [at, bytes] of [[0, 0], [0, 64], [192, 4096], [64, 2 * 65536 - 64]]) {
      let s = 0;
      for (let i = at / 4; i < (at + bytes) / 4; i++) s = (s + words[i]!) | 0;
      expect(f.read(at, bytes)).to.equal(s);
    }
  });

  it('measures the rooflines and the read bandwidth on one thread and on two', async () => {
    const l = await measureLimits(2 ** 22 + 100, 2, 0.01);
    expect(l.threads).to.equal(2);
    expect(l.read_bytes).to.equal(2 ** 22); // whole lines, split evenly between the threads
    for (const v of [l.f64_roofline_flops_one_thread, l.f64_roofline_flops, l.f32_roofline_flops_one_thread, l.f32_roofline_flops, l.read_bytes_per_s_one_thread, l.read_bytes_per_s]) {
      expect(v).to.be.greaterThan(1e8).and.lessThan(1e13); // a rate, not a zero or an infinity from a skipped loop
    }
  });
});
