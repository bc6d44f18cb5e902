// The walkthrough as data: one prompt followed through the model, step by step, each step with
// its tensor's shape for this checkpoint and for the real Phi-4-mini, small statistics of the
// values this checkpoint produced, and the source lines that compute it. `phi4 walkthrough`
// prints it (formatWalkthrough) and tools/gen-docs.ts writes docs/walkthrough.md from it.

import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attentionBias } from '../../layers/mask.js';
import { usesLongFactors } from '../../layers/rotary.js';
import { type Phi3Config, loadConfig } from '../model/config.js';
import { GOLDEN_DIR, dumpPath, modelDir } from '../oracle/golden.js';
import { readInputs } from '../checkpoint/inputs.js';
import { type ForwardInputs, type Phi3Model } from '../model/model.js';
import { captureTaps } from '../capture/host.js';
import { type HeadTapName, type LayerTapName, type ModelTapName, type TapName, tapInfo } from '../../layers/taps.js';
import { axisSizes, layoutShape } from '../capture/shapes.js';
import { loadTokenizer } from '../text/tokenizer.js';
import { InputError } from '../errors.js';

/** The repository root (this file runs from dist/src). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DEFAULT_WALKTHROUGH_CHECKPOINT = modelDir('phi4-mini-tiny');
export const REAL_CONFIG_PATH = join(GOLDEN_DIR, 'configs', 'phi-4-mini-instruct.json');

/** The ids of the golden case phi4-mini-tiny.short, so that every number can be set beside transformers' dump. */
export function defaultIds(vocabSize = Infinity): ForwardInputs {
  const inputs = readInputs(dumpPath('phi4-mini-tiny.short'));
  const top = Math.max(...inputs.inputIds);
  if (top >= vocabSize) throw new InputError(`walkthrough: the default ids reach ${top}, beyond this checkpoint's vocabulary of ${vocabSize}; pass --ids`);
  return inputs;
}

/** `prompt` as ids through the checkpoint's own tokenizer.json (src/text/tokenizer.ts); one row. */
export function promptToInputs(checkpoint: string, prompt: string): ForwardInputs {
  const tokenizer = loadTokenizer(checkpoint);
  if (!tokenizer) throw new InputError(`--prompt: ${checkpoint} has no tokenizer.json`);
  const ids = tokenizer.encode(prompt);
  if (ids.length === 0) throw new InputError('--prompt: the prompt encodes to no tokens');
  return { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length };
}

// ---- where each step is computed: a file and a snippet that must appear in it ----

export interface CodeRef {
  file: string;
  /** Text on the first line of the range. */
  from: string;
  /** Text on the last line of the range (default: the first line). */
  to?: string;
}

export interface CodeLines {
  file: string;
  start: number;
  end: number;
}

/** Finds a reference's lines (1-based) in the source tree under `root`; throws naming what is missing. */
export function locate(ref: CodeRef, root = PROJECT_ROOT): CodeLines {
  const path = join(root, ref.file);
  if (!existsSync(path)) throw new Error(`${ref.file}: not found (walkthrough code reference)`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes(ref.from));
  if (start < 0) throw new Error(`${ref.file}: no line contains ${JSON.stringify(ref.from)} (walkthrough code reference)`);
  if (lines.findIndex((l, i) => i > start && l.includes(ref.from)) >= 0 && ref.to === undefined) {
    throw new Error(`${ref.file}: ${JSON.stringify(ref.from)} is on more than one line; make the reference unique`);
  }
  let end = start;
  if (ref.to !== undefined) {
    end = lines.findIndex((l, i) => i >= start && l.includes(ref.to!));
    if (end < 0) throw new Error(`${ref.file}: no line after ${start + 1} contains ${JSON.stringify(ref.to)} (walkthrough code reference)`);
  }
  return { file: ref.file, start: start + 1, end: end + 1 };
}

// ---- the steps ----

export interface Stats {
  mean: number;
  std: number;
  min: number;
  max: number;
  /** The first values in memory order (batch 0, position 0, ...). */
  first: number[];
}

export interface Step {
  id: string;
  /** The tap this step shows, when it is one (full name). */
  tap?: string;
  title: string;
  /** The equation or rule, one line. */
  rule: string;
  layout: string;
  shape: number[];
  realShape: number[];
  stats?: Stats;
  /** A line of facts this step adds (which factor set, row sums, the chosen token...). */
  note?: string;
  code: CodeRef[];
}

export interface Walkthrough {
  checkpoint: string;
  config: Phi3Config;
  real: Phi3Config;
  inputIds: number[];
  layer: number;
  ropeLong: boolean;
  realRopeLong: boolean;
  steps: Step[];
  /** Whether the checkpoint has Phi-4-mini's block (GQA, partial rotary, LongRoPE, tied head), so its shapes are set beside the real model's. */
  phi4Shaped: boolean;
  /** The five most likely next tokens after the last position, with softmax probabilities. */
  top: { id: number; logit: number; p: number }[];
}

export function stats(data: ArrayLike<number>, nFirst = 4): Stats {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const mean = sum / data.length;
  let sq = 0;
  for (let i = 0; i < data.length; i++) sq += (data[i] - mean) ** 2;
  return { mean, std: Math.sqrt(sq / data.length), min, max, first: Array.from({ length: Math.min(nFirst, data.length) }, (_, i) => data[i]) };
}

const ATT = 'layers/attention.ts';
const DEC = 'layers/decoder.ts';
const MLP = 'layers/mlp.ts';
const MODEL = 'src/model/model.ts';

/** Taps of the walkthrough, layer-relative names prefixed with "@". */
/** A step's tap: a model or head tap, `@name` for the walked layer's own tap, '' for a derived step. */
type StepTap = ModelTapName | HeadTapName | `@${LayerTapName}` | '';

const TAP_STEPS: { id: string; tap: StepTap; title: string; rule: string; code: CodeRef[] }[] = [
  { id: 'embed', tap: 'embed', title: 'token embedding', rule: 'x = embed_tokens[input_ids]', code: [{ file: MODEL, from: "tap('embed'" }] },
  { id: 'rope.cos', tap: 'rope.cos', title: 'rotary cos table', rule: 'cos(p * inv_freq) * scaling, halves repeated', code: [{ file: MODEL, from: 'const rope = rotaryTables(' }, { file: 'layers/rope-tables.ts', from: 'export function cosSin(', to: 'return { cos, sin };' }] },
  { id: 'rope.sin', tap: 'rope.sin', title: 'rotary sin table', rule: 'sin(p * inv_freq) * scaling, halves repeated', code: [{ file: MODEL, from: "tap('rope.sin'" }] },
  { id: 'input_norm', tap: '@input_norm', title: 'RMSNorm before attention', rule: 'w * x / sqrt(mean(x^2) + eps)', code: [{ file: DEC, from: "tap('input_norm'" }, { file: 'layers/rmsnorm.ts', from: 'export function rmsNorm', to: 'return tf.tensor(y' }] },
  { id: 'qkv', tap: '@qkv', title: 'fused qkv projection', rule: '[q | k | v] = x W_qkv^T', code: [{ file: ATT, from: "tap('qkv'" }] },
  { id: 'q', tap: '', title: 'queries (split of qkv)', rule: 'the first nh*d columns', code: [{ file: ATT, from: 'const [qFlat, kFlat, vFlat] = tf.split(' }] },
  { id: 'k', tap: '', title: 'keys (split of qkv)', rule: 'the next nkv*d columns', code: [{ file: ATT, from: 'const [qFlat, kFlat, vFlat] = tf.split(' }] },
  { id: 'v', tap: '', title: 'values (split of qkv)', rule: 'the last nkv*d columns', code: [{ file: ATT, from: 'const [qFlat, kFlat, vFlat] = tf.split(' }] },
  { id: 'q_rot', tap: '@q_rot', title: 'queries after rotary', rule: 'x * cos + rotate_half(x) * sin on the first r dims of each head', code: [{ file: ATT, from: "tap('q_rot'" }, { file: 'layers/rotary.ts', from: 'export function applyRotary(', to: 'return xPass ?' }] },
  { id: 'k_rot', tap: '@k_rot', title: 'keys after rotary', rule: 'as the queries, on nkv heads', code: [{ file: ATT, from: "tap('k_rot'" }] },
  { id: 'scores', tap: '', title: 'attention scores (GQA)', rule: 'q k^T / sqrt(d); query head h reads key head floor(h / g)', code: [{ file: ATT, from: 'const qGrouped = tf.reshape(', to: 'const scores = ' }] },
  { id: 'mask', tap: '', title: 'causal (and sliding-window) mask', rule: '0 where k <= q (and q - k < window), else the lowest float32', code: [{ file: MODEL, from: 'const mask = {' }, { file: 'layers/mask.ts', from: 'const allowed = k <= q', to: '&& (attentionMask' }] },
  { id: 'attn_probs', tap: '@attn_probs', title: 'softmax', rule: 'softmax(scores + mask) over the keys', code: [{ file: ATT, from: 'const masked = tf.add(', to: "tap('attn_probs'" }] },
  { id: 'attn_out', tap: '@attn_out', title: 'weighted values, heads concatenated', rule: 'probs v, heads side by side', code: [{ file: ATT, from: 'const ctx = rowDots(', to: "tap('attn_out'" }] },
  { id: 'o_proj', tap: '@o_proj', title: 'output projection', rule: 'attn_out W_o^T', code: [{ file: ATT, from: "tap('o_proj'" }] },
  { id: 'post_attn_residual', tap: '@post_attn_residual', title: 'residual stream + attention', rule: 'h = x + attention(rmsNorm(x))', code: [{ file: DEC, from: "tap('post_attn_residual'" }] },
  { id: 'post_attn_norm', tap: '@post_attn_norm', title: 'RMSNorm before the MLP', rule: 'w * h / sqrt(mean(h^2) + eps)', code: [{ file: DEC, from: "tap('post_attn_norm'" }] },
  { id: 'gate_up', tap: '@gate_up', title: 'fused gate and up projection', rule: '[gate | up] = h W_gate_up^T', code: [{ file: MLP, from: "tap('gate_up'" }] },
  { id: 'mlp_act', tap: '@mlp_act', title: 'SwiGLU', rule: 'silu(gate) * up, silu(g) = g * sigmoid(g)', code: [{ file: MLP, from: 'const [gate, up] = tf.split(', to: "tap('mlp_act'" }] },
  { id: 'mlp_out', tap: '@mlp_out', title: 'down projection', rule: 'act W_down^T', code: [{ file: MLP, from: "tap('mlp_out'" }] },
  { id: 'out', tap: '@out', title: 'residual stream + MLP: the layer output', rule: 'out = h + mlp(rmsNorm(h))', code: [{ file: DEC, from: "tap('out'" }] },
  { id: 'final_norm', tap: 'final_norm', title: 'final RMSNorm (after the last layer)', rule: 'w * x / sqrt(mean(x^2) + eps)', code: [{ file: MODEL, from: "tap('final_norm'" }] },
  { id: 'logits', tap: 'logits', title: 'tied head', rule: 'logits = final_norm embed_tokens^T (W_head = embed_tokens when tied)', code: [{ file: MODEL, from: "tap('logits'" }, { file: 'src/model/weights.ts', from: 'const lmHead = cfg.tieWordEmbeddings' }] },
];

/** Extra layouts for the steps that are not taps. */
const DERIVED_LAYOUT: Record<string, string> = { q: 'B,T,nh*d', k: 'B,T,nkv*d', v: 'B,T,nkv*d', scores: 'B,nh,T,S', mask: 'B,1,T,S' };

/** The ids of the walkthrough steps, in order. */
export const STEP_IDS = TAP_STEPS.map((s) => s.id);
export const stepCode = (id: string): CodeRef[] => TAP_STEPS.find((s) => s.id === id)!.code;

const fullTap = (tap: Exclude<StepTap, ''>, layer: number): TapName =>
  (tap[0] === '@' ? `layers.${layer}.${tap.slice(1) as LayerTapName}` : tap as ModelTapName | HeadTapName);

/** Runs the model on `inputs` and builds every step for decoder layer `layer`. */
/** Refuses a layer the checkpoint does not have (the CLI calls it before the backend starts, runWalkthrough again). */
export function checkWalkthroughLayer(cfg: Phi3Config, layer: number, source: string): void {
  if (!(Number.isInteger(layer) && layer >= 0 && layer < cfg.numLayers)) {
    throw new InputError(`--layer: ${layer} is not a layer of ${source} (0 .. ${cfg.numLayers - 1})`);
  }
}

export function runWalkthrough(model: Phi3Model, inputs: ForwardInputs, layer: number, real: Phi3Config): Walkthrough {
  const cfg = model.config;
  checkWalkthroughLayer(cfg, layer, model.source);
  if (inputs.batch !== 1) throw new InputError('walkthrough: one row of ids only');
  const names = TAP_STEPS.flatMap((s) => (s.tap ? [fullTap(s.tap, layer)] : []));
  const got = captureTaps(model, inputs, names);
  const T = inputs.seq;
  const sizes = axisSizes(cfg, 1, T);
  const realSizes = axisSizes(real, 1, T);
  const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;

  const qkv = got.get(`layers.${layer}.qkv`)!;
  const cols = (from: number, width: number) => {
    const all = (nh + 2 * nkv) * d;
    const out = new Float32Array(T * width);
    for (let t = 0; t < T; t++) out.set(qkv.data.subarray(t * all + from, t * all + from + width), t * width);
    return out;
  };
  const derived: Record<string, Float32Array> = { q: cols(0, nh * d), k: cols(nh * d, nkv * d), v: cols((nh + nkv) * d, nkv * d) };
  // Scores computed the plain way: each query head against its group's key head, repeated.
  const qr = got.get(`layers.${layer}.q_rot`)!.data; // [1, nh, T, d]
  const kr = got.get(`layers.${layer}.k_rot`)!.data; // [1, nkv, T, d]
  const scores = new Float32Array(nh * T * T);
  const g = nh / nkv;
  for (let h = 0; h < nh; h++) {
    const kv = Math.floor(h / g);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += qr[(h * T + i) * d + e] * kr[(kv * T + j) * d + e];
        scores[(h * T + i) * T + j] = s / Math.sqrt(d);
      }
    }
  }
  derived.scores = scores;
  const bias = attentionBias({ batch: 1, queryLen: T, keyLen: T, slidingWindow: cfg.slidingWindow, attentionMask: null });
  const maskData = bias.dataSync() as Float32Array;
  bias.dispose();
  const allowed = maskData.reduce((n, x) => n + (x === 0 ? 1 : 0), 0);
  derived.mask = maskData.map((x) => (x === 0 ? 1 : 0));

  const maxPos = T - 1;
  const ropeLong = usesLongFactors(cfg.rope, maxPos);
  const steps: Step[] = TAP_STEPS.map((s) => {
    const name = s.tap ? fullTap(s.tap, layer) : undefined;
    const layout = name ? tapInfo(name)!.layout : DERIVED_LAYOUT[s.id];
    const shape = layoutShape(layout, sizes);
    const data = name ? got.get(name)! : { data: derived[s.id], shape };
    if (data.shape.join(',') !== shape.join(',')) throw new Error(`walkthrough: ${s.id} has shape [${data.shape}], its layout ${layout} says [${shape}]`);
    const step: Step = { id: s.id, tap: name, title: s.title, rule: s.rule, layout, shape, realShape: layoutShape(layout, realSizes), code: s.code };
    if (s.id === 'logits' && !cfg.tieWordEmbeddings) Object.assign(step, { title: 'output head (untied lm_head)', rule: 'logits = final_norm W_head^T' });
    step.stats = s.id === 'mask' ? undefined : stats(data.data);
    if (s.id === 'rope.cos') step.note = `${cfg.rope.type === 'longrope' ? `LongRoPE ${ropeLong ? 'long' : 'short'} factors (positions 0..${maxPos}, original context ${cfg.rope.originalMaxPositions}), ` : ''}scaling ${cfg.rope.attentionScaling.toFixed(10)}, ${cfg.rope.rotaryDim} of ${d} dims rotated`;
    if (s.id === 'mask') step.note = `${allowed} of ${T * T} query/key pairs allowed (causal${cfg.slidingWindow !== null && cfg.slidingWindow < T ? `, window ${cfg.slidingWindow}` : ''})`;
    if (s.id === 'scores') step.note = `${nh} query heads in ${nkv} groups of ${g}; before the mask`;
    if (s.id === 'attn_out') {
      step.note = 'position 0 attends only to itself (the causal mask leaves it one key, probability 1), so its row here is the value vector at position 0, repeated for each query head of a group';
    }
    if (s.id === 'attn_probs') {
      let worst = 0;
      for (let r = 0; r < nh * T; r++) {
        let sum = 0;
        for (let j = 0; j < T; j++) sum += data.data[r * T + j];
        worst = Math.max(worst, Math.abs(sum - 1));
      }
      step.note = `every row sums to 1 within ${worst.toExponential(1)}`;
    }
    return step;
  });

  const logits = got.get('logits')!;
  const V = cfg.vocabSize;
  const last = logits.data.subarray((T - 1) * V, T * V);
  let mx = -Infinity;
  for (const x of last) mx = Math.max(mx, x);
  let z = 0;
  for (const x of last) z += Math.exp(x - mx);
  const order = Array.from(last.keys()).sort((a, b) => last[b] - last[a] || a - b).slice(0, 5);
  const top = order.map((id) => ({ id, logit: last[id], p: Math.exp(last[id] - mx) / z }));
  steps[steps.length - 1].note = `next token = argmax of the last position's logits: id ${top[0].id} (p ${num(top[0].p)})`;

  return {
    checkpoint: displayPath(model.source), config: cfg, real, inputIds: Array.from(inputs.inputIds), layer, ropeLong, phi4Shaped: phi4Shaped(cfg),
    realRopeLong: usesLongFactors(real.rope, maxPos), steps, top,
  };
}

/** GQA, partial rotary, LongRoPE and a tied head: the block of Phi-4-mini (phi3-mini has none of them). */
export function phi4Shaped(cfg: Phi3Config): boolean {
  return cfg.numKvHeads < cfg.numHeads && cfg.rope.rotaryDim < cfg.headDim && cfg.rope.type === 'longrope' && cfg.tieWordEmbeddings;
}

/** A path inside the project as a relative one (so that output does not depend on the clone's location). */
export function displayPath(p: string): string {
  const rel = relative(PROJECT_ROOT, p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p;
}

export function loadRealConfig(): Phi3Config {
  return loadConfig(REAL_CONFIG_PATH);
}

// ---- text ----

/** A number in 4 significant digits, the same on every platform. */
export function num(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e5) return Number(x.toPrecision(4)).toString();
  return x.toExponential(3);
}

export const shapeText = (s: number[]) => `[${s.join(', ')}]`;

export function codeText(ref: CodeRef, root = PROJECT_ROOT): string {
  try {
    const l = locate(ref, root);
    return l.start === l.end ? `${l.file}:${l.start}` : `${l.file}:${l.start}-${l.end}`;
  } catch {
    return ref.file;
  }
}

export function statsText(s: Stats): string {
  return `mean ${num(s.mean)}  std ${num(s.std)}  min ${num(s.min)}  max ${num(s.max)}  first ${s.first.map(num).join(' ')}`;
}

/** What `phi4 walkthrough` prints. */
export function formatWalkthrough(w: Walkthrough, root = PROJECT_ROOT): string {
  const out: string[] = [];
  const c = w.config;
  out.push(`checkpoint ${w.checkpoint}: hidden ${c.hiddenSize}, ${c.numLayers} layers, ${c.numHeads}/${c.numKvHeads} heads of ${c.headDim}, rotary ${c.rope.rotaryDim}, intermediate ${c.intermediateSize}, vocab ${c.vocabSize}`);
  out.push(`input_ids (${w.inputIds.length}): ${w.inputIds.join(' ')}`);
  out.push(w.phi4Shaped
    ? `layer ${w.layer} of ${c.numLayers}; shapes: this checkpoint | Phi-4-mini (${w.real.hiddenSize} hidden, same ${w.inputIds.length} tokens)`
    : `layer ${w.layer} of ${c.numLayers}; shapes of this checkpoint (its block is not Phi-4-mini's, so no Phi-4-mini column)`);
  w.steps.forEach((s, i) => {
    out.push('');
    out.push(`${String(i + 1).padStart(2)}. ${s.tap ?? s.id}: ${s.title}    ${s.rule}`);
    out.push(`    ${s.layout}  ${shapeText(s.shape)}${w.phi4Shaped ? ` | ${shapeText(s.realShape)}` : ''}`);
    if (s.stats) out.push(`    ${statsText(s.stats)}`);
    if (s.note) out.push(`    ${s.note}`);
    out.push(`    ${s.code.map((r) => codeText(r, root)).join(', ')}`);
  });
  out.push('');
  out.push(`top 5 next tokens (softmax p): ${w.top.map((t) => `${t.id} (${num(t.p)})`).join(', ')}`);
  return out.join('\n');
}
