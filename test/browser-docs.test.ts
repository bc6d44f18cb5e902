// docs/browser.md's example pages, run as written (issue 23: docs that cannot rot). Each ```html
// block of the document is cut out verbatim and written into an app folder laid out as an app that
// installed phi4-ts is (the page at its root, the bundle at
// node_modules/phi4-ts/dist/browser/phi4-ts.js, built by tools/build-browser.ts into that folder),
// then opened in headless chromium from http://docs-example.test/, whose every request this test
// answers from that folder (a static server without a socket: a page from file:// may not import
// a module, and nothing may leave the machine). Each example is driven as its comments say:
//   1. loadModel from picked Files: phi4-mini-tiny's config.json and its two shards; its line names
//      the logits' shape and the last position's arg-max, which must be Node's (this test's own
//      forward and arg-max with the library on Node's wasm backend)
//   2. compare in the page: the toy checkpoint picked; the verdict's last line must be the ```text
//      block that follows the example in the document, character for character

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import type { Browser, BrowserContext } from 'playwright-core';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { buildBrowser } from '../tools/build-browser.js';
import { modelDir } from '../src/oracle/golden.js';
import { Phi3Model } from '../src/model/model.js';
import { useBackend } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOC = path.join(ROOT, 'docs', 'browser.md');
const ORIGIN = 'http://docs-example.test';
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

/** The document's ```html blocks, each with the fenced block right after it when that is ```text (else null). */
function examples(md: string): { html: string; text: string | null }[] {
  const blocks = [...md.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, body: m[2]! }));
  return blocks.flatMap((b, i) => (b.lang === 'html' ? [{ html: b.body, text: blocks[i + 1]?.lang === 'text' ? blocks[i + 1]!.body : null }] : []));
}

describe('docs/browser.md\'s example pages, as written, in headless chromium', function () {
  this.timeout(300_000);
  let app: string;
  let browser: Browser;
  let ctx: BrowserContext;
  const outside: string[] = [];
  const errors: string[] = [];
  const pages = examples(fs.readFileSync(DOC, 'utf8'));

  before(async function () {
    skipWithoutChromium(this);
    app = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-docs-example-'));
    await buildBrowser(path.join(app, 'node_modules', 'phi4-ts', 'dist', 'browser'));
    pages.forEach((p, i) => fs.writeFileSync(path.join(app, `example-${i + 1}.html`), p.html));
    browser = await launchChromium();
    ctx = await browser.newContext();
    await ctx.route('**/*', async (route) => {
      const url = new URL(route.request().url());
      const file = path.join(app, decodeURIComponent(url.pathname));
      if (url.origin !== ORIGIN || !file.startsWith(app + path.sep) || !fs.existsSync(file)) {
        outside.push(url.href);
        return route.abort();
      }
      return route.fulfill({ status: 200, contentType: TYPES[path.extname(file)] ?? 'application/octet-stream', body: fs.readFileSync(file) });
    });
  });

  after(async () => {
    await browser?.close();
    if (app) fs.rmSync(app, { recursive: true, force: true });
  });

  /** Opens example `n`, picks `files` once its script has set the input's handler, returns #id's text once filled. */
  async function run(n: number, files: string[], id: string): Promise<string> {
    const tab = await ctx.newPage();
    tab.on('pageerror', (e) => errors.push(String(e)));
    tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await tab.goto(`${ORIGIN}/example-${n}.html`);
    await tab.waitForFunction(() => (document.getElementById('files') as HTMLInputElement).onchange !== null, undefined, { timeout: 60_000 });
    await tab.setInputFiles('#files', files);
    await tab.waitForFunction((x) => (document.getElementById(x)?.textContent ?? '') !== '', id, { timeout: 120_000 });
    const text = (await tab.locator(`#${id}`).textContent())!;
    await tab.close();
    expect(errors, errors.join('\n')).to.deep.equal([]);
    return text;
  }

  it('has the two example pages this test drives', () => {
    expect(pages.length, 'a new ```html example in docs/browser.md needs its driver here').to.equal(2);
    expect(pages[1]!.text, 'the compare example is followed by its verdict').to.be.a('string');
  });

  it('example 1 (loadModel from picked Files) on phi4-mini-tiny: the next token is Node\'s arg-max', async () => {
    const dir = modelDir('phi4-mini-tiny');
    const picked = fs.readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors')).map((f) => path.join(dir, f));
    const t = Date.now();
    const line = await run(1, picked, 'out');
    console.log(`      example 1: "${line}" (${Date.now() - t} ms from navigation)`);
    const ids = JSON.parse(/const ids = (\[[\d, ]+\]);/.exec(pages[0]!.html)![1]!) as number[]; // the example's own ids
    await useBackend('wasm');
    const model = Phi3Model.load(dir);
    try {
      const { logits, cache } = model.forward({ inputIds: Int32Array.from(ids), batch: 1, seq: ids.length });
      const V = model.config.vocabSize;
      const data = logits.dataSync() as Float32Array;
      const last = Array.from(data.subarray((ids.length - 1) * V));
      tf.dispose([logits, ...cache.flatMap((c) => [c.k, c.v])]);
      expect(line).to.equal(`logits [1,${ids.length},${V}], next token ${last.indexOf(Math.max(...last))}`);
    } finally {
      model.dispose();
    }
  });

  it('example 2 (compare in the page) on the toy checkpoint: the verdict is the document\'s', async () => {
    const dir = modelDir('phi4-toy-induction');
    const t = Date.now();
    const text = await run(2, [path.join(dir, 'config.json'), path.join(dir, 'model.safetensors')], 'verdict');
    console.log(`      example 2: ${text.split('\n').length} lines (${Date.now() - t} ms from navigation)`);
    expect(text.trimEnd().split('\n').at(-1)).to.equal(pages[1]!.text!.trimEnd());
    expect(outside, 'the pages asked for something outside the app folder').to.deep.equal([]);
  });
});
