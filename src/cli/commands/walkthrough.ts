import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError, parseArgs, str } from '../args.js';
import { TOY_PROMPTS, walkthroughFigures } from '../../teach/figures/figures.js';
import { resolveCheckpoint } from '../../checkpoint/hub.js';
import { type PageRun, pageRun, walkthroughPage, writePage } from '../../teach/html/page.js';
import { parseIds } from '../../checkpoint/inputs.js';
import { Phi3Model } from '../../model/model.js';
import { loadTokenizer } from '../../text/tokenizer.js';
import { trainingSummary } from '../../teach/toy/report.js';
import { TOY_DIR } from '../../teach/toy/train.js';
import { liveSection } from '../../teach/html/live-page.js';
import { DEFAULT_WALKTHROUGH_CHECKPOINT, displayPath, checkWalkthroughLayer, defaultIds, formatWalkthrough, loadRealConfig, promptToInputs, runWalkthrough } from '../../teach/walkthrough.js';
import { precheckCheckpoint, precheckInputs } from '../../safety/precheck.js';
import { type Command, checkOutPath, start } from './common.js';

export const walkthroughCommand: Command = {
  usage: `phi4 walkthrough [<checkpoint>] [--ids 5,17,42 | --prompt TEXT] [--layer N] [--backend NAME] [--html FILE]
      follow one prompt through one decoder layer: every step's shape, statistics and source lines (docs/walkthrough.md);
      default checkpoint phi4-mini-tiny (random weights), layer 0;
      --html FILE writes it as one offline page with the figures and an attention view, and (once npm run build:browser
      has made its script) the toy model running live in the page (FILE#ids=3,7,1 fills #predictions); its default checkpoint is another:
      the trained toy model phi4-toy-induction, its 41-token prompt and its last layer (random weights show no attention pattern)`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'prompt', 'layer', 'backend', 'html']);
    if (p.positional.length > 1) throw new UsageError('walkthrough takes at most one checkpoint directory');
    const html = str(p, 'html');
    if (html !== undefined && (html === '' || !existsSync(dirname(html) || '.'))) throw new UsageError(`--html: the folder of "${html}" does not exist`);
    if (html !== undefined) checkOutPath(html, '--html');
    const dir = p.positional[0] !== undefined ? resolveCheckpoint(p.positional[0]) : html !== undefined ? TOY_DIR : DEFAULT_WALKTHROUGH_CHECKPOINT;
    const ids = str(p, 'ids');
    const prompt = str(p, 'prompt') ?? (html !== undefined && dir === TOY_DIR && ids === undefined ? TOY_PROMPTS.long : undefined);
    if (ids !== undefined && prompt !== undefined) throw new UsageError('walkthrough takes --ids or --prompt, not both');
    const layerText = str(p, 'layer');
    if (layerText !== undefined && !/^\d+$/.test(layerText)) throw new UsageError(`--layer: "${layerText}" is not a layer number`);
    const given = ids !== undefined ? parseIds(ids) : prompt !== undefined ? promptToInputs(dir, prompt) : undefined;
    const config = precheckCheckpoint(dir); // refusals come before the banner
    if (given) precheckInputs(config, given);
    const layer = layerText !== undefined ? Number(layerText) : html !== undefined ? config.numLayers - 1 : 0;
    checkWalkthroughLayer(config, layer, dir);
    await start(str(p, 'backend'));
    const model = Phi3Model.load(dir);
    try {
      const inputs = given ?? defaultIds(model.config.vocabSize);
      const w = runWalkthrough(model, inputs, layer, loadRealConfig());
      if (html === undefined) {
        console.log(formatWalkthrough(w));
        return 0;
      }
      const tok = loadTokenizer(dir);
      const runs: Record<string, PageRun> = dir === TOY_DIR && ids === undefined && str(p, 'prompt') === undefined
        ? { long: pageRun(model, tok!.encode(TOY_PROMPTS.long), tok), short: pageRun(model, tok!.encode(TOY_PROMPTS.short), tok) }
        : { prompt: pageRun(model, Array.from(inputs.inputIds), tok) };
      const live = liveSection(dir, model, tok, Array.from(inputs.inputIds), layer, displayPath(dir));
      if ('why' in live) console.error(`walkthrough: the page has no live section: ${live.why}`);
      const page = walkthroughPage(w, walkthroughFigures(), runs, { accuracy: trainingSummary(dir, (c) => `"${c}"`) ?? undefined, live: 'html' in live ? live.html : undefined });
      writePage(html, page);
      console.error(`wrote ${html} (${Buffer.byteLength(page)} bytes)`);
    } finally {
      model.dispose();
    }
    return 0;
  },
};
