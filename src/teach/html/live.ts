// The live walkthrough: the script of the page `phi4 walkthrough --html` writes (src/teach/html/page.ts),
// bundled by tools/build-browser.ts into dist/browser/walkthrough-live.js and inlined in the page.
// It runs the toy induction model in the page with the same code as Node (src/model/, layers/):
//
//   weights   the checkpoint's model.safetensors, embedded as base64, read through the browser
//             build's loadModel (a Blob, one ranged read per tensor), exactly as a picked file is
//   backend   tfjs wasm, its .wasm files embedded as base64 data: URLs, so the page needs no network
//             and works from file:// (the wasm kernels are the ones Node's default backend runs,
//             so the logits are Node's bits; test/live-page.test.ts checks it)
//   #ids=...  runs those ids at load; the arg-max of the logits at every position goes to #predictions
//   a pick    any checkpoint from disk (config.json and its .safetensors shards, through the file
//             input): loadModel reads the picked Files by ranges, never as one buffer, and the same
//             views run on it; ids are typed as numbers, or, with its tokenizer.json picked along,
//             text is encoded and tokens are shown as text (src/text/tokenizer.ts). A bad pick leaves
//             the model as it was and says why in one line (pickedCheckpoint below, and loadModel's
//             refusals: a bad header, a missing tensor, weights too big for the page's float32 mode)
//
// Editing the ids (or the length slider) re-runs the model, redraws the attention figure with
// src/teach/figures/attention.ts, the code that draws the docs' figure, shows the run in the
// "Attention, interactively" view as its prompt "live" (page.ts), and remakes the table of
// steps (src/teach/steps.ts and html/steps-table.ts, the code `phi4 walkthrough --html` writes it with). Each head's switch zeroes it
// through a hook (src/teach/toy/heads.ts) and re-scores the held-out induction set with
// src/teach/toy/evaluate.ts's accuracy, the function the Node tests use (the toy model only: the
// set is its task's).

import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { loadModel } from '../../browser/index.js';
import type { Phi3Model } from '../../model/model.js';
import type { Hooks } from '../../model/hooks.js';
import type { TapName } from '../../../layers/taps.js';
import { usesLongFactors } from '../../../layers/rotary.js';
import { captureTaps } from '../../capture/host.js';
import { type AttentionRun, attentionFigure, attentionRun } from '../figures/attention.js';
import { headsOffHooks } from '../toy/heads.js';
import { accuracy, modelLogits } from '../toy/evaluate.js';
import type { ToySequence } from '../toy/task.js';
import { parseConfig } from '../../model/config.js';
import { argmaxProb } from '../../generate/sampling.js';
import { Phi4Tokenizer } from '../../text/tokenizer.js';
import { walkSteps } from '../steps.js';
import { codeKey, stepsSection } from './steps-table.js';

/** What page.ts embeds in <script id="live-data">. */
export interface LiveData {
  config: unknown;
  /** model.safetensors, base64. */
  weights: string;
  /** tfjs-backend-wasm's binaries, base64 (the threaded one is not embedded: file:// is not cross-origin isolated). */
  wasm: { simd: string; plain: string };
  heldOut: ToySequence[];
  defaultIds: number[];
  /** The layer whose steps the table shows (the toy's; a picked checkpoint's last layer). */
  layer: number;
  /** The real Phi-4-mini config.json (the step table sets each shape beside the real model's). */
  real: unknown;
  /** Each step's source references resolved to lines in Node (codeKey -> "file:lines"). */
  code: Record<string, string>;
  /** id -> display text (the toy tokenizer's letters). */
  vocab: string[];
  source: string;
}

const $ = (id: string) => document.getElementById(id)!;

/**
 * The picked files a checkpoint is made of, or why the pick is not one (one line): config.json and
 * the .safetensors shards; tokenizer.json (with tokenizer_config.json) when picked along, for the
 * tokens' text. Other .json files (the index, generation_config.json) are not needed.
 */
export function pickedCheckpoint<F extends { name: string }>(files: F[]): { config: F; weights: F[]; tokenizer?: F; tokenizerConfig?: F } | string {
  const hint = "pick the checkpoint's config.json and its .safetensors file(s)";
  const configs = files.filter((f) => f.name === 'config.json');
  if (configs.length === 0) return `no config.json among the ${files.length} picked file(s): ${hint}`;
  if (configs.length > 1) return `${configs.length} files named config.json picked: ${hint}`;
  const other = files.find((f) => f.name !== 'config.json' && !f.name.endsWith('.safetensors') && !f.name.endsWith('.json'));
  if (other) return `"${other.name}" is not a .safetensors file (the page reads safetensors only): ${hint}`;
  const weights = files.filter((f) => f.name.endsWith('.safetensors'));
  if (weights.length === 0) return `no .safetensors file picked (config.json holds no weights): ${hint}`;
  const tokenizer = files.find((f) => f.name === 'tokenizer.json');
  const tokenizerConfig = files.find((f) => f.name === 'tokenizer_config.json');
  return { config: configs[0]!, weights, tokenizer, tokenizerConfig: tokenizer && tokenizerConfig };
}

const firstLine = (err: unknown) => (err as Error).message.split('\n')[0];

/** The tokenizer of a picked tokenizer.json (and tokenizer_config.json), or an error of one line naming the file at fault. */
async function pickedTokenizer(json: File, config?: File): Promise<Phi4Tokenizer> {
  const read = async (f: File): Promise<Record<string, unknown>> => {
    try {
      return JSON.parse(await f.text()) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${f.name}: not JSON (${firstLine(err)})`);
    }
  };
  const cfg = config ? await read(config) : {};
  const body = await read(json);
  try {
    return new Phi4Tokenizer(body, cfg, config?.name ?? '');
  } catch (err) {
    throw new Error(`${json.name}: not a tokenizer the page can read (${firstLine(err)})`);
  }
}

/** The model the views run on: the toy (embedded) or a picked checkpoint. */
interface Current {
  model: Phi3Model;
  /** id -> display text. */
  token: (id: number) => string;
  /** text -> ids, where the model has a tokenizer (a picked tokenizer.json); the toy's ids are typed. */
  encode?: (text: string) => number[];
  /** The toy task's held-out set; null for a picked checkpoint (its task is unknown). */
  heldOut: ToySequence[] | null;
  source: string;
  /** The layer of the step table. */
  layer: number;
}
const bytesOf = (b64: string) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

/** Arg-max (first maximum on ties) and its probability at every row of [T, V] logits. */
const nextTokens = (logits: Float32Array, T: number, V: number) => Array.from({ length: T }, (_, t) => argmaxProb(logits.subarray(t * V, (t + 1) * V)));

function parseIds(text: string, V: number): number[] | string {
  const parts = text.trim().split(/[\s,]+/).filter((s) => s !== '');
  if (parts.length === 0) return 'no ids';
  const ids = parts.map(Number);
  const bad = parts.find((s, i) => !/^\d+$/.test(s) || ids[i] >= V);
  return bad !== undefined ? `"${bad}" is not a token id 0..${V - 1}` : ids;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const data = JSON.parse($('live-data').textContent!) as LiveData;
  const wasmUrl = (b64: string) => `data:application/wasm;base64,${b64}`;
  setWasmPaths({
    'tfjs-backend-wasm.wasm': wasmUrl(data.wasm.plain),
    'tfjs-backend-wasm-simd.wasm': wasmUrl(data.wasm.simd),
    'tfjs-backend-wasm-threaded-simd.wasm': wasmUrl(data.wasm.simd), // never used: no SharedArrayBuffer on file://
  });
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
  await tf.ready();
  const toy: Current = {
    model: await loadModel({ config: data.config, weights: new Blob([bytesOf(data.weights)]) }),
    token: (id) => data.vocab[id] ?? String(id),
    heldOut: data.heldOut,
    source: data.source,
    layer: data.layer,
  };
  const real = parseConfig(data.real, 'the real Phi-4-mini config');
  let cur = toy;
  const off = new Set<string>(); // "layer.head" switched off
  const hooks = (): Hooks | undefined => off.size === 0 ? undefined
    : headsOffHooks(cur.model.config, [...off].map((k) => ({ layer: Number(k.split('.')[0]), head: Number(k.split('.')[1]) })));
  const timing = { loadToFirstResultMs: 0, forwardMs: 0, accuracyMs: 0, pickLoadMs: 0 };

  /** One forward of `ids`: every layer's attention and the logits; the page's figure and predictions. */
  function run(ids: number[]): number[] {
    const t = performance.now();
    const { model } = cur;
    const cfg = model.config;
    const h = hooks();
    const names = ['logits'] as TapName[];
    const logits = captureTaps(model, { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length }, names, { hooks: h }).get('logits')!.data;
    timing.forwardMs = performance.now() - t;
    const next = nextTokens(logits, ids.length, cfg.vocabSize);
    const predictions = next.map((n) => n.id);
    const tokens = ids.map(cur.token);
    const attn = attentionRun(model, ids, tokens, { hooks: h });
    $('live-attention').innerHTML = attentionFigure(attn, cfg, cur.source, 'computed in this page (src/teach/html/live.ts)');
    showInView(attn, next);
    const T = ids.length;
    $('live-set').textContent = usesLongFactors(cfg.rope, T - 1)
      ? `long factors: ${T} tokens pass the original context ${cfg.rope.originalMaxPositions}`
      : `short factors: ${T} tokens fit the original context ${cfg.rope.originalMaxPositions}`;
    $('live-tokens').textContent = tokens.join(' ');
    $('predictions').textContent = predictions.join(' ');
    $('live-next').textContent = predictions.map(cur.token).join(' ');
    // every step's row of the table, from this run (src/teach/steps.ts, the code `phi4 walkthrough` runs)
    const w = walkSteps(model, { inputIds: Int32Array.from(ids), batch: 1, seq: T }, cur.layer, real, cur.source, { hooks: h });
    $('steps').innerHTML = stepsSection(w, (r) => data.code[codeKey(r)] ?? r.file);
    $('live-timing').textContent = `forward ${timing.forwardMs.toFixed(1)} ms` + (timing.loadToFirstResultMs ? `; load to first result ${timing.loadToFirstResultMs.toFixed(0)} ms` : '');
    return predictions;
  }

  /**
   * The run in the "Attention, interactively" view (page.ts's PAGE_SCRIPT) as its prompt "live":
   * every layer's and head's probabilities, and the arg-max next token with its softmax probability.
   */
  function showInView(attn: AttentionRun, next: { id: number; p: number }[]): void {
    const view = (window as unknown as { phi4view?: { show(label: string, run: unknown): void } }).phi4view;
    if (!view) return;
    const predictions = next.map(({ id, p }) => ({ token: cur.token(id), p }));
    view.show(`live: ${attn.ids.length} tokens (${attn.long ? 'long' : 'short'} factors), computed in this page`, { tokens: attn.tokens, long: attn.long, predictions, probs: attn.probs });
  }

  function score(): { correct: number; total: number } | null {
    if (!cur.heldOut) {
      $('live-accuracy').textContent = 'held-out induction accuracy: the toy model\'s task only (the head switches still act on the predictions and the maps)';
      return null;
    }
    const t = performance.now();
    const a = accuracy(modelLogits(cur.model, { hooks: hooks() }), cur.heldOut, cur.model.config.vocabSize);
    timing.accuracyMs = performance.now() - t;
    const offText = off.size === 0 ? 'all heads on' : `off: ${[...off].sort().join(', ')}`;
    $('live-accuracy').textContent = `held-out induction accuracy ${a.correct}/${a.total} = ${(a.correct / a.total).toFixed(3)} (${offText}; ${cur.heldOut.length} sequences, ${timing.accuracyMs.toFixed(0)} ms)`;
    return { correct: a.correct, total: a.total };
  }

  const input = $('live-ids') as HTMLInputElement;
  const rerun = () => {
    const ids = parseIds(input.value, cur.model.config.vocabSize);
    if (typeof ids === 'string') { $('live-status').textContent = ids; return; }
    $('live-status').textContent = '';
    run(ids);
  };

  /** One switch per head of the current model. */
  function buildHeads(): void {
    const box = $('live-heads');
    box.replaceChildren();
    off.clear();
    const cfg = cur.model.config;
    for (let l = 0; l < cfg.numLayers; l++) {
      for (let h = 0; h < cfg.numHeads; h++) {
        const label = document.createElement('label');
        const cb = document.createElement('input');
        cb.type = 'checkbox';
        cb.checked = true;
        cb.id = `head-${l}-${h}`;
        cb.addEventListener('change', () => {
          if (cb.checked) off.delete(`${l}.${h}`); else off.add(`${l}.${h}`);
          score();
          rerun();
        });
        label.append(cb, ` layer ${l} head ${h} `);
        box.append(label);
      }
    }
  }

  /** Makes `next` the model the views run on (the previous picked one is disposed; the toy is kept). */
  function use(next: Current): void {
    if (cur !== toy && cur !== next) cur.model.weights.dispose();
    cur = next;
    const c = next.model.config;
    $('live-model').textContent = `${next.source}: ${c.numLayers} layers, ${c.numHeads} query / ${c.numKvHeads} key-value heads, hidden ${c.hiddenSize}, vocabulary ${c.vocabSize}`;
    buildHeads();
    // ids typed for the previous model may lie outside this one's vocabulary: start from the page's default ids then
    if (typeof parseIds(input.value, c.vocabSize) === 'string') input.value = data.defaultIds.join(' ');
    const text = $('live-text') as HTMLInputElement;
    text.disabled = !next.encode;
    text.placeholder = next.encode ? 'text, then Enter: encoded by the picked tokenizer.json' : 'a picked checkpoint with its tokenizer.json';
    score();
    rerun();
  }

  async function openPicked(files: File[]): Promise<void> {
    document.body.dataset.pick = 'loading';
    $('live-pick').textContent = '';
    const t = performance.now();
    try {
      const pick = pickedCheckpoint(files);
      if (typeof pick === 'string') throw new Error(pick);
      const tok = pick.tokenizer ? await pickedTokenizer(pick.tokenizer, pick.tokenizerConfig) : null; // before the weights: a bad one costs no load
      const model = await loadModel({ config: pick.config, weights: pick.weights });
      timing.pickLoadMs = performance.now() - t;
      const names = [pick.config, ...pick.weights, ...(tok ? [pick.tokenizer!] : [])].map((f) => f.name).join(', ');
      use({
        model, heldOut: null, layer: model.config.numLayers - 1, source: `picked ${names}`,
        token: tok ? (id) => JSON.stringify(tok.decode([id])).slice(1, -1) : String, // a token's text, its spaces and newlines visible
        ...(tok ? { encode: (text: string) => tok.encode(text) } : {}),
      });
      document.body.dataset.pick = 'loaded';
    } catch (err) {
      $('live-pick').textContent = `not opened: ${firstLine(err)}`;
      document.body.dataset.pick = 'failed';
    }
  }

  const hash = /(?:^#|&)ids=([\d,]+)/.exec(location.hash);
  const first = hash ? parseIds(hash[1], toy.model.config.vocabSize) : data.defaultIds;
  input.value = (typeof first === 'string' ? data.defaultIds : first).join(' ');
  use(toy);
  if (typeof first === 'string') $('live-status').textContent = `#ids: ${first}`;
  timing.loadToFirstResultMs = performance.now(); // performance.now() counts from the navigation's start
  $('live-timing').textContent += `; load to first result ${timing.loadToFirstResultMs.toFixed(0)} ms (script start at ${t0.toFixed(0)} ms)`;
  input.addEventListener('change', rerun);
  const textInput = $('live-text') as HTMLInputElement;
  textInput.addEventListener('change', () => {
    if (!cur.encode) return;
    const ids = cur.encode(textInput.value);
    if (ids.length === 0) { $('live-status').textContent = 'the text encodes to no tokens'; return; }
    input.value = ids.join(' ');
    rerun();
  });

  // The length slider: n letters twice after <s> (T = 2n + 1), crossing the original context at n = 16.
  const slider = $('live-n') as HTMLInputElement;
  slider.addEventListener('input', () => {
    const n = Number(slider.value);
    const letters = Array.from({ length: n }, (_, i) => data.defaultIds[1 + (i % (data.defaultIds.length - 1))]);
    input.value = [data.defaultIds[0], ...letters, ...letters].join(' ');
    $('live-n-label').textContent = `n = ${n}, T = ${2 * n + 1}`;
    rerun();
  });

  const picker = $('live-files') as HTMLInputElement;
  picker.addEventListener('change', () => void openPicked([...(picker.files ?? [])]));
  $('live-toy').addEventListener('click', () => use(toy));
  const tap = (name: TapName, ids: number[]) => Array.from(captureTaps(cur.model, { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length }, [name], { hooks: hooks() }).get(name)!.data);
  Object.assign(window, { phi4live: { get model() { return cur.model; }, tf, run, score, tap, timing, off } });
  document.body.dataset.live = 'ready';
}

main().catch((err: Error) => {
  $('live-status').textContent = `the live page failed: ${err.message}`;
  document.body.dataset.live = 'failed';
  console.error(err);
});
