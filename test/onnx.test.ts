// Proof on a real second runtime: ONNX Runtime (onnxruntime-node, its bundled CPU build) runs
// transformers' ONNX exports of phi4-mini-tiny (golden/onnx/), its outputs become a dump, and
// `compare` judges it against this project's own dump of the same checkpoint and inputs.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { compareFiles } from '../src/compare/files.js';
import { writeDump } from '../src/oracle/dump.js';
import { GOLDEN_DIR, dumpPath, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { tfjsVersion } from '../src/backend.js';
import { SafetensorsFile } from '../weights/index.js';
import { useBackend } from './helpers.js';
import { runOnnx, writeOnnxDump } from './onnx-runtime.js';

const ONNX = path.join(GOLDEN_DIR, 'onnx');
/** Relative L2 between two ONNX Runtime runs of one export on different CPUs (measured, see below). */
const ORT_ACROSS_CPUS = 1e-6;
const OUTPUTS = ['embed', 'layers.0.out', 'layers.1.out', 'layers.2.out', 'final_norm', 'logits'];

describe('ONNX Runtime against the reference (phi4-mini-tiny)', function () {
  this.timeout(60_000);
  let tmp: string;
  let model: Phi3Model;
  const ours = new Map<string, string>();

  before(async () => {
    await useBackend('wasm');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-onnx-'));
    model = Phi3Model.load(modelDir('phi4-mini-tiny'));
    for (const c of ['short', 'long']) {
      const out = path.join(tmp, `ours.${c}.safetensors`);
      writeDump(model, readInputs(dumpPath(`phi4-mini-tiny.${c}`)), out, { backend: 'wasm', tfjs: tfjsVersion() });
      ours.set(c, out);
    }
  });
  after(() => {
    model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const c of ['short', 'long']) {
    it(`${c} input on the ${c}-rope export: every output within float32 tolerance`, async () => {
      const inputs = readInputs(dumpPath(`phi4-mini-tiny.${c}`));
      const onnx = path.join(ONNX, `phi4-mini-tiny.${c}-rope.onnx`);
      const outs = await runOnnx(onnx, inputs);
      expect([...outs.keys()].sort()).to.deep.equal([...OUTPUTS].sort());
      // onnxruntime-node reproduces the Python onnxruntime run shipped with the exports, up to the
      // order of float32 sums: ORT picks its GEMM kernels by instruction set, so the bytes match only
      // on a CPU like the one that made the file. Measured: bit-equal on the exporting machine and on
      // the short input everywhere; on an AVX-512 EPYC the long input's outputs differ by relative L2
      // 1.1e-7 (layers.0.out) to 3.8e-7 (logits). The bound is float32 reordering noise, 1e-6, and
      // sits far below the 1e-3 of the real rope bug the last case catches.
      const shipped = SafetensorsFile.open(path.join(ONNX, `phi4-mini-tiny.${c}.onnxruntime.safetensors`));
      try {
        for (const [name, t] of outs) expect(relL2(t.data, shipped.readFloat32(name)), name).to.be.at.most(ORT_ACROSS_CPUS);
      } finally {
        shipped.close();
      }
      const cand = path.join(tmp, `onnx.${c}.safetensors`);
      writeOnnxDump(cand, onnx, inputs, outs);
      const { report } = compareFiles(ours.get(c)!, cand, { preset: 'fp32' });
      expect(report.taps.map((t) => t.name)).to.deep.equal(OUTPUTS); // forward order
      expect(report.ok, report.diagnosis).to.equal(true);
      expect(report.firstDivergent).to.equal(null);
      for (const t of report.taps) expect(t.relL2, t.name).to.be.at.most(1e-5);
      expect(report.taps.at(-1)!.logits!.top1).to.equal(inputs.seq);
      expect(report.onlyCandidate).to.deep.equal([]);
      expect(report.onlyReference).to.have.length(3 + 13 * 4 + 2 - OUTPUTS.length);
    });
  }

  it('the long input (48 tokens, past the original 32) on the short-rope export diverges first at layers.0.out', async () => {
    const inputs = readInputs(dumpPath('phi4-mini-tiny.long'));
    const onnx = path.join(ONNX, 'phi4-mini-tiny.short-rope.onnx');
    const cand = path.join(tmp, 'onnx.long-on-short.safetensors');
    writeOnnxDump(cand, onnx, inputs, await runOnnx(onnx, inputs));
    const { report } = compareFiles(ours.get('long')!, cand, { preset: 'fp32' });
    expect(report.ok).to.equal(false);
    expect(report.firstDivergent).to.equal('layers.0.out');
    expect(report.taps[0]).to.include({ name: 'embed', ok: true });
    expect(report.taps[1].relL2).to.be.above(1e-3); // far outside float32 noise, not a borderline call
    expect(report.diagnosis).to.match(/^first divergence at layers\.0\.out .*the tap before it, embed, agrees/);
  });
});
