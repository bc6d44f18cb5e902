// compare in the page (issue 23 item 3; docs/browser.md "compare in the page"), in headless
// chromium from file:// with no server: a page picks the toy induction checkpoint through a file
// input, runs the oracle (loadModel + runWithCache) and a toy "runtime" with a planted bug (the
// same model with one layer's tensor scaled, or its rotary positions offset by one), and prints
// compareTensors' verdict through formatReport. The page's tensors are then written as
// safetensors files and `phi4 compare --no-blame` run on them: its text must equal the page's,
// every line after the two header lines (which name the files), and both must name the planted tap.
// The bundle comes into the page as a blob: module (a file:// page may not import a file:// module).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { launchChromium, skipWithoutChromium } from './chromium.js';
import { buildBrowser } from '../tools/build-browser.js';
import { modelDir } from '../src/oracle/golden.js';
import { writeSafetensors } from '../weights/index.js';
import { phi4, show } from './cli-helpers.js';

const TOY = modelDir('phi4-toy-induction');
const IDS = [3, 7, 1, 9, 4, 7, 1, 9, 4, 12, 5, 3];
type Wire = Record<string, { shape: number[]; data: number[]; int: boolean }>;
interface PageRun { backend: string; requests?: string[]; runs: { bug: string; text: string; ok: boolean; first: string | null; ref: Wire; cand: Wire }[] }

describe('compare in the page (phi4-ts/browser compareTensors) against phi4 compare', function () {
  this.timeout(180_000);
  let dir: string;
  let bundleText: string;
  let browser: Browser;
  let got: PageRun;

  before(async function () {
    skipWithoutChromium(this);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-browser-compare-'));
    bundleText = fs.readFileSync(await buildBrowser(path.join(dir, 'bundle')), 'utf8');
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>compare in the page</title><input type="file" id="files" multiple><pre id="verdict"></pre>');
    browser = await launchChromium();
    const ctx = await browser.newContext();
    const tab = await ctx.newPage();
    const requests: string[] = [];
    tab.on('request', (r) => requests.push(r.url()));
    const errors: string[] = [];
    tab.on('pageerror', (e) => errors.push(String(e)));
    await tab.goto(pathToFileURL(path.join(dir, 'index.html')).href);
    await tab.setInputFiles('#files', [path.join(TOY, 'config.json'), path.join(TOY, 'model.safetensors')]);
    got = await tab.evaluate(async ({ src, ids }) => {
      const lib = await import(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
      const backend = await lib.ready('cpu'); // the wasm backend fetches its .wasm, which a file:// page cannot
      const files = [...(document.getElementById('files') as HTMLInputElement).files!];
      const model = await lib.loadModel({ config: files.find((f) => f.name === 'config.json'), weights: files.filter((f) => f.name.endsWith('.safetensors')) });
      const T = ids.length;
      const inputIds = Int32Array.from(ids);
      // the oracle, and the toy runtime: the same model with a bug planted
      const pass = (bug: string) => model.runWithCache({ inputIds, batch: 1, seq: T, positionIds: bug === 'offset' ? Int32Array.from(ids, (_: number, i: number) => i + 1) : undefined },
        { hooks: bug === 'scale' ? { 'layers.1.mlp_out': (t: unknown) => lib.tf.mul(t, 1.001) } : undefined });
      const wire = (m: Map<string, { shape: number[]; dtype: string; dataSync(): ArrayLike<number> }>) =>
        Object.fromEntries([...m].map(([n, t]) => [n, { shape: t.shape, data: Array.from(t.dataSync()), int: t.dtype === 'int32' }]));
      const oracle = pass('none');
      const ref = new Map<string, unknown>([['input_ids', { data: inputIds, shape: [1, T] }], ...oracle.taps]);
      const runs = [];
      for (const bug of ['scale', 'offset']) {
        const runtime = pass(bug);
        const r = lib.compareTensors(ref, runtime.taps, { config: model.config, labels: { reference: 'the oracle', candidate: `the runtime (${bug})` } });
        const text = lib.formatReport(r.report, r.labels);
        document.getElementById('verdict')!.textContent += text + '\n';
        runs.push({ bug, text, ok: r.report.ok, first: r.report.firstDivergent, ref: { input_ids: { shape: [1, T], data: ids, int: true }, ...wire(oracle.taps) }, cand: wire(runtime.taps) });
        lib.tf.dispose([runtime.logits, ...runtime.taps.values()]);
      }
      return { backend, runs };
    }, { src: bundleText, ids: IDS });
    got.requests = requests;
    expect(errors).to.deep.equal([]);
    await ctx.close();
  });

  after(async () => {
    await browser?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One side as a safetensors file; the reference records the checkpoint, as `phi4 dump` does, so the CLI reads its rotary config. */
  function write(file: string, tensors: Wire, metadata?: Record<string, string>): void {
    writeSafetensors(file, Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.int ? 'I32' as const : 'F32' as const, shape: t.shape,
      data: t.int ? Int32Array.from(t.data) : Float32Array.from(t.data) })), metadata);
  }

  it('ran from file:// with no network, on the page\'s picked files', () => {
    expect(got.backend).to.equal('cpu');
    expect(got.requests!.filter((u) => !u.startsWith('file:') && !u.startsWith('blob:') && !u.startsWith('data:')), 'requests off the machine').to.deep.equal([]);
  });

  for (const [bug, tap, because] of [['scale', 'layers.1.mlp_out', 'the down projection differs'], ['offset', 'rope.cos', 'positions offset by +1']] as const) {
    it(`planted bug "${bug}": the page's verdict names ${tap}, and phi4 compare prints the same text on the same tensors as files`, () => {
      const run = got.runs.find((r) => r.bug === bug)!;
      expect(run.ok).to.equal(false);
      expect(run.first).to.equal(tap);
      const verdict = run.text.split('\n').at(-1)!;
      expect(verdict).to.match(new RegExp(`^FAIL: first divergence at ${tap.replace('.', '\\.')} `));
      expect(verdict).to.include(because);

      const refFile = path.join(dir, `oracle-${bug}.safetensors`);
      const candFile = path.join(dir, `runtime-${bug}.safetensors`);
      write(refFile, run.ref, { format: 'phi4-ts.dump', checkpoint: TOY, project_version: 'page', backend: got.backend });
      write(candFile, run.cand);
      const cli = phi4(['compare', refFile, candFile, '--no-blame']);
      expect(cli.status, show(cli)).to.equal(1);
      const lines = cli.stdout.replace(/\n$/, '').split('\n');
      const page = run.text.split('\n');
      expect(lines[0]).to.match(new RegExp(`^reference: ${refFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      expect(lines[1]).to.equal(`candidate: ${candFile}`);
      expect(page.slice(0, 2)).to.deep.equal(['reference: the oracle', `candidate: the runtime (${bug})`]);
      expect(lines.slice(2)).to.deep.equal(page.slice(2));
    });
  }
});
