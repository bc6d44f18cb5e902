import { UsageError, intFlag, parseArgs, str } from '../args.js';
import { tfjsVersion } from '../../backend.js';
import { resolveSelection } from '../../capture/selection.js';
import { type CaptureEstimate, checkSelectedMemory } from '../../capture/memory.js';
import { writeDump, writeReferenceDump, writeSelectedDump, writeSelectedReferenceDump } from '../../oracle/dump.js';
import { resolveCheckpoint } from '../../checkpoint/hub.js';
import { parseIds, readInputs } from '../../checkpoint/inputs.js';
import { Phi3Model } from '../../model/model.js';
import { ROUNDINGS, type Rounding } from '../../oracle/reference/rounding.js';
import { checkOutput } from '../../safety/outputs.js';
import { checkDumpMemory, defaultMaxMemoryGiB, precheckCheckpoint, precheckInputs } from '../../safety/precheck.js';
import { formatMemory, layerProgress } from '../../progress.js';
import { type Command, start } from './common.js';

const PRECISIONS = ['float32', 'float64'];

export const dumpCommand: Command = {
  usage: `phi4 dump <checkpoint-dir | repo-id> (--ids 5,17,42 | --inputs FILE.safetensors) --out FILE.safetensors
      [--force] [--max-memory GIB] [--backend NAME] [--precision float32|float64] [--rounding none|f32|bf16|f16]
      [--taps GLOBS] [--layers A-B] [--positions A-B|last:N]
      one forward pass; write every tap and the inputs (an existing --out only with --force). float32
      (default): the tfjs model on the backend; float64: the float64 reference (F64 taps, exact sums),
      its activations rounded to --rounding after every tap (f32 = an ideal float32 runtime).
      --taps (comma-separated globs over tap names, e.g. 'layers.*.q_rot,logits'), --layers (layer
      taps of these layers only) and --positions (0-based rows, inclusive) capture only what they
      name, streamed to the file as it is computed; the pass stops after the last layer needed`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'inputs', 'out', 'backend', 'max-memory', 'precision', 'rounding', 'taps', 'layers', 'positions'], ['force']);
    if (p.positional.length !== 1) throw new UsageError('dump needs one checkpoint directory');
    const out = str(p, 'out');
    if (!out) throw new UsageError('dump needs --out FILE.safetensors');
    const ids = str(p, 'ids');
    const file = str(p, 'inputs');
    if ((ids === undefined) === (file === undefined)) throw new UsageError('dump needs exactly one of --ids and --inputs');
    const precision = str(p, 'precision') ?? 'float32';
    if (!PRECISIONS.includes(precision)) throw new UsageError(`--precision: expected one of ${PRECISIONS.join(', ')}, got "${precision}"`);
    const rounding = str(p, 'rounding');
    if (rounding !== undefined && !(ROUNDINGS as readonly string[]).includes(rounding)) {
      throw new UsageError(`--rounding: expected one of ${ROUNDINGS.join(', ')}, got "${rounding}"`);
    }
    if (rounding !== undefined && precision !== 'float64') throw new UsageError('--rounding goes with --precision float64');
    const maxGiB = intFlag(p, 'max-memory', 1) ?? defaultMaxMemoryGiB();
    const dir = resolveCheckpoint(p.positional[0]);
    // Everything that can be refused is refused before the backend starts (and prints its banner).
    const config = precheckCheckpoint(dir);
    const spec = { taps: str(p, 'taps'), layers: str(p, 'layers'), positions: str(p, 'positions') };
    const selecting = Object.values(spec).some((v) => v !== undefined);
    // The memory check: the selection's estimate when selecting, else every tap's; for --inputs it
    // runs on the file's header, before its ids are read.
    const checkMemory = (b: number, t: number, source: string): CaptureEstimate | void => selecting
      ? checkSelectedMemory(config, b, t, resolveSelection(spec, config.numLayers, t), maxGiB, source)
      : checkDumpMemory(config, b, t, maxGiB, source);
    const inputs = ids !== undefined ? parseIds(ids) : readInputs(file!, (b, t) => { checkMemory(b, t, `${file}: input_ids`); });
    const sel = selecting ? resolveSelection(spec, config.numLayers, inputs.seq) : null;
    const estimate = checkMemory(inputs.batch, inputs.seq, ids !== undefined ? '--ids' : `${file}: input_ids`);
    precheckInputs(config, inputs);
    checkOutput(out, { inputs: file ? [file] : [], protectedDirs: [dir], force: p.flags.has('force') });
    if (precision === 'float64' && sel) {
      const n = writeSelectedReferenceDump(dir, config, inputs, sel, out, (rounding ?? 'none') as Rounding, tfjsVersion());
      console.error(`wrote ${out}: ${n} tensors (${inputs.batch} x ${inputs.seq} tokens, float64 reference, rounding ${rounding ?? 'none'}, selected)`);
      return 0;
    }
    if (precision === 'float64') {
      const n = writeReferenceDump(dir, config, inputs, out, (rounding ?? 'none') as Rounding, tfjsVersion());
      console.error(`wrote ${out}: ${n} tensors (${inputs.batch} x ${inputs.seq} tokens, float64 reference, rounding ${rounding ?? 'none'})`);
      return 0;
    }
    const backend = await start(str(p, 'backend'));
    if (sel && estimate) {
      console.error(`selection: ${sel.names.length} taps, rows ${sel.start}-${sel.end - 1}, layers 0-${sel.lastLayer} run; ` +
        `memory about ${formatMemory(estimate.backend)} of tensors + ${formatMemory(estimate.host)} on the host (${estimate.assumed})`);
    }
    const model = Phi3Model.load(dir);
    try {
      const n = sel ? writeSelectedDump(model, inputs, sel, out, { backend, tfjs: tfjsVersion() }, { onLayer: layerProgress(sel.lastLayer + 1, inputs.batch * inputs.seq) })
        : writeDump(model, inputs, out, { backend, tfjs: tfjsVersion() });
      console.error(`wrote ${out}: ${n} tensors (${inputs.batch} x ${inputs.seq} tokens)`);
    } finally {
      model.dispose();
    }
    return 0;
  },
};
