// The live walkthrough page (`phi4 walkthrough --html`, src/teach/html/live.ts) in headless chromium,
// opened from file:// with the network cut off. Node's side of every comparison is computed here
// with the library (Phi3Model on Node's wasm backend, this file's own arg-max and its own head
// zeroing), not with the page's code:
//   - #ids=... at load: #predictions = Node's arg-max at every position, and after editing the ids
//   - a tap's values (layers.1.attn_out) = Node's, bit for bit
//   - the step table after an edit (and with a head off): every row's values = Node's walkthrough
//     (src/teach/walkthrough.ts) for the new ids
//   - a head switched off: the page's held-out accuracy = Node's ablation of that head (lower than all on)
//   - the length slider across the original context (32): the factor set and the attention figure change
//   - the "Attention, interactively" view shows the live run: its bars are Node's attn_probs (toy and picked)
//   - a checkpoint picked from disk (phi4-mini-tiny's files through the file input): #predictions =
//     Node's arg-max of that model; with its tokenizer.json, typed text is encoded as Node's tokenizer
//     encodes it (and without it, ids only); a bad pick (no config.json, a non-safetensors file, weights too
//     big for the page's float32 mode) says why in one line and keeps the model
// The screenshot goes to dist/screenshots/live-page.png (dist/ is gitignored); its path is printed.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { buildBrowser } from '../tools/build-browser.js';
import { Phi3Model } from '../src/model/model.js';
import type { Hooks } from '../src/model/hooks.js';
import { TOY_DIR } from '../src/teach/toy/train.js';
import { accuracy, heldOutSet, setGuessAccuracy } from '../src/teach/toy/evaluate.js';
import { modelDir } from '../src/oracle/golden.js';
import { type Walkthrough, loadRealConfig, runWalkthrough, statsText, walkSteps } from '../src/teach/walkthrough.js';
import { loadTokenizer } from '../src/text/tokenizer.js';
import { useBackend } from './helpers.js';
import { phi4, show } from './cli-helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOT = path.join(ROOT, 'dist', 'screenshots', 'live-page.png');

/** Node's logits of one sequence, [T * V], by the normal forward pass. */
function nodeLogits(model: Phi3Model, ids: number[], hooks?: Hooks, batch = 1): Float32Array {
  const { logits, cache } = model.forward({ inputIds: Int32Array.from(ids), batch, seq: ids.length / batch }, { hooks });
  const data = logits.dataSync() as Float32Array;
  tf.dispose([logits, ...cache.flatMap((c) => [c.k, c.v])]);
  return data;
}

function argmax(logits: Float32Array, T: number, V: number): string {
  const out: number[] = [];
  for (let t = 0; t < T; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    out.push(row.indexOf(Math.max(...row))); // the first maximum
  }
  return out.join(' ');
}

/** This test's own head zeroing: head h's d columns of attn_out replaced by zeros (slice + concat). */
function zeroHead(layer: number, head: number, nh: number, d: number): Hooks {
  return {
    [`layers.${layer}.attn_out`]: (t: tf.Tensor) => tf.tidy(() => {
      const parts = Array.from({ length: nh }, (_, h) => {
        const s = tf.slice(t, [0, 0, h * d], [-1, -1, d]);
        return h === head ? tf.zerosLike(s) : s;
      });
      return tf.concat(parts, 2);
    }),
  } as Hooks;
}

/** The page's step table (#steps) against Node's walkthrough `w`: heading ids, and every row's values cell (stats, then the note). */
async function stepsMatch(tab: Page, w: Walkthrough): Promise<void> {
  expect(await tab.locator('#steps p').first().textContent()).to.include(`input_ids: ${w.inputIds.join(' ')}.`);
  const cells = await tab.locator('#steps tr[data-step] td:nth-child(5)').allTextContents();
  const ids = await tab.locator('#steps tr[data-step]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.step));
  expect(ids).to.deep.equal(w.steps.map((s) => s.id));
  expect(cells).to.deep.equal(w.steps.map((s) => (s.stats ? statsText(s.stats) : '') + (s.note ?? '')));
}

/**
 * The "Attention, interactively" view (#view) on the live run: its prompt is "live", it offers the
 * model's layers and heads, and the chosen query's bars read Node's attn_probs of `ids` (this
 * test's runWithCache), to the 3 decimals the view prints, for the last layer's head 0 at the last position.
 */
async function viewMatches(tab: Page, model: Phi3Model, ids: number[]): Promise<void> {
  const cfg = model.config;
  const T = ids.length;
  expect(await tab.inputValue('#prompt')).to.equal('live');
  expect(await tab.locator('#prompt option[value="live"]').textContent()).to.match(new RegExp(`^live: ${T} tokens`));
  expect(await tab.locator('#layer option').count()).to.equal(cfg.numLayers);
  expect(await tab.locator('#head option').count()).to.equal(cfg.numHeads);
  await tab.selectOption('#layer', String(cfg.numLayers - 1));
  await tab.selectOption('#head', '0');
  const name = `layers.${cfg.numLayers - 1}.attn_probs` as const;
  const { taps, logits } = model.runWithCache({ inputIds: Int32Array.from(ids), batch: 1, seq: T }, { names: [name] });
  const probs = taps.get(name)!.dataSync() as Float32Array; // [1, heads, T, T]
  tf.dispose([logits, ...taps.values()]);
  const row = Array.from(probs.subarray((T - 1) * T, T * T), (v) => v.toFixed(3)); // head 0, query T - 1
  const texts = await tab.locator('#row text').allTextContents(); // per key: its label, then its value
  expect(texts.filter((_, i) => i % 2 === 1)).to.deep.equal(row);
}

describe('the live walkthrough page in headless chromium (file://, offline)', function () {
  this.timeout(300_000);
  let dir: string;
  let file: string;
  let browser: Browser;
  let model: Phi3Model;
  let tab: Page;
  const errors: string[] = [];
  const requests: string[] = [];
  const ids = [0, 3, 7, 1, 9, 4, 12, 3, 7, 1, 9, 4, 12];
  const expectSteps = (w: Walkthrough) => stepsMatch(tab, w);

  before(async function () {
    skipWithoutChromium(this);
    await buildBrowser(); // dist/browser/, where the CLI finds walkthrough-live.js
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-live-'));
    file = path.join(dir, 'live.html');
    const r = phi4(['walkthrough', '--html', file]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stderr).not.to.include('no live section');
    await useBackend('wasm');
    model = Phi3Model.load(TOY_DIR);
    browser = await launchChromium();
    const ctx = await browser.newContext({ offline: true, viewport: { width: 1200, height: 1000 } });
    tab = await ctx.newPage();
    tab.on('pageerror', (e) => errors.push(String(e)));
    tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    tab.on('request', (r) => { if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url()); });
    await tab.goto(`${pathToFileURL(file).href}#ids=${ids.join(',')}`);
    await tab.waitForSelector('body[data-live]', { timeout: 120_000 });
    expect(await tab.locator('body').getAttribute('data-live'), await tab.locator('#live-status').textContent() ?? '').to.equal('ready');
  });

  after(async () => {
    model?.dispose();
    await browser?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('#ids at load: #predictions is Node\'s arg-max at every position', async () => {
    const V = model.config.vocabSize;
    expect(await tab.locator('#predictions').textContent()).to.equal(argmax(nodeLogits(model, ids), ids.length, V));
    const timing = await tab.evaluate(() => (window as unknown as { phi4live: { timing: object } }).phi4live.timing);
    console.log(`      page ${fs.statSync(file).size} bytes; timing ${JSON.stringify(timing)}`);
  });

  it('a tap\'s values (layers.1.attn_out) are Node\'s, bit for bit', async () => {
    const page = await tab.evaluate((x) => (window as unknown as { phi4live: { tap(n: string, i: number[]): number[] } }).phi4live.tap('layers.1.attn_out', x), ids);
    const { taps, logits } = model.runWithCache({ inputIds: Int32Array.from(ids), batch: 1, seq: ids.length }, { names: ['layers.1.attn_out'] });
    const node = taps.get('layers.1.attn_out')!.dataSync() as Float32Array;
    tf.dispose([logits, ...taps.values()]);
    expect(page.length).to.equal(node.length);
    expect(Buffer.from(Float32Array.from(page).buffer).equals(Buffer.from(node.buffer, node.byteOffset, node.byteLength))).to.equal(true);
  });

  it('editing the ids re-runs: new #predictions are Node\'s for the new ids', async () => {
    const other = [0, 5, 2, 8, 6, 11, 5, 2, 8, 6, 11];
    await tab.fill('#live-ids', other.join(' '));
    await tab.press('#live-ids', 'Enter');
    expect(await tab.locator('#predictions').textContent()).to.equal(argmax(nodeLogits(model, other), other.length, model.config.vocabSize));
    await viewMatches(tab, model, other); // the view further down shows this run too
  });

  it('editing the ids remakes every step\'s table row: each values cell is Node\'s walkthrough for the new ids', async () => {
    // the ids of the previous test are in the page now; at load the table held the 41-token prompt's steps
    const other = [0, 5, 2, 8, 6, 11, 5, 2, 8, 6, 11];
    const layer = model.config.numLayers - 1; // the layer `phi4 walkthrough --html` shows
    await expectSteps(runWalkthrough(model, { inputIds: Int32Array.from(other), batch: 1, seq: other.length }, layer, loadRealConfig()));
    // a head switched off acts on the table too: layer 1 head 0 zeroed by this test's own hook
    await tab.uncheck('#head-1-0');
    const off = walkSteps(model, { inputIds: Int32Array.from(other), batch: 1, seq: other.length }, layer, loadRealConfig(), 'golden/models/phi4-toy-induction',
      { hooks: zeroHead(1, 0, model.config.numHeads, model.config.headDim) });
    await expectSteps(off);
    await tab.check('#head-1-0');
  });

  it('switching a head off lowers the held-out accuracy to what Node\'s ablation of that head gives', async () => {
    const cfg = model.config;
    const seqs = heldOutSet(JSON.parse(fs.readFileSync(path.join(TOY_DIR, 'training.json'), 'utf8')));
    const logitsFn = (hooks?: Hooks) => (x: Int32Array, b: number, s: number) => nodeLogits(model, Array.from(x), hooks, b).subarray(0, b * s * cfg.vocabSize);
    const all = accuracy(logitsFn(), seqs, cfg.vocabSize);
    const read = async () => /(\d+)\/(\d+)/.exec((await tab.locator('#live-accuracy').textContent())!)!.slice(1).map(Number);
    expect(await read()).to.deep.equal([all.correct, all.total]);
    const [layer, head] = [1, 0];
    const ablated = accuracy(logitsFn(zeroHead(layer, head, cfg.numHeads, cfg.headDim)), seqs, cfg.vocabSize);
    await tab.uncheck(`#head-${layer}-${head}`);
    expect(await read()).to.deep.equal([ablated.correct, ablated.total]);
    console.log(`      held-out accuracy: all heads ${all.correct}/${all.total}, layer ${layer} head ${head} off ${ablated.correct}/${ablated.total}`);
    expect(ablated.correct).to.be.lessThan(all.correct);
    await tab.check(`#head-${layer}-${head}`);
    expect(await read()).to.deep.equal([all.correct, all.total]);
    // every head of layer 1 off: the Node ablation test's case (test/toy.test.ts zeroes the layer's
    // attention output), which falls below the guess a model without induction could make
    for (let h = 0; h < cfg.numHeads; h++) await tab.uncheck(`#head-1-${h}`);
    const layerOff = accuracy(logitsFn({ 'layers.1.attn_out': (t: tf.Tensor) => tf.zerosLike(t) } as Hooks), seqs, cfg.vocabSize);
    expect(await read()).to.deep.equal([layerOff.correct, layerOff.total]);
    expect(layerOff.correct / layerOff.total).to.be.below(setGuessAccuracy(seqs));
    console.log(`      layer 1 all heads off ${layerOff.correct}/${layerOff.total} (guess ${setGuessAccuracy(seqs).toFixed(3)})`);
    for (let h = 0; h < cfg.numHeads; h++) await tab.check(`#head-1-${h}`);
    expect(await read()).to.deep.equal([all.correct, all.total]);
  });

  it('the length slider across the original context switches the factor set and changes the attention maps', async () => {
    await tab.fill('#live-n', '15'); // T = 31 <= 32
    expect(await tab.locator('#live-set').textContent()).to.match(/^short factors: 31 tokens/);
    const short = await tab.locator('#live-attention svg g[data-map]').first().innerHTML();
    await tab.fill('#live-n', '16'); // T = 33 > 32
    expect(await tab.locator('#live-set').textContent()).to.match(/^long factors: 33 tokens/);
    expect(await tab.locator('#live-attention svg').getAttribute('data-figure')).to.equal('attention-long');
    console.log(`      timing at T = 33: ${JSON.stringify(await tab.evaluate(() => (window as unknown as { phi4live: { timing: object } }).phi4live.timing))}`);
    expect(await tab.locator('#live-attention svg g[data-map]').count()).to.equal(model.config.numLayers * model.config.numHeads);
    expect(await tab.locator('#live-attention svg g[data-map]').first().innerHTML()).not.to.equal(short);
    fs.mkdirSync(path.dirname(SHOT), { recursive: true });
    await tab.locator('#live').screenshot({ path: SHOT });
    expect(fs.statSync(SHOT).size).to.be.greaterThan(10_000);
    console.log(`      screenshot: ${path.relative(ROOT, SHOT)}`);
    expect(errors, errors.join('\n')).to.deep.equal([]);
    expect(requests, 'the page asked the network for something').to.deep.equal([]);
  });

  describe('a checkpoint picked from disk', () => {
    const tinyDir = modelDir('phi4-mini-tiny');
    let tiny: Phi3Model;
    before(() => { tiny = Phi3Model.load(tinyDir); });
    after(() => tiny?.dispose());
    const text = async (sel: string) => (await tab.locator(sel).textContent()) ?? '';
    /** Picks `files` through the page's file input; the page's verdict ('loaded' or 'failed'). */
    async function pick(files: string[]): Promise<string> {
      await tab.setInputFiles('#live-files', files);
      await tab.waitForSelector('body[data-pick="loaded"], body[data-pick="failed"]', { timeout: 60_000 });
      return (await tab.locator('body').getAttribute('data-pick'))!;
    }
    const idsNow = async () => (await tab.inputValue('#live-ids')).trim().split(/\s+/).map(Number);

    it('phi4-mini-tiny (two shards, its side files too): #predictions are Node\'s arg-max of that model', async () => {
      const files = fs.readdirSync(tinyDir).map((f) => path.join(tinyDir, f)); // tokenizer.json, the index, generation_config.json too
      expect(await pick(files), await text('#live-pick')).to.equal('loaded');
      const V = tiny.config.vocabSize;
      let ids = await idsNow();
      expect(await text('#predictions')).to.equal(argmax(nodeLogits(tiny, ids), ids.length, V));
      ids = [1, 900, 17, 512, 1023, 44, 900, 17, 512, 1023, 44]; // past the toy's vocabulary of 32
      await tab.fill('#live-ids', ids.join(' '));
      await tab.press('#live-ids', 'Enter');
      expect(await text('#live-status')).to.equal('');
      expect(await text('#predictions')).to.equal(argmax(nodeLogits(tiny, ids), ids.length, V));
      expect(await text('#live-model')).to.match(/^picked config\.json, model-0000[12]-of-00002\.safetensors, .*: 4 layers, 6 query \/ 2 key-value heads/);
      expect(await tab.locator('#live-attention svg g[data-map]').count()).to.equal(tiny.config.numLayers * tiny.config.numHeads);
      expect(await tab.locator('input[id^="head-"]').count()).to.equal(tiny.config.numLayers * tiny.config.numHeads);
      expect(await text('#live-accuracy')).to.include("the toy model's task only");
      await expectSteps(walkSteps(tiny, { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length }, tiny.config.numLayers - 1, loadRealConfig(),
        (await text('#live-model')).split(':')[0]));
      await tab.fill('#live-n', '16'); // T = 33 > tiny's original context 32
      expect(await text('#live-set')).to.match(/^long factors: 33 tokens pass the original context 32/);
      ids = await idsNow();
      expect(await text('#predictions')).to.equal(argmax(nodeLogits(tiny, ids), ids.length, V));
      await viewMatches(tab, tiny, ids); // tiny's 4 layers and 6 heads in the view, its maps past the switch
      const timing = await tab.evaluate(() => (window as unknown as { phi4live: { timing: object } }).phi4live.timing);
      console.log(`      picked phi4-mini-tiny: ${JSON.stringify(timing)}`);
    });

    it('with its tokenizer.json picked: text is encoded as Node\'s tokenizer does, tokens shown as its text; without it, ids only', async () => {
      const tok = loadTokenizer(tinyDir)!;
      expect(await tab.locator('#live-text').isDisabled()).to.equal(false); // the previous test's pick held tokenizer.json
      const sentence = 'The cat sat on the mat. The cat sat';
      await tab.fill('#live-text', sentence);
      await tab.press('#live-text', 'Enter');
      const ids = tok.encode(sentence);
      expect(await idsNow()).to.deep.equal(ids);
      expect(await text('#predictions')).to.equal(argmax(nodeLogits(tiny, ids), ids.length, tiny.config.vocabSize));
      expect(await text('#live-tokens')).to.equal(ids.map((id) => JSON.stringify(tok.decode([id])).slice(1, -1)).join(' '));
      // the same checkpoint without its tokenizer: ids typed, shown as numbers, the text box off
      const bare = [path.join(tinyDir, 'config.json'), ...fs.readdirSync(tinyDir).filter((f) => f.endsWith('.safetensors')).map((f) => path.join(tinyDir, f))];
      expect(await pick(bare), await text('#live-pick')).to.equal('loaded');
      expect(await tab.locator('#live-text').isDisabled()).to.equal(true);
      const now = await idsNow();
      expect(await text('#live-tokens')).to.equal(now.join(' '));
      expect(await text('#predictions')).to.equal(argmax(nodeLogits(tiny, now), now.length, tiny.config.vocabSize));
    });

    it('a bad pick says why in one line and keeps the model', async () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-pick-'));
      try {
        const shards = fs.readdirSync(tinyDir).filter((f) => f.endsWith('.safetensors')).map((f) => path.join(tinyDir, f));
        fs.writeFileSync(path.join(tmp, 'model.bin'), 'not a checkpoint');
        fs.mkdirSync(path.join(tmp, 'real'));
        fs.copyFileSync(path.join(ROOT, 'golden', 'configs', 'phi-4-mini-instruct.json'), path.join(tmp, 'real', 'config.json'));
        const config = path.join(tinyDir, 'config.json');
        fs.mkdirSync(path.join(tmp, 'tok'));
        fs.writeFileSync(path.join(tmp, 'tok', 'tokenizer_config.json'), '{"chat_template": ');
        const before = [await text('#predictions'), await text('#live-model')];
        const cases: [string[], RegExp][] = [
          [shards, /^not opened: no config\.json among the 2 picked file\(s\)/],
          [[config, ...shards, path.join(tmp, 'model.bin')], /^not opened: "model\.bin" is not a \.safetensors file/],
          [[config], /^not opened: no \.safetensors file picked/],
          [[path.join(tmp, 'real', 'config.json'), ...shards], /^not opened: config\.json: 3\.84 billion parameters need 15\.3 GB as float32 weights; a page holds at most 3\.6 GB/],
          [[config, ...shards, path.join(tinyDir, 'tokenizer.json'), path.join(tmp, 'tok', 'tokenizer_config.json')], /^not opened: tokenizer_config\.json: not JSON \(/],
        ];
        for (const [files, want] of cases) {
          expect(await pick(files)).to.equal('failed');
          const msg = await text('#live-pick');
          console.log(`      ${msg}`);
          expect(msg).to.match(want);
          expect(msg).not.to.include('\n');
          expect([await text('#predictions'), await text('#live-model')]).to.deep.equal(before);
        }
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });

    it('the toy model again: Node\'s toy arg-max and its held-out accuracy', async () => {
      await tab.click('#live-toy');
      expect(await tab.locator('#live-text').isDisabled()).to.equal(true);
      const ids = await idsNow();
      expect(await text('#predictions')).to.equal(argmax(nodeLogits(model, ids), ids.length, model.config.vocabSize));
      expect(await text('#live-accuracy')).to.match(/^held-out induction accuracy \d+\/\d+/);
      expect(errors, errors.join('\n')).to.deep.equal([]);
      expect(requests, 'the page asked the network for something').to.deep.equal([]);
    });
  });
});
