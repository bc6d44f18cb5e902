import { UsageError, parseArgs, str } from '../args.js';
import { resolveCheckpoint } from '../hub.js';
import { parseIds } from '../inputs.js';
import { Phi3Model } from '../model.js';
import { DEFAULT_WALKTHROUGH_CHECKPOINT, defaultIds, formatWalkthrough, loadRealConfig, promptToInputs, runWalkthrough } from '../walkthrough.js';
import { precheckCheckpoint, precheckInputs } from '../safety/precheck.js';
import { type Command, start } from './common.js';

export const walkthroughCommand: Command = {
  usage: `phi4 walkthrough [<checkpoint>] [--ids 5,17,42 | --prompt TEXT] [--layer N] [--backend NAME]
      follow one prompt through one decoder layer: every step's shape, statistics and source lines (docs/walkthrough.md)`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'prompt', 'layer', 'backend']);
    if (p.positional.length > 1) throw new UsageError('walkthrough takes at most one checkpoint directory');
    const dir = p.positional[0] !== undefined ? resolveCheckpoint(p.positional[0]) : DEFAULT_WALKTHROUGH_CHECKPOINT;
    const ids = str(p, 'ids');
    const prompt = str(p, 'prompt');
    if (ids !== undefined && prompt !== undefined) throw new UsageError('walkthrough takes --ids or --prompt, not both');
    const layerText = str(p, 'layer') ?? '0';
    if (!/^\d+$/.test(layerText)) throw new UsageError(`--layer: "${layerText}" is not a layer number`);
    const given = ids !== undefined ? parseIds(ids) : prompt !== undefined ? promptToInputs(dir, prompt) : undefined;
    const config = precheckCheckpoint(dir); // refusals come before the banner
    if (given) precheckInputs(config, given);
    await start(str(p, 'backend'));
    const model = Phi3Model.load(dir);
    try {
      const inputs = given ?? defaultIds(model.config.vocabSize);
      console.log(formatWalkthrough(runWalkthrough(model, inputs, Number(layerText), loadRealConfig())));
    } finally {
      model.dispose();
    }
    return 0;
  },
};
