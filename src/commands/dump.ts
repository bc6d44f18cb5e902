import { UsageError, intFlag, parseArgs, str } from '../args.js';
import { tfjsVersion } from '../backend.js';
import { writeDump } from '../dump.js';
import { resolveCheckpoint } from '../hub.js';
import { parseIds, readInputs } from '../inputs.js';
import { Phi3Model } from '../model.js';
import { checkOutput } from '../safety/outputs.js';
import { checkDumpMemory, defaultMaxMemoryGiB, precheckCheckpoint, precheckInputs } from '../safety/precheck.js';
import { type Command, start } from './common.js';

export const dumpCommand: Command = {
  usage: `phi4 dump <checkpoint-dir | repo-id> (--ids 5,17,42 | --inputs FILE.safetensors) --out FILE.safetensors [--force] [--max-memory GIB] [--backend NAME]
      one forward pass; write every tap (float32) and the inputs (an existing --out only with --force)`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'inputs', 'out', 'backend', 'max-memory'], ['force']);
    if (p.positional.length !== 1) throw new UsageError('dump needs one checkpoint directory');
    const out = str(p, 'out');
    if (!out) throw new UsageError('dump needs --out FILE.safetensors');
    const ids = str(p, 'ids');
    const file = str(p, 'inputs');
    if ((ids === undefined) === (file === undefined)) throw new UsageError('dump needs exactly one of --ids and --inputs');
    const maxGiB = intFlag(p, 'max-memory', 1) ?? defaultMaxMemoryGiB();
    const dir = resolveCheckpoint(p.positional[0]);
    // Everything that can be refused is refused before the backend starts (and prints its banner).
    const config = precheckCheckpoint(dir);
    const inputs = ids !== undefined ? parseIds(ids) : readInputs(file!, (b, t) => checkDumpMemory(config, b, t, maxGiB, `${file}: input_ids`));
    if (ids !== undefined) checkDumpMemory(config, inputs.batch, inputs.seq, maxGiB, '--ids');
    precheckInputs(config, inputs);
    checkOutput(out, { inputs: file ? [file] : [], protectedDirs: [dir], force: p.flags.has('force') });
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
