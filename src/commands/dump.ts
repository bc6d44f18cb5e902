import { UsageError, parseArgs, str } from '../args.js';
import { tfjsVersion } from '../backend.js';
import { loadConfig } from '../config.js';
import { writeDump, writeReferenceDump } from '../dump.js';
import { resolveCheckpoint } from '../hub.js';
import { parseIds, readInputs } from '../inputs.js';
import { Phi3Model } from '../model.js';
import { ROUNDINGS, type Rounding } from '../reference/rounding.js';
import { type Command, checkOutPath, start } from './common.js';

const PRECISIONS = ['float32', 'float64'];

export const dumpCommand: Command = {
  usage: `phi4 dump <checkpoint-dir | repo-id> (--ids 5,17,42 | --inputs FILE.safetensors) --out FILE.safetensors
      [--backend NAME] [--precision float32|float64] [--rounding none|f32|bf16|f16]
      one forward pass; write every tap and the inputs. float32 (default): the tfjs model on the
      backend; float64: the float64 reference (F64 taps, exact sums), its activations rounded to
      --rounding after every tap (f32 = an ideal float32 runtime)`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'inputs', 'out', 'backend', 'precision', 'rounding']);
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
    checkOutPath(out);
    const inputs = ids !== undefined ? parseIds(ids) : readInputs(file!);
    const dir = resolveCheckpoint(p.positional[0]);
    if (precision === 'float64') {
      const n = writeReferenceDump(dir, loadConfig(dir), inputs, out, (rounding ?? 'none') as Rounding, tfjsVersion());
      console.error(`wrote ${out}: ${n} tensors (${inputs.batch} x ${inputs.seq} tokens, float64 reference, rounding ${rounding ?? 'none'})`);
      return 0;
    }
    const backend = await start(str(p, 'backend'));
    const model = Phi3Model.load(dir);
    try {
      const n = writeDump(model, inputs, out, { backend, tfjs: tfjsVersion() });
      console.error(`wrote ${out}: ${n} tensors (${inputs.batch} x ${inputs.seq} tokens)`);
    } finally {
      model.dispose();
    }
    return 0;
  },
};
