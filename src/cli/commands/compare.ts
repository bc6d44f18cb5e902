import { UsageError, parseArgs, str } from '../args.js';
import { resolveMap } from '../../compare/map-file.js';
import { addBlame, blameCheckpoint, noteNoBlame } from '../../compare/blame-run.js';
import { resolveCheckpoint } from '../../checkpoint/hub.js';
import { Phi3Model } from '../../model/model.js';
import { SafetensorsFile } from '../../../weights/index.js';
import { COMPARE_SCHEMA_VERSION, PRESETS, type Preset } from '../../compare/report.js';
import { compareFiles } from '../../compare/files.js';
import { BUDGET_K, BUDGET_PRESETS, type BudgetRounding, budgetFor } from '../../compare/budget.js';
import { formatReport } from '../../compare/render.js';
import { plotSvg, writeTextAtomic } from '../../compare/plot.js';
import { type Generation, addPolicyFit, compareGenerations, formatGeneration, isGeneration, readGeneration } from '../../compare/generation.js';
import { InputError } from '../../errors.js';
import { loadConfig } from '../../model/config.js';
import { dumpQuantizedWeights, expectDump, notADump } from '../../compare/quantized-reference.js';
import { tfjsVersion } from '../../backend.js';
import { existsSync } from 'node:fs';
import { type Command, checkOutPath, start } from './common.js';

/** Both files read as generations when both are `generate --out` files; null when neither is. */
function readGenerations(refPath: string, candPath: string): [Generation, Generation] | null {
  const files = [SafetensorsFile.open(refPath)];
  try {
    files.push(SafetensorsFile.open(candPath));
    const [a, b] = files.map(isGeneration);
    if (a !== b) throw new InputError(`${a ? candPath : refPath}: not a generation (prompt_ids, generated_ids, step_logits) like ${a ? refPath : candPath}; compare dumps with dumps, generate --out files with each other`);
    return a ? [readGeneration(refPath, files[0]), readGeneration(candPath, files[1])] : null;
  } finally {
    for (const f of files) f.close();
  }
}

export const compareCommand: Command = {
  usage: `phi4 compare <reference.safetensors> <candidate.safetensors> [--json] [--map FILE.json|llama.cpp|none] [--preset fp32|bf16|fp16] [--rtol X] [--plot FILE.svg] [--weights-reference Q.gguf|QDUMP.safetensors] [--checkpoint DIR | --no-blame] [--budget bf16|f16]
       phi4 compare <reference-run.safetensors> <candidate-run.safetensors> [--checkpoint DIR] [--json] [--preset ...] [--rtol X]
      every tap present in both, in forward order: errors, the first divergent tap and why (exit 1 when one diverges); --map llama.cpp (detected from the names when --map is not given): tools/llamacpp/phi4-tapdump's ggml nodes; --weights-reference: the candidate's quantized weights (a .gguf, which compare dumps on the reference's inputs, or our dump of them), to tell quantization from bugs; per-step blame by default: each step of the checkpoint (--checkpoint, else the one the reference dump records; --blame CHECKPOINT is the same) re-run on the candidate's own input to it, the first whose local error jumps blamed first in the verdict; --no-blame skips it; --budget bf16|f16: each tap judged against ${BUDGET_K} x the float64 reference's own error with that storage emulated, run on the checkpoint (as for the blame) and the reference dump's inputs, the constant preset (bf16, fp16) shown beside it;
      two generate --out files: the step logits step by step, and which LongRoPE policy (default, stale, chunked, fixed-long, fixed-short) the candidate follows, recomputed with --checkpoint (default: the checkpoint the run records)`,
  async run(argv) {
    const p = parseArgs(argv, ['map', 'preset', 'rtol', 'plot', 'weights-reference', 'blame', 'checkpoint', 'budget'], ['json', 'no-blame']);
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
    expectDump(refPath, 'reference');
    expectDump(candPath, 'candidate');
    const runs = readGenerations(refPath, candPath);
    if (runs) {
      for (const f of ['map', 'plot', 'weights-reference', 'blame', 'budget']) if (str(p, f) !== undefined) throw new UsageError(`--${f} applies to dumps; ${refPath} and ${candPath} are generations`);
      const [ref, cand] = runs;
      const recorded = [cand.checkpoint, ref.checkpoint].find((c) => c !== undefined && existsSync(c));
      const ckpt = str(p, 'checkpoint') !== undefined ? resolveCheckpoint(str(p, 'checkpoint')!) : recorded;
      const report = compareGenerations(ref, cand, { preset: presetArg as Preset, tolerance: rtol, rope: ckpt !== undefined ? loadConfig(ckpt).rope : undefined });
      if (ckpt !== undefined) {
        await start(undefined);
        const model = Phi3Model.load(ckpt);
        try {
          addPolicyFit(report, model, ref, cand, str(p, 'checkpoint') ?? ckpt);
        } finally {
          model.dispose();
        }
      }
      if (p.flags.has('json')) {
        const finite = (_k: string, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
        console.log(JSON.stringify({ schemaVersion: COMPARE_SCHEMA_VERSION, reference: refPath, candidate: candPath, ...report }, finite, 2));
      } else console.log(formatGeneration(report, { reference: refPath, candidate: candPath }));
      return report.ok ? 0 : 1;
    }
    const given = str(p, 'checkpoint') ?? str(p, 'blame');
    if (str(p, 'checkpoint') !== undefined && str(p, 'blame') !== undefined) throw new UsageError('--checkpoint and --blame name the same checkpoint; give one');
    if (given !== undefined && p.flags.has('no-blame')) throw new UsageError(`--no-blame skips the blame that --${str(p, 'checkpoint') !== undefined ? 'checkpoint' : 'blame'} asks for; give one`);
    const budgetArg = str(p, 'budget');
    if (budgetArg !== undefined) {
      if (!Object.hasOwn(BUDGET_PRESETS, budgetArg)) throw new UsageError(`--budget: unknown storage precision "${budgetArg}" (bf16, f16)`);
      const preset = BUDGET_PRESETS[budgetArg as BudgetRounding];
      if (str(p, 'preset') !== undefined && presetArg !== preset) throw new UsageError(`--budget ${budgetArg} stands beside the ${preset} preset, not ${presetArg}; drop --preset`);
      if (rtol !== undefined) throw new UsageError('--budget gives each tap its own tolerance, --rtol one for all; give one');
      if (str(p, 'weights-reference') !== undefined) throw new UsageError('--budget emulates the float reference\'s storage; it does not go with --weights-reference');
    }
    const preset = (budgetArg !== undefined ? BUDGET_PRESETS[budgetArg as BudgetRounding] : presetArg) as Preset;
    const budget = budgetArg !== undefined ? budgetFor(refPath, given === undefined ? undefined : resolveCheckpoint(given), budgetArg as BudgetRounding) : undefined;
    let started: Promise<string> | null = null;
    const ready = () => (started ??= start(undefined)); // one backend, one banner
    let weightsReference = str(p, 'weights-reference');
    let made: { path: string; remove: () => void } | null = null;
    if (weightsReference !== undefined && notADump(weightsReference)?.startsWith('a GGUF')) {
      made = await dumpQuantizedWeights(weightsReference, refPath, ready, tfjsVersion());
    } else if (weightsReference !== undefined) expectDump(weightsReference, '--weights-reference');
    try {
      if (made) weightsReference = made.path;
      const { report, labels, map } = compareFiles(refPath, candPath, { preset, tolerance: rtol, map: mapArg, weightsReference, budget });
      if (made) labels.reference = labels.reference.replace(made.path, `our dump of ${str(p, 'weights-reference')} on the reference's inputs, made by compare`);
      if (!p.flags.has('no-blame')) {
        // with a quantized-weights reference, the steps are re-run on those weights (the verdict's basis)
        const basis = weightsReference ?? refPath;
        const source = blameCheckpoint(basis, given === undefined ? undefined : resolveCheckpoint(given));
        if (source) await addBlame(report, basis, candPath, map, source, async () => void (await ready()));
        else noteNoBlame(report, 'the reference dump records no checkpoint that can still be read');
      }
      if (p.flags.has('json')) {
        const finite = (_k: string, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
        console.log(JSON.stringify({ schemaVersion: COMPARE_SCHEMA_VERSION, reference: refPath, candidate: candPath, ...report }, finite, 2));
      } else {
        console.log(formatReport(report, labels));
      }
      if (plot) writeTextAtomic(plot, plotSvg(report, `${candPath} vs ${refPath}`));
      return report.ok ? 0 : 1;
    } finally {
      made?.remove();
    }
  },
};
