// The exact kernel on Web Workers in a page (layers/kernels/threads-browser.ts, docs/browser.md "The
// exact kernel"), in headless chromium through playwright-core as test/browser-lib.test.ts does.
// A local server (test/http-serve.ts) serves the bundle and two checkpoints under /iso/ with
// Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp, which
// make the page cross-origin isolated, and under /plain/ without them. The checkpoints: the golden
// phi4-mini-tiny (case phi4-mini-tiny.short's ids), and a checkpoint synthesized here whose products
// are big enough to be shared between threads (hidden 1024, vocabulary 8192: chunks of 128 weight
// rows, 8-64 per product), which the small one's mostly are not.
// Checked: the isolated page says crossOriginIsolated and runs the kernel on the threads it claims
// (navigator.hardwareConcurrency, set to 4 here so that the test does not depend on the machine's
// cores), every thread takes chunks of rows, and the logits equal Node's wasm run (float32 weights,
// as the page holds them) bit for bit; the plain page runs on its own thread alone, with the same
// bits; a bundle whose worker script is not served is refused by ready() in one line. Then, on the
// real core count, the synthesized model's forward on one thread against all of them (printed; the
// numbers in docs/browser.md come from that line).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import * as tf from '@tensorflow/tfjs-core';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { type Served, bundleRoutes, checkpointRoutes, serve, shardsOf } from './http-serve.js';
import { BUNDLE_NAME, WORKER_NAME, buildBrowser } from '../tools/build-browser.js';
import { dumpPath, modelDir } from '../src/oracle/golden.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { synthesize } from '../src/checkpoint/synth.js';
import { Phi3Model } from '../src/model/model.js';
import { initBackend } from '../src/backend.js';

const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const CLAIMED_CORES = 4;
const SEQ = 48; // tokens of the synthesized model's run

interface Checkpoint {
  name: string;
  dir: string;
  shards: string[];
  ids: number[];
  logits: Float32Array; // Node's
}


/** Node's wasm run of the checkpoint in `dir` on `ids`, float32 weights as the page holds them. */
function nodeLogits(dir: string, ids: number[]): Float32Array {
  const model = Phi3Model.load(dir, { weights: 'float32' });
  try {
    const out = model.forward({ inputIds: Int32Array.from(ids), batch: 1, seq: ids.length });
    const logits = out.logits.dataSync() as Float32Array;
    tf.dispose([out.logits, ...out.cache.flatMap((c) => [c.k, c.v])]);
    return logits;
  } finally {
    model.weights.dispose();
  }
}

/** The synthesized checkpoint's config: phi4-mini-tiny's, widened. */
function wideConfig(): Record<string, unknown> {
  const tiny = JSON.parse(fs.readFileSync(path.join(modelDir('phi4-mini-tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
  const factors = (top: number) => Array.from({ length: 48 }, (_, i) => 1 + (top - 1) * (i / 47) ** 2); // rotary dims / 2 = 1024 / 8 * 0.75 / 2
  return {
    ...tiny, hidden_size: 1024, intermediate_size: 2048, num_hidden_layers: 2, num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 8192,
    rope_scaling: { type: 'longrope', short_factor: factors(1.5), long_factor: factors(40) },
  };
}

/** What a page reports of its forwards. */
interface PageRun {
  isolated: boolean;
  threads: number;
  chunks: number[][]; // taken during each forward, by thread
  logits: number[]; // the first forward's
  sameBits: boolean[]; // each forward's logits equal the first's bit for bit
  ms: number[];
}

/**
 * Loads the checkpoint served at `root` in the page, runs forward on `ids` once per entry of
 * `threads` (on that many threads, 0: all), and disposes of it.
 */
async function runInPage(tab: Page, root: string, ck: Checkpoint, threads = [0]): Promise<PageRun> {
  return tab.evaluate(async ({ bundleUrl, config, shardUrls, ids, threads }) => {
    const lib = await import(bundleUrl);
    await lib.ready('wasm');
    const model = await lib.loadModel({ config, weights: shardUrls });
    const run: PageRun = { isolated: globalThis.crossOriginIsolated, threads: lib.exactKernel().threads, chunks: [], logits: [], sameBits: [], ms: [] };
    let first: Uint32Array | undefined;
    for (const n of threads) {
      lib.useExactKernelThreads(n);
      const before: number[] = lib.exactKernel().chunks;
      const t0 = performance.now();
      const out = model.forward({ inputIds: Int32Array.from(ids), batch: 1, seq: ids.length });
      const logits = out.logits.dataSync() as Float32Array;
      run.ms.push(performance.now() - t0);
      run.chunks.push((lib.exactKernel().chunks as number[]).map((c, i) => c - (before[i] ?? 0)));
      const bits = new Uint32Array(logits.buffer, logits.byteOffset, logits.length);
      if (!first) {
        first = bits.slice();
        run.logits = Array.from(logits);
      }
      run.sameBits.push(bits.length === first.length && bits.every((b, i) => b === first![i]));
      lib.tf.dispose([out.logits, ...out.cache.flatMap((c: { k: unknown; v: unknown }) => [c.k, c.v])]);
    }
    lib.useExactKernelThreads(0);
    model.weights.dispose();
    return run;
  }, { bundleUrl: `${root}/${BUNDLE_NAME}`, config: `${root}/${ck.name}/config.json`, shardUrls: ck.shards.map((s) => `${root}/${ck.name}/${s}`), ids: ck.ids, threads });
}

/** Logits that differ from Node's in any bit. */
function differing(got: number[], want: Float32Array): number {
  const a = Float32Array.from(got);
  let n = a.length === want.length ? 0 : Math.max(a.length, want.length);
  for (let i = 0; i < Math.min(a.length, want.length); i++) if (!Object.is(a[i], want[i])) n++;
  return n;
}

describe('phi4-ts/browser: the exact kernel on Web Workers in a cross-origin-isolated page', function () {
  this.timeout(300_000);
  let tmp: string;
  let browser: Browser;
  let served: Served | undefined;
  const checkpoints: Checkpoint[] = [];

  before(async function () {
    skipWithoutChromium(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-threads-'));
    const bundleDir = path.join(tmp, 'bundle');
    await buildBrowser(bundleDir);
    fs.writeFileSync(path.join(tmp, 'wide.json'), JSON.stringify(wideConfig()));
    synthesize(path.join(tmp, 'wide.json'), path.join(tmp, 'wide'), { seed: 3 });

    await initBackend('wasm');
    const tinyIds = Array.from(readInputs(dumpPath('phi4-mini-tiny.short')).inputIds);
    const wideIds = Array.from({ length: SEQ }, (_, i) => (i * 7919 + 13) % 8192);
    for (const [name, dir, ids] of [['tiny', modelDir('phi4-mini-tiny'), tinyIds], ['wide', path.join(tmp, 'wide'), wideIds]] as const) {
      checkpoints.push({ name, dir, shards: shardsOf(dir), ids: [...ids], logits: nodeLogits(dir, [...ids]) });
    }

    const routes = new Map<string, string>();
    for (const root of ['iso', 'plain', 'noworker']) {
      routes.set(`/${root}/index.html`, path.join(tmp, 'index.html'));
      for (const [u, f] of bundleRoutes(bundleDir, `/${root}`, root === 'noworker' ? [WORKER_NAME] : [])) routes.set(u, f);
      for (const ck of checkpoints) for (const [u, f] of checkpointRoutes(ck.dir, ck.shards, `/${root}/${ck.name}/config.json`, `/${root}/${ck.name}`)) routes.set(u, f);
    }
    fs.writeFileSync(path.join(tmp, 'index.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>phi4-ts/browser threads</title>');
    served = await serve(routes, { headers: (p) => (p.startsWith('/plain/') ? {} : ISOLATION) });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await served?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A fresh page under one of the prefixes /iso/, /plain/, /noworker/ (`root`), claiming `cores` cores when given; page errors collected in `errors`. */
  async function page(root: string, errors: string[], cores?: number): Promise<{ tab: Page; close(): Promise<void> }> {
    const ctx = await browser.newContext();
    if (cores !== undefined) {
      await ctx.addInitScript((n) => Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => n }), cores);
    }
    const tab = await ctx.newPage();
    tab.on('pageerror', (e) => errors.push(String(e)));
    tab.on('console', (m) => (m.type() === 'error' ? errors.push(m.text()) : undefined));
    await tab.goto(`${served!.base}/${root}/index.html`);
    return { tab, close: () => ctx.close() };
  }

  it('the worker script is its own module with no import (the bundle starts it from beside itself)', () => {
    const text = fs.readFileSync(path.join(tmp, 'bundle', WORKER_NAME), 'utf8');
    expect(text).not.to.match(/^import\s|\brequire\s*\(|node:|worker_threads/m);
    expect(text).to.include('waitAsync'); // the Web Worker variant of the threads module, not Node's
  });

  for (const name of ['tiny', 'wide']) {
    it(`isolated page, ${CLAIMED_CORES} cores claimed: ${name} checkpoint on ${CLAIMED_CORES} threads, every one taking rows${name === 'tiny' ? ' (where a product has more than one chunk)' : ''}, logits equal Node's bit for bit`, async () => {
      const ck = checkpoints.find((c) => c.name === name)!;
      const errors: string[] = [];
      const { tab, close } = await page('iso', errors, CLAIMED_CORES);
      const run = await runInPage(tab, `${served!.base}/iso`, ck);
      await close();
      expect(errors).to.deep.equal([]);
      expect(run.isolated, 'crossOriginIsolated').to.equal(true);
      expect(run.threads).to.equal(CLAIMED_CORES);
      const chunks = run.chunks[0]!;
      expect(chunks).to.have.length(CLAIMED_CORES);
      if (name === 'wide') expect(chunks.filter((c) => c > 0), `chunks by thread ${chunks}`).to.have.length(CLAIMED_CORES);
      else expect(chunks.filter((c) => c > 0).length, `chunks by thread ${chunks}`).to.be.at.least(1);
      expect(differing(run.logits, ck.logits), 'logits differing from Node\'s wasm run').to.equal(0);
    });
  }

  it('a page that is not cross-origin isolated runs the kernel on its own thread alone, with the same bits', async () => {
    const errors: string[] = [];
    const { tab, close } = await page('plain', errors, CLAIMED_CORES);
    const ck = checkpoints.find((c) => c.name === 'wide')!;
    const run = await runInPage(tab, `${served!.base}/plain`, ck);
    await close();
    expect(errors).to.deep.equal([]);
    expect(run.isolated).to.equal(false);
    expect(run.threads).to.equal(1);
    expect(run.chunks[0]).to.have.length(1);
    expect(run.chunks[0]![0]).to.be.greaterThan(0);
    expect(differing(run.logits, ck.logits), 'logits differing from Node\'s wasm run').to.equal(0);
  });

  it('an isolated page whose dots-worker.js is not served: ready() refuses in one line naming it', async () => {
    const errors: string[] = [];
    const { tab, close } = await page('noworker', errors, CLAIMED_CORES);
    const root = `${served!.base}/noworker`;
    const message = await tab.evaluate(async (bundleUrl) => {
      const lib = await import(bundleUrl);
      try {
        await lib.ready('wasm');
        return 'ready';
      } catch (e) {
        return `${(e as Error).name}: ${(e as Error).message}`;
      }
    }, `${root}/${BUNDLE_NAME}`);
    await close();
    expect(message).to.equal(`BackendError: backend: exact kernel: the worker ${root}/${WORKER_NAME} did not start: serve ${WORKER_NAME} beside the bundle`);
  });

  it('on the machine\'s own cores: the wide forward on one thread and on all of them, the same bits (times printed)', async () => {
    const errors: string[] = [];
    const { tab, close } = await page('iso', errors);
    const ck = checkpoints.find((c) => c.name === 'wide')!;
    const order = [0, 1, 0, 1, 0, 1, 0]; // the first: tfjs's and the kernel's first use, not timed
    const run = await runInPage(tab, `${served!.base}/iso`, ck, order);
    expect(run.isolated).to.equal(true);
    expect(differing(run.logits, ck.logits), 'logits differing from Node\'s wasm run').to.equal(0);
    expect(run.sameBits, 'each forward\'s bits equal the first\'s').to.deep.equal(order.map(() => true));
    expect(run.chunks[1], 'chunks by thread on one thread').to.satisfy((c: number[]) => c.slice(1).every((n) => n === 0));
    const best = (n: number) => Math.min(...run.ms.filter((_, i) => i > 0 && order[i] === n));
    const cores = await tab.evaluate(() => navigator.hardwareConcurrency);
    await close();
    expect(errors).to.deep.equal([]);
    console.log(`      wide forward (${SEQ} tokens, hidden 1024, vocab 8192, 2 layers), best of 3: 1 thread ${best(1).toFixed(0)} ms, ${run.threads} threads ${best(0).toFixed(0)} ms (${(best(1) / best(0)).toFixed(2)}x; hardwareConcurrency ${cores}; times ${run.ms.map((m) => m.toFixed(0)).join(' ')})`);
  });
});
