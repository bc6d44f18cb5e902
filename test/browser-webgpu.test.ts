// ready('webgpu') in the browser build (src/browser/index.ts, docs/browser.md "webgpu"), in headless
// chromium through playwright-core. This machine has no GPU, so:
// - chromium as the other browser tests start it (--disable-gpu) has navigator.gpu but no adapter:
//   ready('webgpu') refuses in one line; a page without navigator.gpu (removed before the page's
//   scripts run, as in a browser without WebGPU) is refused in another;
// - chromium with WebGPU on SwiftShader (its Vulkan on the CPU: a real WebGPU implementation, not a
//   GPU) runs phi4-mini-tiny on tfjs's webgpu backend: logits within the golden tolerance of
//   transformers' float32 dump, and how many differ from Node's wasm bits is printed (they are
//   not expected to be equal). What a hardware GPU's driver would do is not tested here.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import * as tf from '@tensorflow/tfjs-core';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { type Served, bundleRoutes, checkpointRoutes, serve, shardsOf } from './http-serve.js';
import { BUNDLE_NAME, buildBrowser } from '../tools/build-browser.js';
import { F32_TOLERANCE, dumpPath, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { initBackend } from '../src/backend.js';
import { SafetensorsFile } from '../weights/index.js';

const CASE = 'phi4-mini-tiny.short';
const MODEL = 'phi4-mini-tiny';

/** ready('webgpu') in a fresh page of `browser`: the backend set, or the refusal's name and message. */
async function readyWebgpu(tab: Page, bundleUrl: string): Promise<string> {
  return tab.evaluate(async (url) => {
    const lib = await import(url);
    try {
      return `ready: ${await lib.ready('webgpu')}`;
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
  }, bundleUrl);
}

describe('phi4-ts/browser: ready(\'webgpu\')', function () {
  this.timeout(180_000);
  let tmp: string;
  let served: Served | undefined;
  let bundleUrl: string;
  const browsers: Browser[] = [];

  before(async function () {
    skipWithoutChromium(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-webgpu-'));
    const bundleDir = path.join(tmp, 'bundle');
    await buildBrowser(bundleDir);
    fs.writeFileSync(path.join(tmp, 'index.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>phi4-ts/browser webgpu</title>');
    const routes = new Map([['/index.html', path.join(tmp, 'index.html')], ...bundleRoutes(bundleDir), ...checkpointRoutes(modelDir(MODEL), shardsOf(modelDir(MODEL)), '/config.json', '/model')]);
    served = await serve(routes);
    bundleUrl = `${served.base}/${BUNDLE_NAME}`;
  });

  after(async () => {
    for (const b of browsers) await b.close();
    await served?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function page(opts: { softwareWebgpu?: boolean; noGpu?: boolean } = {}): Promise<Page> {
    const browser = await launchChromium({ softwareWebgpu: opts.softwareWebgpu });
    browsers.push(browser);
    const tab = await browser.newPage();
    if (opts.noGpu) await tab.addInitScript(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
    await tab.goto(`${served!.base}/index.html`);
    return tab;
  }

  it('a browser with navigator.gpu but no adapter (chromium --disable-gpu): one line, nothing set', async () => {
    const tab = await page();
    expect(await tab.evaluate(() => 'gpu' in navigator)).to.equal(true);
    expect(await readyWebgpu(tab, bundleUrl)).to.equal('BackendError: backend: webgpu: navigator.gpu gave no adapter (no usable GPU); choose wasm or cpu');
    expect(await tab.evaluate(async (url) => (await import(url)).tf.getBackend() ?? null, bundleUrl)).to.equal(null); // no backend chosen behind the caller's back
  });

  it('a browser without WebGPU (no navigator.gpu): one line', async () => {
    const tab = await page({ noGpu: true });
    expect(await tab.evaluate(() => 'gpu' in navigator)).to.equal(false);
    expect(await readyWebgpu(tab, bundleUrl)).to.equal('BackendError: backend: webgpu is not available in this browser (no navigator.gpu); choose wasm or cpu');
  });

  it(`WebGPU on SwiftShader: ${MODEL} on tfjs's webgpu backend, logits within the golden tolerance (not Node's bits: their difference printed)`, async () => {
    await initBackend('wasm');
    const inputs = readInputs(dumpPath(CASE));
    const model = Phi3Model.load(modelDir(MODEL), { weights: 'float32' });
    let nodeLogits: Float32Array;
    try {
      const out = model.forward(inputs);
      nodeLogits = out.logits.dataSync() as Float32Array;
      tf.dispose([out.logits, ...out.cache.flatMap((c) => [c.k, c.v])]);
    } finally {
      model.weights.dispose();
    }

    const tab = await page({ softwareWebgpu: true });
    const shards = shardsOf(modelDir(MODEL)).map((f) => `${served!.base}/model/${f}`);
    const got = await tab.evaluate(async ({ url, shards, ids, batch, seq }) => {
      const lib = await import(url);
      const backend = await lib.ready('webgpu');
      const adapter = await (navigator as unknown as { gpu: { requestAdapter(): Promise<{ info?: { architecture?: string } }> } }).gpu.requestAdapter();
      const model = await lib.loadModel({ config: new URL('/config.json', location.href).href, weights: shards });
      const t0 = performance.now();
      const out = model.forward({ inputIds: Int32Array.from(ids), batch, seq });
      const logits = Array.from(out.logits.dataSync() as Float32Array);
      return { backend, architecture: adapter.info?.architecture ?? '', logits, ms: performance.now() - t0 };
    }, { url: bundleUrl, shards, ids: Array.from(inputs.inputIds), batch: inputs.batch, seq: inputs.seq });
    expect(got.backend).to.equal('webgpu');
    expect(got.architecture).to.equal('swiftshader');
    const logits = Float32Array.from(got.logits);
    const ref = SafetensorsFile.open(dumpPath(CASE));
    try {
      const rel = relL2(logits, ref.readFloat32('logits'));
      expect(rel, 'rel L2 vs transformers float32').to.be.at.most(F32_TOLERANCE);
      let differ = 0;
      for (let i = 0; i < logits.length; i++) if (!Object.is(logits[i], nodeLogits[i])) differ++;
      console.log(`      webgpu (swiftshader): rel L2 ${rel.toExponential(2)} vs transformers float32 (tolerance ${F32_TOLERANCE}); ${differ} of ${logits.length} logits differ from Node's wasm bits; forward ${got.ms.toFixed(0)} ms`);
    } finally {
      ref.close();
    }
  });
});
