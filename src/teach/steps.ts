// The walkthrough's steps: one prompt followed through one decoder layer, each step with its
// tensor's shape for this checkpoint and for the real Phi-4-mini, small statistics of the values
// this checkpoint produced, and the source lines that compute it (as references: resolving them to
// line numbers reads files, which src/teach/walkthrough.ts does in Node). No Node module: the live
// page (src/teach/html/live.ts) recomputes the steps' table in the browser with this same code.

import { attentionBias } from '../../layers/mask.js';
import { usesLongFactors } from '../../layers/rotary.js';
import type { Phi3Config } from '../model/config.js';
import type { ForwardInputs, ForwardOptions, Phi3Model } from '../model/model.js';
import { captureTaps } from '../capture/host.js';
import { type HeadTapName, type LayerTapName, type ModelTapName, type TapName, tapInfo } from '../../layers/taps.js';
import { axisSizes, layoutShape } from '../capture/shapes.js';
import { InputError } from '../errors.js';

// ---- where each step is computed: a file and a snippet that must appear in it ----

export interface CodeRef {
  file: string;
  /** Text on the first line of the range. */
  from: string;
  /** Text on the last line of the range (default: the first line). */
  to?: string;
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

/** Refuses a layer the checkpoint does not have (the CLI calls it before the backend starts, runWalkthrough again). */
export function checkWalkthroughLayer(cfg: Phi3Config, layer: number, source: string): void {
  if (!(Number.isInteger(layer) && layer >= 0 && layer < cfg.numLayers)) {
    throw new InputError(`--layer: ${layer} is not a layer of ${source} (0 .. ${cfg.numLayers - 1})`);
  }
}

/**
 * Runs the model on `inputs` (with `opts.hooks` if given) and builds every step for decoder layer
 * `layer`; `checkpoint` is the name the result shows.
 */
export function walkSteps(model: Phi3Model, inputs: ForwardInputs, layer: number, real: Phi3Config, checkpoint: string, opts: ForwardOptions = {}): Walkthrough {
  const cfg = model.config;
  checkWalkthroughLayer(cfg, layer, checkpoint);
  if (inputs.batch !== 1) throw new InputError('walkthrough: one row of ids only');
  const names = TAP_STEPS.flatMap((s) => (s.tap ? [fullTap(s.tap, layer)] : []));
  const got = captureTaps(model, inputs, names, opts);
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
    checkpoint, config: cfg, real, inputIds: Array.from(inputs.inputIds), layer, ropeLong, phi4Shaped: phi4Shaped(cfg),
    realRopeLong: usesLongFactors(real.rope, maxPos), steps, top,
  };
}

/** GQA, partial rotary, LongRoPE and a tied head: the block of Phi-4-mini (phi3-mini has none of them). */
export function phi4Shaped(cfg: Phi3Config): boolean {
  return cfg.numKvHeads < cfg.numHeads && cfg.rope.rotaryDim < cfg.headDim && cfg.rope.type === 'longrope' && cfg.tieWordEmbeddings;
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

export function statsText(s: Stats): string {
  return `mean ${num(s.mean)}  std ${num(s.std)}  min ${num(s.min)}  max ${num(s.max)}  first ${s.first.map(num).join(' ')}`;
}
