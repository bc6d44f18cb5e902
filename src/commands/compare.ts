import { UsageError, parseArgs, str } from '../args.js';
import { applyMap } from '../compare-map.js';
import { resolveMap } from '../maps/index.js';
import { blame } from '../diagnose/blame.js';
import { resolveCheckpoint } from '../hub.js';
import { readInputs } from '../inputs.js';
import { Phi3Model } from '../model.js';
import { SafetensorsFile } from '../../weights/index.js';
import { PRESETS, type Preset, compareFiles, fileEntries, formatReport } from '../compare.js';
import { plotSvg, writeTextAtomic } from '../plot.js';
import { type Command, checkOutPath, start } from './common.js';

export const compareCommand: Command = {
  usage: `phi4 compare <reference.safetensors> <candidate.safetensors> [--json] [--map FILE.json|llama.cpp|none] [--preset fp32|bf16|fp16] [--rtol X] [--plot FILE.svg] [--weights-reference QDUMP.safetensors] [--blame CHECKPOINT]
      every tap present in both, in forward order: errors, the first divergent tap and why (exit 1 when one diverges); --map llama.cpp (detected from the names when --map is not given): tools/llamacpp/phi4-tapdump's ggml nodes; --weights-reference: our dump on the candidate's quantized weights (phi4 dump q.gguf, same inputs), to tell quantization from bugs; --blame: re-run each step of CHECKPOINT on the candidate's own input to it and blame the first whose local error jumps`,
  async run(argv) {
    const p = parseArgs(argv, ['map', 'preset', 'rtol', 'plot', 'weights-reference', 'blame'], ['json']);
    if (p.positional.length !== 2) throw new UsageError(`compare needs two files, a reference and a candidate (got ${p.positional.length})`);
    const presetArg = str(p, 'preset') ?? 'fp32';
    if (!Object.hasOwn(PRESETS, presetArg)) throw new UsageError(`--preset: unknown preset "${presetArg}" (fp32, bf16, fp16)`);
    const rtolArg = str(p, 'rtol');
    const rtol = rtolArg === undefined ? undefined : Number(rtolArg);
    if (rtol !== undefined && !(rtol > 0 && Number.isFinite(rtol))) throw new UsageError(`--rtol: "${rtolArg}" is not a positive number`);
    const plot = str(p, 'plot');
    if (plot) checkOutPath(plot, '--plot');
    const mapArg = resolveMap(str(p, 'map'));

    const [refPath, candPath] = p.positional;
    const { report, labels, map } = compareFiles(refPath, candPath, { preset: presetArg as Preset, tolerance: rtol, map: mapArg, weightsReference: str(p, 'weights-reference') });
    const blameCkpt = str(p, 'blame');
    if (blameCkpt !== undefined) {
      await start(undefined);
      const model = Phi3Model.load(resolveCheckpoint(blameCkpt));
      const f = SafetensorsFile.open(candPath);
      try {
        let entries = fileEntries(f);
        if (map && map.applyTo !== 'reference') entries = applyMap(entries, map, 'candidate');
        const acc = new Map(report.taps.map((t) => [t.name, t.relL2]));
        report.blame = blame(model, readInputs(refPath), entries, acc, report.tolerance);
        if (report.blame.blamed) {
          report.ok = false; // a step that is wrong on its own input is a bug, even under tolerance
          report.diagnosis = `${report.blame.text}; the numbers: ${report.diagnosis}`;
        } else {
          report.diagnosis += `; ${report.blame.text}`;
        }
      } finally {
        f.close();
        model.dispose();
      }
    }
    if (p.flags.has('json')) {
      const finite = (_k: string, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
      console.log(JSON.stringify({ reference: refPath, candidate: candPath, ...report }, finite, 2));
    } else {
      console.log(formatReport(report, labels));
    }
    if (plot) writeTextAtomic(plot, plotSvg(report, `${candPath} vs ${refPath}`));
    return report.ok ? 0 : 1;
  },
};
