import { UsageError, parseArgs, str } from '../args.js';
import { tfjsVersion } from '../backend.js';
import { writeDump } from '../dump.js';
import { resolveCheckpoint } from '../hub.js';
import { parseIds, readInputs } from '../inputs.js';
import { Phi3Model } from '../model.js';
import { type Command, checkOutPath, start } from './common.js';

export const dumpCommand: Command = {
  usage: `phi4 dump <checkpoint-dir | repo-id> (--ids 5,17,42 | --inputs FILE.safetensors) --out FILE.safetensors [--backend NAME]
      one forward pass; write every tap (float32) and the inputs`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'inputs', 'out', 'backend']);
    if (p.positional.length !== 1) throw new UsageError('dump needs one checkpoint directory');
    const out = str(p, 'out');
    if (!out) throw new UsageError('dump needs --out FILE.safetensors');
    const ids = str(p, 'ids');
    const file = str(p, 'inputs');
    if ((ids === undefined) === (file === undefined)) throw new UsageError('dump needs exactly one of --ids and --inputs');
    checkOutPath(out);
    const inputs = ids !== undefined ? parseIds(ids) : readInputs(file!);
    const backend = await start(str(p, 'backend'));
    const model = Phi3Model.load(resolveCheckpoint(p.positional[0]));
    try {
      const n = writeDump(model, inputs, out, { backend, tfjs: tfjsVersion() });
      console.error(`wrote ${out}: ${n} tensors (${inputs.batch} x ${inputs.seq} tokens)`);
    } finally {
      model.dispose();
    }
    return 0;
  },
};
