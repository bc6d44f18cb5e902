// The LongRoPE policy fingerprint of a generation (`phi4 compare` on two `generate --out` files),
// on the three scenarios real runtimes got wrong (phi4-mini-tiny: original context 32 of 1024):
//   a short prompt in a long allocated context   ggml-org/llama.cpp#24823  -> fixed-long from step 0
//   generation crossing the original context     vllm-project/vllm#19489   -> stale from the crossing
//   a chunked prefill crossing it                trymirai/uzu#604          -> chunked, from step 0
// Each buggy candidate is made by our own `phi4 generate`, and where transformers made one by
// transformers: golden phi4-mini-tiny.generate (its cached path across the boundary is the stale
// policy) and .generate-chunked (its forward called 16 or 20 tokens at a time: chunked).
// The truth is transformers' forward over the whole sequence: golden step_logits_nocache, and the
// golden forward dumps' last logits row.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../weights/index.js';
import { F32_TOLERANCE, dumpPath, modelDir } from '../src/oracle/golden.js';
import { type GenerateOptions, checkPolicy, generate, writeGeneration } from '../src/generate/generate.js';
import type { RopePolicy } from '../src/generate/generate.js';
import { chunkCandidates, fitPolicies } from '../src/generate/rope-policy.js';
import { addPolicyFit, compareGenerations, readGeneration } from '../src/compare/generation.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { useBackend } from './helpers.js';
import { ROOT, phi4, show } from './cli-helpers.js';

const MODEL = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const SHORT = '1,5,9,300,7,42,17,99,512,3,8'; // 11 tokens: with 8 new ones, 19 <= 32 positions

function inputIds(kase: string, name = 'input_ids'): number[] {
  const f = SafetensorsFile.open(dumpPath(kase));
  try {
    return Array.from(f.readInt32(name));
  } finally {
    f.close();
  }
}

/** A generate-format file with no metadata (another runtime's run), from given arrays. */
function writeRun(out: string, prompt: ArrayLike<number>, ids: ArrayLike<number>, logits: Float32Array): string {
  const tensors: TensorToWrite[] = [
    { name: 'prompt_ids', dtype: 'I32', shape: [1, prompt.length], data: Int32Array.from(prompt) },
    { name: 'generated_ids', dtype: 'I32', shape: [ids.length], data: Int32Array.from(ids) },
    { name: 'step_logits', dtype: 'F32', shape: [ids.length, logits.length / ids.length], data: logits },
  ];
  writeSafetensors(out, tensors);
  return out;
}

/** One of the golden generate file's runs ('' cached, '_nocache') as a run file of its own. */
function goldenRun(kase: string, suffix: string, out: string): string {
  const f = SafetensorsFile.open(dumpPath(kase));
  try {
    return writeRun(out, f.readInt32('prompt_ids'), f.readInt32(`generated_ids${suffix}`), f.readFloat32(`step_logits${suffix}`));
  } finally {
    f.close();
  }
}

/** Our own run's file with its metadata (checkpoint, prefill_chunk) dropped. */
function foreign(src: string, out: string): string {
  const f = SafetensorsFile.open(src);
  try {
    return writeRun(out, f.readInt32('prompt_ids'), f.readInt32('generated_ids'), f.readFloat32('step_logits'));
  } finally {
    f.close();
  }
}

describe('LongRoPE policy fingerprint of a generation: the bug scenarios (phi4 generate + phi4 compare)', function () {
  this.timeout(120_000);
  let tmp: string;
  const at = (n: string) => path.join(tmp, n);
  let m: Phi3Model;
  /** `phi4 generate ... --out` itself, where its options and summary are under test. */
  const gen = (args: string[], out: string) => {
    const r = phi4(['generate', MODEL, ...args, '--out', at(out)]);
    expect(r.status, show(r)).to.equal(0);
    return { path: at(out), stderr: r.stderr };
  };
  /** The same run in process (what the command calls), for the other candidates. */
  const run = (prompt: number[], n: number, out: string, opts: Partial<GenerateOptions> = {}) => {
    const r = generate(m, prompt, { maxNewTokens: n, eosIds: [], ...opts });
    writeGeneration(at(out), m, prompt, r, { rope_policy: opts.ropePolicy ?? 'default', ...(opts.prefillChunk ? { prefill_chunk: String(opts.prefillChunk) } : {}) });
    return at(out);
  };
  const SHORT_IDS = SHORT.split(',').map(Number);
  /** `phi4 compare ref cand --json ...extra` itself. */
  const compareJson = (ref: string, cand: string, extra: string[] = []) => {
    const r = phi4(['compare', ref, cand, '--json', ...extra]);
    expect(r.status, show(r)).to.be.oneOf([0, 1]);
    return { status: r.status, j: JSON.parse(r.stdout) };
  };
  /** What the command computes, in process (the checkpoint: the tiny model), for the other cases. */
  const compareHere = (ref: string, cand: string) => {
    const read = (p: string) => {
      const f = SafetensorsFile.open(p);
      try {
        return readGeneration(p, f);
      } finally {
        f.close();
      }
    };
    const [a, b] = [read(ref), read(cand)];
    const report = compareGenerations(a, b);
    addPolicyFit(report, m, a, b, MODEL);
    return { status: report.ok ? 0 : 1, j: JSON.parse(JSON.stringify(report)) };
  };
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-policy-'));
    await useBackend('wasm');
    m = Phi3Model.load(MODEL);
  });
  after(() => {
    m.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('a short prompt in a long allocated context (llama.cpp#24823)', () => {
    let ref: string;
    before(() => {
      ref = run(SHORT_IDS, 8, 'short-ref.safetensors');
    });

    it('--rope-policy from-context --context 1024 on an 11-token prompt: compare names fixed-long, leaving the default at step 0', () => {
      const cand = gen(['--ids', SHORT, '--max-new-tokens', '8', '--rope-policy', 'from-context', '--context', '1024'], 'ctx1024.safetensors');
      expect(cand.stderr).to.include('rope policy from-context (context 1024: the long factors throughout)');
      const { status, j } = compareJson(ref, cand.path);
      expect(status).to.equal(1);
      expect(j.kind).to.equal('generation');
      expect(j.firstDivergentStep).to.equal(0);
      expect(j.policy.candidate.matching).to.deep.equal(['fixed-long']);
      expect(j.policy.candidate.best.leavesDefaultAt).to.equal(0);
      expect(j.policy.candidate.best.worst).to.be.at.most(F32_TOLERANCE);
      const next = j.policy.candidate.fits.find((f: { policy: string }) => f.policy === 'default');
      expect(next.worst).to.be.above(1e-2); // the fit tells them apart by orders of magnitude
      expect(j.diagnosis).to.include('the step logits follow fixed-long').and.include('llama.cpp#24823');
    });

    it('the correct runs pass: the default, and an allocated context within the original (from-context 32: fixed-short, the same logits here)', () => {
      for (const [opts, name] of [[{}, 'short-default.safetensors'], [{ ropePolicy: 'from-context' as RopePolicy, context: 32 }, 'ctx32.safetensors']] as const) {
        const cand = run(SHORT_IDS, 8, name, opts);
        const { status, j } = compareHere(ref, cand);
        expect(status, j.diagnosis).to.equal(0);
        expect(j.policy.candidate.matching[0]).to.equal('default');
        // the run never passes 32 positions: stale and fixed-short are the default here, and said so
        expect(j.policy.candidate.matching).to.include.members(['stale', 'fixed-short']);
        expect(j.diagnosis).to.include('give the same logits on this run');
      }
    });

    it('the truth: our default run is transformers\' forward on this prompt (golden phi4-mini-tiny.short, last position)', () => {
      const r = generate(m, inputIds('phi4-mini-tiny.short'), { maxNewTokens: 1, eosIds: [] });
      const f = SafetensorsFile.open(dumpPath('phi4-mini-tiny.short'));
      const logits = f.readFloat32('logits');
      f.close();
      expect(relL2(r.stepLogits[0], logits.subarray(logits.length - 1024))).to.be.at.most(F32_TOLERANCE);
    });
  });

  describe('generation crossing the original context (vLLM#19489)', () => {
    let truth: string;
    before(() => {
      truth = goldenRun('phi4-mini-tiny.generate', '_nocache', at('hf-nocache.safetensors'));
    });

    it("transformers' own cached run (golden step_logits) is named stale, leaving the truth at step 5, the crossing", () => {
      const cand = goldenRun('phi4-mini-tiny.generate', '', at('hf-cached.safetensors'));
      const { status, j } = compareJson(truth, cand, ['--checkpoint', MODEL]);
      expect(status).to.equal(1);
      expect(j.firstDivergentStep).to.equal(5);
      expect(j.steps.slice(0, 5).every((s: { ok: boolean }) => s.ok)).to.equal(true);
      expect(j.policy.candidate.matching).to.deep.equal(['stale']);
      expect(j.policy.candidate.best.worst).to.be.at.most(F32_TOLERANCE); // transformers' numbers, our recomputation
      expect(j.policy.candidate.best.leavesDefaultAt).to.equal(5);
      expect(j.policy.reference.matching[0]).to.equal('default'); // and the truth is our default
      expect(j.diagnosis).to.include('the step logits diverge from step 5').and.include('follow stale').and.include('vLLM#19489');
    });

    it('our own --rope-policy stale is named stale from step 5; our default passes against transformers', () => {
      const prompt = inputIds('phi4-mini-tiny.generate', 'prompt_ids');
      const stale = run(prompt, 10, 'stale.safetensors', { ropePolicy: 'stale' });
      let { status, j } = compareHere(truth, stale);
      expect(status).to.equal(1);
      expect(j.firstDivergentStep).to.equal(5);
      expect(j.policy.candidate.matching).to.deep.equal(['stale']);
      const ok = run(prompt, 10, 'cross-default.safetensors');
      ({ status, j } = compareHere(truth, ok));
      expect(status, j.diagnosis).to.equal(0);
      expect(j.firstDivergentStep).to.equal(null);
      expect(j.policy.candidate.matching).to.deep.equal(['default']); // past the crossing nothing else fits
    });

    it('fixed-long (vLLM after #27431, fixed from max_model_len) is named too: it leaves the truth at step 0 and rejoins it at the crossing', () => {
      const cand = run(inputIds('phi4-mini-tiny.generate', 'prompt_ids'), 10, 'cross-long.safetensors', { ropePolicy: 'fixed-long' });
      const { j } = compareHere(truth, cand);
      expect(j.policy.candidate.matching).to.deep.equal(['fixed-long']);
      expect(j.steps.map((s: { ok: boolean }) => s.ok)).to.deep.equal([false, false, false, false, false, true, true, true, true, true]);
    });
  });

  describe('a chunked prefill crossing the original context (uzu#604)', () => {
    let ref: string;
    const long = () => inputIds('phi4-mini-tiny.long').join(','); // 48 tokens
    before(() => {
      ref = run(inputIds('phi4-mini-tiny.long'), 8, 'long-ref.safetensors');
    });

    for (const [chunk, split, sets] of [[16, 32, 'short, short, long'], [20, 20, 'short, long, long']] as const) {
      it(`--rope-policy chunked --prefill-chunk ${chunk} (calls ${sets}), its metadata dropped: compare finds the split at position ${split} from step 0`, () => {
        let own: string;
        if (chunk === 16) { // the command once, with its summary; the other in process
          const r = gen(['--ids', long(), '--max-new-tokens', '8', '--rope-policy', 'chunked', '--prefill-chunk', String(chunk)], `chunked${chunk}.own.safetensors`);
          expect(r.stderr).to.include(`prefilled in 3 calls of <= ${chunk} tokens (${sets})`);
          own = r.path;
        } else own = run(inputIds('phi4-mini-tiny.long'), 8, `chunked${chunk}.own.safetensors`, { ropePolicy: 'chunked', prefillChunk: chunk });
        const cand = foreign(own, at(`chunked${chunk}.safetensors`));
        const { status, j } = chunk === 16 ? compareJson(ref, cand, ['--checkpoint', MODEL]) : compareHere(ref, cand);
        expect(status).to.equal(1);
        expect(j.firstDivergentStep).to.equal(0);
        expect(j.policy.candidate.best.policy).to.equal('chunked');
        expect(j.policy.candidate.best.split).to.equal(split);
        expect(j.policy.candidate.best.chunkSizes).to.include(chunk);
        expect(j.policy.candidate.matching).to.have.length(1);
        expect(j.policy.candidate.best.worst).to.be.at.most(F32_TOLERANCE);
        expect(j.diagnosis).to.include(`positions 0-${split - 1} rotated short, ${split}-47 long`).and.include('uzu#604');
      });
    }

    it('a correct chunked prefill (--prefill-chunk 16 under the default: every chunk takes the set of the whole prompt) passes', () => {
      const cand = gen(['--ids', long(), '--max-new-tokens', '8', '--prefill-chunk', '16'], 'chunked-ok.safetensors');
      expect(cand.stderr).to.include('prefilled in 3 calls of <= 16 tokens (long, long, long)');
      const { status, j } = compareHere(ref, cand.path);
      expect(status, j.diagnosis).to.equal(0);
      expect(j.policy.candidate.matching[0]).to.equal('default');
    });
  });

  describe("transformers' own runs of the scenarios (golden phi4-mini-tiny.generate-short, .generate-chunked)", () => {
    // golden/generator/gen_generate_scenarios.py: transformers 5.17's forward, float32, CPU.
    // _nocache is the truth; the other runs are what its cache does in each scenario.
    it('short prompt: its DynamicCache run and its StaticCache of 1024 positions (an allocated context) both follow the default; our from-context 1024 is fixed-long against it', () => {
      const truth = goldenRun('phi4-mini-tiny.generate-short', '_nocache', at('hf-short-nocache.safetensors'));
      for (const suffix of ['', '_static']) {
        const { status, j } = compareHere(truth, goldenRun('phi4-mini-tiny.generate-short', suffix, at(`hf-short${suffix}.safetensors`)));
        expect(status, `${suffix}: ${j.diagnosis}`).to.equal(0);
        expect(j.policy.candidate.matching[0]).to.equal('default');
        expect(j.policy.candidate.best.worst).to.be.at.most(F32_TOLERANCE);
      }
      expect(compareHere(truth, run(inputIds('phi4-mini-tiny.short'), 8, 'ours-short.safetensors')).status).to.equal(0);
      const { status, j } = compareHere(truth, run(inputIds('phi4-mini-tiny.short'), 8, 'ours-ctx.safetensors', { ropePolicy: 'from-context', context: 1024 }));
      expect(status).to.equal(1);
      expect(j.firstDivergentStep).to.equal(0);
      expect(j.policy.candidate.matching).to.deep.equal(['fixed-long']);
      expect(j.policy.reference.matching[0]).to.equal('default');
    });

    for (const [suffix, chunk, split] of [['', 16, 32], ['_chunk20', 20, 20]] as const) {
      it(`chunked prefill: transformers' forward called ${chunk} tokens at a time is named chunked, split at ${split}, and our chunked reproduces it within ${F32_TOLERANCE}`, () => {
        const truth = goldenRun('phi4-mini-tiny.generate-chunked', '_nocache', at('hf-chunked-nocache.safetensors'));
        const cand = goldenRun('phi4-mini-tiny.generate-chunked', suffix, at(`hf-chunked${suffix}.safetensors`));
        const { status, j } = compareHere(truth, cand);
        expect(status).to.equal(1);
        expect(j.firstDivergentStep).to.equal(0);
        expect(j.policy.candidate.matching).to.have.length(1);
        expect(j.policy.candidate.best.policy).to.equal('chunked');
        expect(j.policy.candidate.best.split).to.equal(split);
        expect(j.policy.candidate.best.chunkSizes).to.include(chunk);
        expect(j.policy.candidate.best.worst).to.be.at.most(F32_TOLERANCE);
        expect(j.policy.reference.matching[0]).to.equal('default');
        expect(j.policy.reference.best.worst).to.be.at.most(F32_TOLERANCE);
      });
    }
  });

  describe('other runs and bad input', () => {
    before(() => { // runs of their own (a --grep may skip the scenarios)
      run(SHORT_IDS, 8, 'short-ref.safetensors');
      run(inputIds('phi4-mini-tiny.long'), 8, 'long-ref.safetensors');
    });
  it('no policy fits a run that is wrong in another way: said so, with the closest', () => {
    const src = path.join(tmp, 'short-ref.safetensors');
    const f = SafetensorsFile.open(src);
    const logits = f.readFloat32('step_logits').map((x, i) => x * (1 + 0.01 * Math.sin(i)));
    const cand = writeRun(at('noisy.safetensors'), f.readInt32('prompt_ids'), f.readInt32('generated_ids'), logits);
    f.close();
    const { status, j } = compareHere(src, cand);
    expect(status).to.equal(1);
    expect(j.policy.candidate.matching).to.deep.equal([]);
    expect(j.diagnosis).to.include('no LongRoPE policy reproduces the step logits');
  });

  it('without a checkpoint (none given, none recorded) the steps are compared and --checkpoint is asked for', () => {
    const truth = goldenRun('phi4-mini-tiny.generate', '_nocache', at('t2.safetensors'));
    const cand = goldenRun('phi4-mini-tiny.generate', '', at('c2.safetensors'));
    const r = phi4(['compare', truth, cand]);
    expect(r.status, show(r)).to.equal(1);
    expect(r.stdout).to.include('diverge from step 5').and.include('give --checkpoint');
  });

  it('bad input: a dump against a run, different prompts, a checkpoint of another config; generate option errors', () => {
    const run = path.join(tmp, 'short-ref.safetensors');
    let r = phi4(['compare', dumpPath('phi4-mini-tiny.short'), run]);
    expect(r.status, show(r)).to.equal(2);
    expect(r.stderr).to.include('not a generation');
    r = phi4(['compare', run, path.join(tmp, 'long-ref.safetensors')]);
    expect(r.status, show(r)).to.equal(2);
    expect(r.stderr).to.include('prompt_ids: the two runs had different prompts');
    r = phi4(['compare', run, run, '--checkpoint', path.join(ROOT, 'golden', 'models', 'phi3-mini-tiny')]);
    expect(r.status, show(r)).to.equal(2);
    expect(r.stderr).to.include('--checkpoint').and.include('was generated with config');
    const checks: [Partial<GenerateOptions>, number, string][] = [
      [{ ropePolicy: 'chunked' }, 19, '--rope-policy chunked needs --prefill-chunk'],
      [{ context: 64 }, 19, '--context: the allocated context goes with --rope-policy from-context'],
      [{ ropePolicy: 'from-context' }, 19, 'needs --context N'],
      [{ ropePolicy: 'from-context', context: 12 }, 19, '--context: 12 positions cannot hold the prompt and the new tokens (19)'],
      [{ ropePolicy: 'stale', prefillChunk: 4 }, 19, 'that is --rope-policy chunked'],
      [{ noCache: true, prefillChunk: 4 }, 19, '--prefill-chunk: --no-cache'],
      [{ ropePolicy: 'chunked', noCache: true, prefillChunk: 4 }, 19, 'cannot apply with --no-cache'],
      [{ prefillChunk: 0 }, 19, '--prefill-chunk: must be a positive integer'],
    ];
    for (const [o, len, msg] of checks) expect(() => checkPolicy(o.ropePolicy ?? 'default', o, len), msg).to.throw(msg);
    // through the command: one line, exit 2, before any work, nothing written
    for (const args of [['--rope-policy', 'chunked'], ['--rope-policy', 'from-context', '--context', '12']]) {
      r = phi4(['generate', MODEL, '--ids', SHORT, '--max-new-tokens', '8', ...args, '--out', at('never.safetensors')]);
      expect(r.status, show(r)).to.equal(2);
      expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
      expect(fs.existsSync(at('never.safetensors'))).to.equal(false);
    }
  });
  });
});

describe('LongRoPE policies: what chunked means, and the fit (phi4-mini-tiny, wasm)', () => {
  let m: Phi3Model;
  let long: number[];
  before(async () => {
    await useBackend('wasm');
    m = Phi3Model.load(modelDir('phi4-mini-tiny'));
    long = inputIds('phi4-mini-tiny.long');
  });
  after(() => m.dispose());

  it('chunked prefill = one forward call per chunk, each with the set of its own last position (checked by hand: 20 short, then 28 long)', () => {
    const r = generate(m, long, { maxNewTokens: 1, ropePolicy: 'chunked', prefillChunk: 20, eosIds: [] });
    expect(r.prefillLong).to.deep.equal([false, true, true]);
    const a = m.forward({ inputIds: Int32Array.from(long.slice(0, 20)), batch: 1, seq: 20 }, { ropeLong: false });
    const b = m.forward({ inputIds: Int32Array.from(long.slice(20)), batch: 1, seq: 28 }, { past: a.cache, ropeLong: true });
    const all = b.logits.dataSync() as Float32Array;
    const want = all.subarray(all.length - 1024);
    expect(relL2(r.stepLogits[0], want)).to.be.at.most(1e-6);
    // and it is not the default (long throughout), which transformers' forward gives (golden .long)
    const f = SafetensorsFile.open(dumpPath('phi4-mini-tiny.long'));
    const golden = f.readFloat32('logits');
    f.close();
    expect(relL2(r.stepLogits[0], golden.subarray(golden.length - 1024))).to.be.above(1e-2);
    tf.dispose([a.logits, b.logits, ...a.cache.flatMap((c) => [c.k, c.v]), ...b.cache.flatMap((c) => [c.k, c.v])]);
  });

  it('a chunked prefill under the default (each chunk with the set of the whole prompt) equals the unchunked run', () => {
    const d = generate(m, long, { maxNewTokens: 4, eosIds: [] });
    for (const c of [1, 16, 20]) {
      const r = generate(m, long, { maxNewTokens: 4, prefillChunk: c, forced: d.ids });
      expect(r.prefillLong.every((x) => x)).to.equal(true);
      r.stepLogits.forEach((row, i) => expect(relL2(row, d.stepLogits[i]), `chunk ${c} step ${i}`).to.be.at.most(1e-6));
    }
  });

  it('a prompt within the original context: every chunked prefill is stale (short throughout), so chunked is not tried', () => {
    const p = long.slice(0, 28);
    const d = generate(m, p, { maxNewTokens: 8, eosIds: [] });
    const s = generate(m, p, { maxNewTokens: 8, ropePolicy: 'stale', forced: d.ids });
    const c = generate(m, p, { maxNewTokens: 8, ropePolicy: 'chunked', prefillChunk: 5, forced: d.ids });
    s.stepLogits.forEach((row, i) => expect(relL2(c.stepLogits[i], row), `step ${i}`).to.be.at.most(1e-6));
    expect(chunkCandidates(32, 28)).to.deep.equal([]);
  });

  it('chunkCandidates: the split floor(original / C) * C, each once, with the chunk sizes giving it', () => {
    const c = chunkCandidates(32, 48);
    expect(c.find((x) => x.split === 32)!.sizes).to.deep.equal([1, 2, 4, 8, 16, 32]);
    expect(c.find((x) => x.split === 30)!.sizes).to.deep.equal([3, 5, 6, 10, 15, 30]);
    expect(c.find((x) => x.split === 20)!.sizes).to.deep.equal([20]);
    expect(c.every((x) => x.split > 0 && x.split < 48)).to.equal(true);
    expect(new Set(c.map((x) => x.split)).size).to.equal(c.length);
    // a real original context (4096): powers of two, plus a recorded hint
    const big = chunkCandidates(4096, 5000, [3000]);
    expect(big.map((x) => x.split)).to.deep.equal([3000, 4096]);
  });

  it("a run that switches one position late (vLLM before #27431: long when any position > original, cache kept) fits none of the policies; the closest on average is stale", () => {
    const prompt = inputIds('phi4-mini-tiny.generate', 'prompt_ids'); // 28 tokens: the crossing at step 5
    const d = generate(m, prompt, { maxNewTokens: 10, eosIds: [] });
    const seq = prompt.slice();
    const rows: Float32Array[] = [];
    let past: ReturnType<Phi3Model['forward']>['cache'] | undefined;
    for (let s = 0; s < 10; s++) {
      const input = past ? seq.slice(-1) : seq;
      const r = m.forward({ inputIds: Int32Array.from(input), batch: 1, seq: input.length }, { past, ropeLong: seq.length - 1 > 32 });
      const all = r.logits.dataSync() as Float32Array;
      rows.push(all.slice(all.length - 1024));
      r.logits.dispose();
      if (past) tf.dispose(past.flatMap((c) => [c.k, c.v]));
      past = r.cache;
      seq.push(d.ids[s]);
    }
    tf.dispose(past!.flatMap((c) => [c.k, c.v]));
    const fit = fitPolicies(m, prompt, d.ids, rows, F32_TOLERANCE);
    expect(fit.matching).to.deep.equal([]);
    expect(fit.best.policy).to.equal('stale');
    expect(fit.text).to.include('the closest on average is stale').and.include('it agrees at steps 0-4');
    // at step 5 (position 32) it is still short: fixed-short there, stale after
    expect(fit.fits.find((f) => f.policy === 'fixed-short')!.steps[5]).to.be.at.most(F32_TOLERANCE);
  });

  it('fitPolicies on a default run teacher-forced: default first, and the policies that leave it are over tolerance where they leave', () => {
    const d = generate(m, long.slice(0, 28), { maxNewTokens: 10, eosIds: [] });
    const fit = fitPolicies(m, long.slice(0, 28), d.ids, d.stepLogits, F32_TOLERANCE);
    expect(fit.matching).to.deep.equal(['default']);
    const by = new Map(fit.fits.map((f) => [f.policy, f]));
    expect(by.get('stale')!.firstOver).to.equal(by.get('stale')!.leavesDefaultAt).and.equal(5);
    expect(by.get('fixed-long')!.firstOver).to.equal(0);
    expect(by.get('fixed-short')!.firstOver).to.equal(5);
  });
});
