// The bench's machine limits (bench/limits.ts, layers/kernels/roofline.wat): the committed module
// is the assembly of its source, the micro-kernels compute what they claim (so a fast number
// cannot come from skipped work), and a small measurement runs on every thread. And its llama.cpp
// anchor (bench/llama-bench.ts): arguments checked, output read, failures reported.

import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ROOFLINE_WASM } from '../layers/kernels/roofline-wasm.js';
import { KERNEL_DIR, assemble, kernelSource } from '../tools/assemble-kernels.js';
import { D_CHAIN, M_CHAIN, rooflineInstance } from '../bench/limits-worker.js';
import { chainsExpected, measureLimits } from '../bench/limits.js';
import { checkLlamaBench, runLlamaBench } from '../bench/llama-bench.js';
import { UsageError } from '../src/cli/args.js';
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
      // A rate, not a zero or an infinity from a skipped loop. No lower bound: the rates are wall-clock
      // measurements on a shared machine (a preempted 10 ms pass is many times slower); that the
      // loops do their work is checked bit for bit above, and load can only lower a rate, never
      // raise it past the upper bound.
      expect(v).to.be.above(0).and.lessThan(1e13);
    }
  });
});

describe('the llama.cpp anchor (bench/llama-bench.ts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'phi4-llama-bench-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a missing, non-file or non-executable llama-bench and a missing GGUF, as usage errors', () => {
    const plain = join(dir, 'plain');
    writeFileSync(plain, '');
    chmodSync(plain, 0o644);
    for (const [exe, gguf] of [[join(dir, 'none'), plain], [dir, plain], [plain, plain]]) {
      expect(() => checkLlamaBench(exe!, gguf!)).to.throw(UsageError, /--llama-bench/);
    }
    const exe = join(dir, 'exe');
    writeFileSync(exe, '#!/bin/sh\n');
    chmodSync(exe, 0o755);
    expect(() => checkLlamaBench(exe, join(dir, 'none.gguf'))).to.throw(UsageError, /--gguf/);
    expect(() => checkLlamaBench(exe, plain)).to.not.throw();
  });

  it('reads prefill and decode from llama-bench JSON, and fails on a failed or unreadable run', () => {
    // a stand-in printing what llama-bench -o json prints (two records), after checking its arguments
    const exe = join(dir, 'fake-llama-bench');
    const records = [
      { build_commit: 'abc1234', model_type: 'phi3 3B BF16', n_threads: 2, n_prompt: 32, n_gen: 0, avg_ts: 40.5 },
      { build_commit: 'abc1234', model_type: 'phi3 3B BF16', n_threads: 2, n_prompt: 0, n_gen: 4, avg_ts: 4 },
    ];
    writeFileSync(exe, `#!/bin/sh\n[ "$*" = "-m model.gguf -p 32 -n 4 -t 2 -r 2 -o json" ] || { echo "bad args: $*" >&2; exit 3; }\necho '${JSON.stringify(records)}'\n`);
    chmodSync(exe, 0o755);
    const r = runLlamaBench(exe, 'model.gguf', 32, 4, 2, 2);
    expect([r.prompt_tokens_per_s, r.decode_tokens_per_s, r.decode_s_per_token, r.threads, r.build_commit]).to.deep.equal([40.5, 4, 0.25, 2, 'abc1234']);
    expect(() => runLlamaBench(exe, 'model.gguf', 33, 4, 2, 2)).to.throw(/exited with 3.*bad args/);
    const garbled = join(dir, 'garbled');
    writeFileSync(garbled, '#!/bin/sh\necho "| model | size |"\n');
    chmodSync(garbled, 0o755);
    expect(() => runLlamaBench(garbled, 'model.gguf', 32, 4, 2, 2)).to.throw(/not the JSON/);
  });
});
