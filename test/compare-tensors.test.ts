// compare on in-memory tensors (src/compare/tensors.ts, docs/browser.md "compare in the page"):
// bad inputs refused in one line naming the side and the tensor; on the toy induction model, the
// oracle's taps against a toy "runtime" (the same model with a bug planted through a hook or its
// positions) blame the right first tap; the report and text equal compareFiles' on the same
// tensors written as files (the CLI's path; test/browser-lib-compare.test.ts runs the CLI itself).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { type InMemoryTensor, type TensorMap, compareTensors, tensorEntries } from '../src/compare/tensors.js';
import { compareFiles } from '../src/compare/files.js';
import { compare } from '../src/compare/compare.js';
import { formatReport } from '../src/compare/render.js';
import { modelDir } from '../src/oracle/golden.js';
import { Phi3Model } from '../src/model/model.js';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { writeSafetensors } from '../weights/index.js';

const TOY = modelDir('phi4-toy-induction');
export const TOY_IDS = [3, 7, 1, 9, 4, 7, 1, 9, 4, 12, 5, 3];

/** The model's taps as plain tensors, and input_ids; `bug` plants one in the "runtime". */
function run(model: Phi3Model, bug?: 'scale' | 'offset'): Map<string, InMemoryTensor> {
  const T = TOY_IDS.length;
  const inputIds = Int32Array.from(TOY_IDS);
  const positionIds = bug === 'offset' ? Int32Array.from({ length: T }, (_, i) => i + 1) : undefined;
  const hooks = bug === 'scale' ? { 'layers.1.mlp_out': (t: tf.Tensor) => tf.mul(t, 1.001) } : undefined;
  const { logits, taps } = model.runWithCache({ inputIds, batch: 1, seq: T, positionIds }, { hooks });
  try {
    const out = new Map<string, InMemoryTensor>([['input_ids', { data: inputIds, shape: [1, T] }]]);
    for (const [name, t] of taps) out.set(name, { data: t.dataSync() as Float32Array, shape: t.shape });
    return out;
  } finally {
    tf.dispose([logits, ...taps.values()]);
  }
}

/** The tensors as a safetensors file, ints as I32, floats as F32. */
function write(file: string, tensors: Map<string, InMemoryTensor>): void {
  writeSafetensors(file, [...tensors].map(([name, t]) => ({ name, dtype: t.data instanceof Int32Array ? 'I32' as const : 'F32' as const, shape: [...t.shape], data: t.data as Float32Array })));
}

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('not refused');
};

describe('compare on in-memory tensors (compareTensors)', () => {
  let model: Phi3Model;
  let oracle: Map<string, InMemoryTensor>;
  let dir: string;

  before(async () => {
    await initBackend('wasm');
    model = Phi3Model.load(TOY);
    oracle = run(model);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-cmp-tensors-'));
  });
  after(() => {
    model?.weights.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad input in one line naming the side and the tensor', () => {
    const good = { data: new Float32Array(6), shape: [1, 2, 3] };
    const cases: [() => unknown, string][] = [
      [() => compareTensors({ embed: good }, { embed: { data: new Float32Array(5), shape: [1, 2, 3] } }), 'candidate tensor "embed": shape [1,2,3] holds 6 values, data has 5'],
      [() => compareTensors({ embed: { data: [0, 0, 0, 0, 0, 0] as unknown as Float32Array, shape: [1, 2, 3] } }, { embed: good }),
        'reference tensor "embed": data must be a typed array (Float32Array, Float64Array or an integer array), got an Array'],
      [() => compareTensors({ embed: good }, { embed: { data: new Float32Array(6), shape: [1, 2.5, 3] } }), 'candidate tensor "embed": shape must be a list of whole sizes, got [1,2.5,3]'],
      [() => compareTensors({ embed: good }, { embed: { shape: [6] } as unknown as InMemoryTensor }), 'candidate tensor "embed": expected { data: typed array, shape: number[] } or a tfjs tensor'],
      [() => compareTensors({ input_ids: { data: Uint32Array.from([1, 4e9]), shape: [1, 2] }, embed: good }, { embed: good }), 'reference tensor "input_ids": element 1 (4000000000) does not fit in int32'],
      [() => compareTensors([] as unknown as TensorMap, { embed: good }), 'reference: expected a Map or an object of name -> { data, shape } (or tfjs tensor), got an array'],
      [() => compareTensors({}, { embed: good }), 'reference: no tensors'],
      [() => compareTensors({ embed: good }, { embed: good }, { preset: 'bf32' as 'bf16' }), 'preset: unknown preset "bf32" (fp32, bf16, fp16)'],
      [() => compareTensors({ embed: good }, { embed: good }, { map: 'gguf' }), 'map: unknown built-in map "gguf" (llama.cpp, none, or a map spec object)'],
    ];
    for (const [f, message] of cases) expect(refusal(f)).to.equal(message);
    const t = tf.zeros([1, 2, 3]);
    t.dispose();
    expect(refusal(() => compareTensors({ embed: t }, { embed: good }))).to.equal('reference tensor "embed": the tfjs tensor is disposed');
    const s = tf.tensor1d(['a', 'b'], 'string');
    try {
      expect(refusal(() => compareTensors({ embed: good }, { embed: s }))).to.equal('candidate tensor "embed": a string tensor (float32, int32 or bool)');
    } finally {
      s.dispose();
    }
  });

  it('the oracle against itself passes; a Map, an object and tfjs tensors give the same report', () => {
    const a = compareTensors(oracle, oracle);
    expect(a.report.ok, a.report.diagnosis).to.equal(true);
    expect(a.report.taps.length).to.equal(oracle.size - 1); // every tap, input_ids compared as an input
    const asTensors = Object.fromEntries([...oracle].map(([n, t]) => [n, t.data instanceof Int32Array ? tf.tensor(t.data as Int32Array, [...t.shape], 'int32') : tf.tensor(t.data as Float32Array, [...t.shape])]));
    try {
      const b = compareTensors(Object.fromEntries(oracle), asTensors);
      expect(b.report).to.deep.equal(a.report);
    } finally {
      tf.dispose(Object.values(asTensors));
    }
  });

  it('a scaled tensor in one layer is blamed on that tap, with the text compareFiles prints for the same tensors as files', () => {
    const cand = run(model, 'scale');
    const r = compareTensors(oracle, cand, { config: model.config, labels: { reference: 'oracle', candidate: 'runtime' } });
    expect(r.report.ok).to.equal(false);
    expect(r.report.firstDivergent).to.equal('layers.1.mlp_out');
    expect(r.report.taps.filter((t) => !t.ok)[0]!.name).to.equal('layers.1.mlp_out');
    expect(r.report.taps.find((t) => t.name === 'layers.1.mlp_act')!.ok).to.equal(true);
    const text = formatReport(r.report, r.labels);
    expect(text).to.match(/\nFAIL: .*layers\.1\.mlp_out/);

    const refFile = path.join(dir, 'oracle.safetensors');
    const candFile = path.join(dir, 'runtime.safetensors');
    write(refFile, oracle);
    write(candFile, cand);
    const f = compareFiles(refFile, candFile);
    const { metadata: _m, ...fileReport } = f.report;
    // the files record no checkpoint, so compareFiles has no config: compare without it too
    const plain = compareTensors(oracle, cand, { labels: { reference: refFile, candidate: candFile } });
    expect(plain.report).to.deep.equal(fileReport);
    expect(formatReport(plain.report, plain.labels)).to.equal(formatReport(f.report, f.labels));
  });

  it('a rotary position offset is blamed on the rotary tables, and with the config the fit names the offset', () => {
    const cand = run(model, 'offset');
    cand.delete('input_ids'); // the runtime records only its taps
    const r = compareTensors(oracle, cand, { config: model.config });
    expect(r.report.firstDivergent).to.equal('rope.cos');
    expect(r.report.ropeFingerprint, r.report.diagnosis).to.not.equal(undefined);
    expect(r.report.diagnosis).to.include("rotary fit (layer 0): positions offset by +1");
    const without = compareTensors(oracle, cand);
    expect(without.report.ropeFingerprint).to.equal(undefined);
    expect(without.report.firstDivergent).to.equal('rope.cos');
  });

  it('keeps non-finite values for compare to judge, as compare does on entries', () => {
    const cand = new Map(oracle);
    const out = cand.get('layers.0.out')!;
    const data = Float32Array.from(out.data as Float32Array);
    data[5] = NaN;
    cand.set('layers.0.out', { data, shape: out.shape });
    const r = compareTensors(oracle, cand);
    const tap = r.report.taps.find((t) => t.name === 'layers.0.out')!;
    expect(tap.ok).to.equal(false);
    expect(Number.isNaN(tap.relL2)).to.equal(true);
    expect(r.report.firstDivergent).to.equal('layers.0.out');
    expect(r.report).to.deep.equal(compare(tensorEntries(oracle, 'reference'), tensorEntries(cand, 'candidate')));
  });

  it('takes a map as --map does: a spec object renames the candidate\'s tensors', () => {
    const renamed = new Map([...oracle].map(([n, t]) => [n.replace(/^layers\.(\d+)\.out$/, 'hidden.$1'), t]));
    const unmapped = () => compareTensors(oracle, renamed, { map: 'none' });
    expect(unmapped().report.taps.map((t) => t.name)).to.not.include('layers.0.out');
    const r = compareTensors(oracle, renamed, { map: { tensors: [{ from: 'hidden.{N}', to: 'layers.{N}.out' }] } });
    expect(r.report.ok, r.report.diagnosis).to.equal(true);
    expect(r.report.taps.length).to.equal(oracle.size - 1);
  });
});
