// `phi4 walkthrough --html FILE`: one self-contained page (no network, no framework): the
// walkthrough's steps and numbers, the figures of src/teach/figures/figures.ts inline, and an attention
// view where the reader picks the prompt, layer, head and query position. The data the view
// needs (attention probabilities rounded to 3 decimals) is embedded as JSON; the script is
// PAGE_SCRIPT below, plain DOM calls.

import { writeFileAtomic } from '../../safety/outputs.js';
import type { AttentionRun, FigureSet } from '../figures/figures.js';
import { attentionRun } from '../figures/figures.js';
import type { Phi3Model } from '../../model/model.js';
import type { Phi4Tokenizer } from '../../text/tokenizer.js';
import { captureTaps } from '../../capture/host.js';
import { argmaxProb } from '../../generate/sampling.js';
import { type Walkthrough, codeText } from '../walkthrough.js';
import { esc, stepsSection } from './steps-table.js';

const CAPTIONS: Record<string, string> = {
  'attention-short': 'Before the LongRoPE switch: 25 tokens fit the original context (32), so the short factors are used.',
  'attention-long': 'After the switch: 41 tokens pass 32, so every position uses the long factors. In layer 0, heads 2 and 3 look mostly one token back and heads 0 and 1 mostly at their own position; in the second copy, layer 1\'s heads 0, 1 and 3 look at the token after the current token\'s earlier occurrence, the token to predict (the induction stripe).',
  rope: 'Wavelength of each of the 48 rotary pairs of the real Phi-4-mini config, under the short and the long factors.',
  residual: 'How large the residual stream is after each sublayer, and how large each sublayer\'s addition is.',
  masks: 'The causal, sliding-window and padding masks as grids.',
  gqa: 'Which query heads share which key/value head.',
};

const STYLE = `body{font:15px/1.45 sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}figure{margin:1.5em 0;overflow-x:auto}
figcaption{color:#444;font-size:.95em}code,pre{font-family:monospace;font-size:13px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left}
#view label{margin-right:1em}#row text{font:11px monospace}`;

/** The script of the attention view: draws the chosen head's map and the chosen query's row. */
export const PAGE_SCRIPT = `
const data = JSON.parse(document.getElementById('attn-data').textContent);
const $ = (id) => document.getElementById(id);
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  parent.appendChild(e);
  return e;
}
function fillSelect(sel, n, label) {
  sel.innerHTML = '';
  for (let i = 0; i < n; i++) sel.add(new Option(label + ' ' + i, i));
}
function draw() {
  const run = data.runs[$('prompt').value];
  const T = run.tokens.length;
  // a live run may come from a picked checkpoint with other counts of layers and heads
  if ($('layer').options.length !== run.probs.length) { fillSelect($('layer'), run.probs.length, 'layer'); $('layer').value = run.probs.length - 1; }
  if ($('head').options.length !== run.probs[0].length) fillSelect($('head'), run.probs[0].length, 'head');
  const layer = +$('layer').value, head = +$('head').value;
  if (+$('query').max !== T - 1) { $('query').max = T - 1; $('query').value = T - 1; }
  const q = +$('query').value;
  const p = run.probs[layer][head];
  $('query-label').textContent = q + ' (' + run.tokens[q] + ')';
  $('set').textContent = run.long ? 'long factors (T = ' + T + ' > ' + data.original + ')' : 'short factors (T = ' + T + ' <= ' + data.original + ')';
  const map = $('map');
  map.innerHTML = '';
  const cell = Math.floor(320 / T);
  map.setAttribute('width', cell * T + 2); map.setAttribute('height', cell * T + 2);
  for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) {
    const v = p[i * T + j];
    if (v >= 0.01) el('rect', { class: 'cell', x: 1 + j * cell, y: 1 + i * cell, width: cell, height: cell, fill: '#08306b', 'fill-opacity': v.toFixed(2) }, map);
  }
  el('rect', { x: 1, y: 1 + q * cell, width: cell * T, height: cell, fill: 'none', stroke: '#d62728', 'stroke-width': 2 }, map);
  const row = $('row');
  row.innerHTML = '';
  row.setAttribute('height', 16 * (q + 1) + 4);
  for (let j = 0; j <= q; j++) {
    const v = p[q * T + j];
    el('text', { x: 0, y: 16 * j + 12 }, row).textContent = String(j).padStart(2) + ' ' + run.tokens[j];
    el('rect', { class: 'bar', x: 60, y: 16 * j + 3, width: Math.max(0.5, 300 * v), height: 11, fill: '#08306b' }, row);
    el('text', { x: 66 + 300 * v, y: 16 * j + 12 }, row).textContent = v.toFixed(3);
  }
  const pred = run.predictions[q];
  $('pred').textContent = 'the model\\'s next token after position ' + q + ': ' + pred.token + ' (p ' + pred.p.toFixed(3) + ')';
}
fillSelect($('layer'), data.layers, 'layer');
fillSelect($('head'), data.heads, 'head');
$('layer').value = data.layers - 1;
for (const id of ['prompt', 'layer', 'head', 'query']) $(id).addEventListener('input', draw);
// The live section (src/teach/html/live.ts) shows each run it makes here as the prompt "live",
// selected: the page's own forward, with its head switches, not a run Node made.
window.phi4view = {
  show(label, run) {
    data.runs.live = run;
    let opt = Array.from($('prompt').options).find((o) => o.value === 'live');
    if (!opt) { opt = new Option('', 'live'); $('prompt').add(opt, 0); }
    opt.textContent = label;
    $('prompt').value = 'live';
    draw();
  },
};
draw();
`;

export interface PageRun extends AttentionRun {
  /** Argmax next token and its probability at every position. */
  predictions: { token: string; p: number }[];
}

/** Attention of every layer and head, and the argmax next token at every position. */
export function pageRun(model: Phi3Model, ids: number[], tokenizer: Phi4Tokenizer | null): PageRun {
  const tokens = ids.map((id) => (tokenizer ? tokenizer.decode([id]) : String(id)));
  const run = attentionRun(model, ids, tokens);
  const V = model.config.vocabSize;
  const logits = captureTaps(model, { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length }, ['logits']).get('logits')!.data;
  const predictions = ids.map((_, t) => {
    const { id, p } = argmaxProb(logits.subarray(t * V, (t + 1) * V));
    return { token: tokenizer ? tokenizer.decode([id]) : String(id), p };
  });
  return { ...run, predictions };
}

/** Writes the page atomically (a temporary file, then a rename), so a failure leaves nothing half-written. */
export function writePage(file: string, html: string): void {
  writeFileAtomic(file, html);
}

export function walkthroughPage(w: Walkthrough, figures: FigureSet, runs: Record<string, PageRun>, opts: { accuracy?: string; live?: string } = {}): string {
  const c = w.config;
  const round = (r: PageRun) => ({
    tokens: r.tokens, long: r.long, predictions: r.predictions.map((x) => ({ token: x.token, p: Number(x.p.toFixed(3)) })),
    probs: r.probs.map((layer) => layer.map((h) => Array.from(h, (v) => Number(v.toFixed(3))))),
  });
  const data = { layers: c.numLayers, heads: c.numHeads, original: c.rope.originalMaxPositions, runs: Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, round(r)])) };
  const options = Object.entries(runs).map(([k, r]) => `<option value="${esc(k)}">${r.tokens.length} tokens (${r.long ? 'long' : 'short'} factors)</option>`).join('');
  const fig = (name: string) => `<figure id="fig-${name}">\n${figures.svgs.get(name)!}<figcaption>${esc(CAPTIONS[name])}</figcaption></figure>`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>phi4-ts walkthrough: ${esc(w.checkpoint)}</title>
<style>${STYLE}</style></head><body>
<h1>One prompt through a Phi-4-mini-shaped model</h1>
<p>Checkpoint <code>${esc(w.checkpoint)}</code>: hidden ${c.hiddenSize}, ${c.numLayers} layers, ${c.numHeads} query / ${c.numKvHeads} key-value heads of ${c.headDim} dims (${c.rope.rotaryDim} rotated),
MLP ${c.intermediateSize}, vocabulary ${c.vocabSize}, LongRoPE with original context ${c.rope.originalMaxPositions} of ${c.maxPositions}, head tied to the embedding.
${opts.accuracy ? esc(opts.accuracy) : ''}</p>
<p>Made by <code>phi4 walkthrough --html</code> (docs/walkthrough.md has the same steps with more prose). Everything here was computed by running the model; nothing is loaded from the network.</p>

${opts.live ?? ''}
<h2>Attention, interactively</h2>
<div id="view">
<label>prompt <select id="prompt">${options}</select></label>
<label><select id="layer"></select></label><label><select id="head"></select></label>
<label>query position <input id="query" type="range" min="0" max="0" value="0"> <span id="query-label"></span></label>
<p>LongRoPE: <span id="set"></span>. <span id="pred"></span></p>
<div style="display:flex;gap:2em;align-items:flex-start">
<svg id="map" xmlns="http://www.w3.org/2000/svg"></svg>
<svg id="row" xmlns="http://www.w3.org/2000/svg" width="420"></svg>
</div>
<p>${opts.live ? 'The prompt "live" is the live section\'s latest run, computed in this page (its ids, model and head switches); the others are runs Node made when the page was written. ' : ''}Left: the head's probabilities (row = query, column = key; the chosen query outlined in red; cells under 0.01 blank). Right: the chosen query's row, one bar per key it may see.</p>
</div>

<h2>Figures</h2>
${['attention-short', 'attention-long', 'rope', 'residual', 'masks', 'gqa'].map(fig).join('\n')}

<div id="steps">
${stepsSection(w, (r) => codeText(r))}</div>
<script type="application/json" id="attn-data">${JSON.stringify(data)}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}
