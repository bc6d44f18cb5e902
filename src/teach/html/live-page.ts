// The Node side of the live walkthrough (src/teach/html/live.ts runs in the page): the <section>
// `phi4 walkthrough --html` inlines, holding the live script (dist/browser/walkthrough-live.js, made
// by `npm run build:browser`), the checkpoint's config and model.safetensors, the wasm backend's
// binaries (base64), the toy model's held-out induction set, the real Phi-4-mini config (the step
// table's second shape) and the step table's source lines resolved, so the page needs no network.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Phi3Model } from '../../model/model.js';
import type { Phi4Tokenizer } from '../../text/tokenizer.js';
import { heldOutSet } from '../toy/evaluate.js';
import { REAL_CONFIG_PATH, STEP_IDS, codeText, stepCode } from '../walkthrough.js';
import { codeKey } from './steps-table.js';
import type { LiveData } from './live.js';

/** dist/browser/ (this file is dist/src/teach/html/live-page.js). */
export const LIVE_DIR = fileURLToPath(new URL('../../../browser/', import.meta.url));
export const LIVE_SCRIPT = join(LIVE_DIR, 'walkthrough-live.js');

/** Text safe inside <script>: no "</script" and no "<!--" (JS reads "<\/" and "<\!" as "</" and "<!"). */
const scriptSafe = (js: string) => js.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');

/**
 * The live section, or null (with the reason) where it cannot be made: the live script is not built,
 * or the checkpoint is not the toy induction model (its held-out set is the toy task's).
 */
export function liveSection(dir: string, model: Phi3Model, tok: Phi4Tokenizer | null, defaultIds: number[], layer: number, source: string):
  { html: string } | { why: string } {
  if (!existsSync(LIVE_SCRIPT)) return { why: 'dist/browser/walkthrough-live.js is not built (npm run build:browser)' };
  const trainingFile = join(dir, 'training.json');
  if (!existsSync(trainingFile)) return { why: `${source} has no training.json (the live page is made for the toy induction model)` };
  const training = JSON.parse(readFileSync(trainingFile, 'utf8')) as { seed: number; steps: number; batch: number };
  const b64 = (f: string) => readFileSync(f).toString('base64');
  const data: LiveData = {
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    weights: b64(join(dir, 'model.safetensors')),
    wasm: { simd: b64(join(LIVE_DIR, 'tfjs-backend-wasm-simd.wasm')), plain: b64(join(LIVE_DIR, 'tfjs-backend-wasm.wasm')) },
    heldOut: heldOutSet({ seed: training.seed, steps: training.steps, batch: training.batch }),
    defaultIds,
    layer,
    real: JSON.parse(readFileSync(REAL_CONFIG_PATH, 'utf8')),
    code: Object.fromEntries(STEP_IDS.flatMap(stepCode).map((r) => [codeKey(r), codeText(r)])),
    vocab: Array.from({ length: model.config.vocabSize }, (_, id) => (tok ? tok.decode([id]) : String(id))),
    source,
  };
  const html = `<h2>Live: the model runs in this page</h2>
<div id="live">
<p>Model: <span id="live-model"></span> <button id="live-toy">the toy model</button><br>
Open a checkpoint from disk (its config.json and .safetensors file(s), and tokenizer.json to type text and see tokens; without it ids are typed as numbers): <input id="live-files" type="file" multiple>
<span id="live-pick" style="color:#b00"></span></p>
<p>Token ids (edit, then Enter): <input id="live-ids" size="100"> <span id="live-status" style="color:#b00"></span><br>
Text: <input id="live-text" size="60" disabled></p>
<p>Length: <input id="live-n" type="range" min="6" max="20" value="20"> <span id="live-n-label"></span>. LongRoPE: <span id="live-set"></span>.</p>
<p>tokens: <code id="live-tokens"></code><br>arg-max next token ids: <code id="predictions"></code><br>as letters: <code id="live-next"></code></p>
<p>Heads (unticked = zeroed through a hook at <code>layers.L.attn_out</code>): <span id="live-heads"></span></p>
<p id="live-accuracy"></p>
<p id="live-timing" style="color:#555"></p>
<div id="live-attention" style="overflow-x:auto"></div>
</div>
<script type="application/json" id="live-data">${JSON.stringify(data).replace(/</g, '\\u003c')}</script>
<script type="module">${scriptSafe(readFileSync(LIVE_SCRIPT, 'utf8'))}</script>
`;
  return { html };
}
