// Trains the toy induction model (src/teach/toy/task.ts) through the project's own layers/ code and
// writes it as a checkpoint in the published layout: config.json, model.safetensors (bf16, the
// names src/model/weights.ts reads), tokenizer.json and training.json (how it was made, and the written
// checkpoint's held-out accuracy through the normal forward pass).
//
//   npm run train-toy                      tsc, then node dist/tools/train-toy.js (wasm backend)
//   node dist/tools/train-toy.js [--out DIR] [--steps N] [--seed N] [--batch N] [--lr X]
//                              [--warmup N] [--clip X] [--backend wasm|cpu]
//
// The forward pass is layers/decoder.ts, layers/rmsnorm.ts, layers/linear.ts and
// layers/rotary.ts with tf.Variables as the weights, with the sums as plain tfjs ops (the exact
// host sums of layers/exact.ts have no gradients); tfjs differentiates it (tf.variableGrads).
// Adam with a linear warmup and a cosine decay, gradients clipped to a global norm: without the
// warmup and clipping, lr 1e-2 stayed at chance. The wasm backend is the default because it is
// about six times faster here than cpu; a seed gives the same checkpoint on the same backend.

import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type DecoderWeights, decoderLayer } from '../../../layers/decoder.js';
import { setExactSums } from '../../../layers/exact.js';
import { linear } from '../../../layers/linear.js';
import { rmsNorm } from '../../../layers/rmsnorm.js';
import { rotaryTables } from '../../../layers/rotary.js';
import { writeSafetensors } from '../../../weights/index.js';
import { type Phi3Config, parseConfig } from '../../model/config.js';
import { modelDir } from '../../oracle/golden.js';
import { Phi3Model } from '../../model/model.js';
import { Rng } from '../../checkpoint/synth.js';
import { expectedTensors } from '../../model/weights.js';
import { registerGradients } from './gradients.js';

export { registerGradients };
import { accuracy, heldOutSequences, heldOutSet, modelLogits, setGuessAccuracy } from './evaluate.js';
import { ALPHABET, BOS, type ToySequence, scoredPositions, trainingBatch } from './task.js';

export const TOY_NAME = 'phi4-toy-induction';
export const TOY_DIR = modelDir(TOY_NAME);

/** Phi-4-mini's block (partial LongRoPE, GQA 2:1, fused qkv and gate_up, tied head), small. */
export const TOY_CONFIG = {
  architectures: ['Phi3ForCausalLM'],
  model_type: 'phi3',
  attention_bias: false,
  mlp_bias: false,
  lm_head_bias: false,
  hidden_act: 'silu',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  partial_rotary_factor: 0.75,
  vocab_size: 32,
  max_position_embeddings: 64,
  original_max_position_embeddings: 32,
  rope_theta: 10000.0,
  rope_scaling: {
    type: 'longrope',
    short_factor: [1.0, 1.02, 1.07, 1.15, 1.3, 1.55],
    long_factor: [1.0, 1.6, 3.1, 7.9, 19.5, 41.0],
  },
  rms_norm_eps: 1e-5,
  sliding_window: 262144,
  tie_word_embeddings: true,
  bos_token_id: BOS,
  eos_token_id: BOS,
  pad_token_id: BOS,
  torch_dtype: 'bfloat16',
};

export interface TrainOptions {
  seed: number;
  steps: number;
  batch: number;
  /** Adam's peak learning rate: reached after `warmup` linear steps, then a cosine decay to lr / 10. */
  lr: number;
  warmup: number;
  /** Gradients are scaled down to this global L2 norm when they exceed it. */
  clip: number;
}

export const DEFAULT_TRAIN: TrainOptions = { seed: 14, steps: 1500, batch: 16, lr: 3e-3, warmup: 100, clip: 1 };

/** The learning rate of step `step` (0-based): linear warmup, then cosine decay to a tenth. */
export function learningRate(opts: TrainOptions, step: number): number {
  if (step < opts.warmup) return (opts.lr * (step + 1)) / opts.warmup;
  const t = (step - opts.warmup) / Math.max(1, opts.steps - opts.warmup);
  return opts.lr * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * t)));
}

/** HF tokenizers JSON: "<s>" and the 26 letters, whitespace-separated (a BPE with no merges). */
export function toyTokenizerJson(): object {
  const vocab: Record<string, number> = { '<s>': BOS };
  Array.from(ALPHABET).forEach((c, i) => { vocab[c] = i + 1; });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: BOS, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}

interface Params {
  embed: tf.Variable<tf.Rank.R2>; // [V, H]
  layers: DecoderWeights[];
  norm: tf.Variable<tf.Rank.R1>; // [H]
}

function initParams(cfg: Phi3Config, seed: number): Params {
  const { hiddenSize: H, numHeads: nh, numKvHeads: nkv, headDim: d, intermediateSize: I, vocabSize: V, numLayers: L } = cfg;
  let k = 0;
  const normal = (shape: number[], std: number, name: string) => tf.variable(tf.randomNormal(shape, 0, std, 'float32', seed * 1000 + k++), true, name);
  const ones = (n: number, name: string) => tf.variable(tf.ones([n]), true, name);
  const out = 1 / Math.sqrt(2 * L); // residual branches start small
  const layers = Array.from({ length: L }, (_, i) => ({
    inputLayernorm: ones(H, `l${i}.in_norm`) as tf.Variable<tf.Rank.R1>,
    attn: {
      qkvProj: normal([(nh + 2 * nkv) * d, H], 1 / Math.sqrt(H), `l${i}.qkv`) as tf.Variable<tf.Rank.R2>,
      oProj: normal([H, nh * d], out / Math.sqrt(nh * d), `l${i}.o`) as tf.Variable<tf.Rank.R2>,
    },
    postAttentionLayernorm: ones(H, `l${i}.post_norm`) as tf.Variable<tf.Rank.R1>,
    mlp: {
      gateUpProj: normal([2 * I, H], 1 / Math.sqrt(H), `l${i}.gate_up`) as tf.Variable<tf.Rank.R2>,
      downProj: normal([H, I], out / Math.sqrt(I), `l${i}.down`) as tf.Variable<tf.Rank.R2>,
    },
  }));
  return { embed: normal([V, H], 0.1, 'embed') as tf.Variable<tf.Rank.R2>, layers, norm: ones(H, 'norm') as tf.Variable<tf.Rank.R1> };
}

/** The model's logits [B, T, V] through layers/, for B sequences of one length T. */
function logitsOf(p: Params, cfg: Phi3Config, ids: Int32Array, B: number, T: number): tf.Tensor3D {
  const V = cfg.vocabSize;
  const positions = new Int32Array(B * T).map((_, i) => i % T);
  const rope = rotaryTables(cfg.rope, positions, B, T);
  const mask = { batch: B, queryLen: T, keyLen: T, slidingWindow: cfg.slidingWindow, attentionMask: null };
  // one-hot times the table: the same rows as a gather, with a plain matMul gradient
  let x = tf.reshape(tf.matMul(tf.oneHot(tf.tensor1d(ids, 'int32'), V), p.embed), [B, T, cfg.hiddenSize]) as tf.Tensor3D;
  for (const lw of p.layers) {
    const r = decoderLayer(x, lw, cfg, { cos: rope.cos, sin: rope.sin, mask });
    x = r.out;
  }
  return linear(rmsNorm(x, p.norm, cfg.rmsNormEps), p.embed); // tied head
}

/** Mean cross-entropy over the scored positions of a batch of same-length sequences. */
function lossOf(p: Params, cfg: Phi3Config, batch: ToySequence[]): tf.Scalar {
  const B = batch.length;
  const T = batch[0].ids.length;
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const weight = new Float32Array(B * T);
  batch.forEach((s, b) => {
    ids.set(s.ids, b * T);
    for (const q of scoredPositions(s)) {
      targets[b * T + q] = s.ids[q + 1];
      weight[b * T + q] = 1;
    }
  });
  const logits = tf.reshape(logitsOf(p, cfg, ids, B, T), [B * T, cfg.vocabSize]);
  const nll = tf.neg(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(targets, 'int32'), cfg.vocabSize), tf.logSoftmax(logits)), 1)); // [B T]
  const w = tf.tensor1d(weight);
  return tf.div(tf.sum(tf.mul(nll, w)), tf.sum(w)) as tf.Scalar;
}

function allVariables(p: Params): tf.Variable[] {
  return [p.embed, p.norm, ...p.layers.flatMap((l) => [l.inputLayernorm, l.postAttentionLayernorm, l.attn.qkvProj, l.attn.oProj, l.mlp.gateUpProj, l.mlp.downProj] as tf.Variable[])];
}

/** grads scaled by min(1, maxNorm / ||grads||), the norm taken over all of them together. */
function clipByGlobalNorm(grads: tf.NamedTensorMap, maxNorm: number): tf.NamedTensorMap {
  const norm = Math.sqrt(Object.values(grads).reduce((a, g) => a + tf.tidy(() => tf.sum(tf.square(g)).dataSync()[0]), 0));
  const scale = norm > maxNorm ? maxNorm / norm : 1;
  return Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, scale)]));
}

function toTensors(p: Params): { name: string; dtype: 'BF16'; shape: number[]; data: Float32Array }[] {
  const named = new Map<string, tf.Tensor>([['model.embed_tokens.weight', p.embed], ['model.norm.weight', p.norm]]);
  p.layers.forEach((l, i) => {
    const pre = `model.layers.${i}.`;
    named.set(pre + 'input_layernorm.weight', l.inputLayernorm);
    named.set(pre + 'self_attn.qkv_proj.weight', l.attn.qkvProj as tf.Tensor);
    named.set(pre + 'self_attn.o_proj.weight', l.attn.oProj as tf.Tensor);
    named.set(pre + 'post_attention_layernorm.weight', l.postAttentionLayernorm);
    named.set(pre + 'mlp.gate_up_proj.weight', l.mlp.gateUpProj as tf.Tensor);
    named.set(pre + 'mlp.down_proj.weight', l.mlp.downProj as tf.Tensor);
  });
  return [...named].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, t]) => ({ name, dtype: 'BF16', shape: t.shape, data: t.dataSync() as Float32Array }));
}

export interface TrainResult {
  losses: number[];
  seconds: number;
  heldOut: HeldOutReport;
}

/** Held-out accuracy of the written checkpoint, split by LongRoPE factor set. */
export interface HeldOutReport {
  sequences: number;
  predictions: number;
  accuracy: number;
  short: { lengths: string; predictions: number; accuracy: number };
  long: { lengths: string; predictions: number; accuracy: number };
  chance_uniform: number;
  chance_set_guess: number;
}

/**
 * Trains, writes the checkpoint to `out` (replaced whole, via a temporary directory), and measures
 * the written bf16 checkpoint on the held-out set through the normal forward pass (src/model/model.ts).
 */
export function trainToy(out: string, opts: TrainOptions = DEFAULT_TRAIN, log: (s: string) => void = () => {}, command = 'npm run train-toy'): TrainResult {
  const cfg = parseConfig(TOY_CONFIG, 'TOY_CONFIG');
  setExactSums(false); // gradients need tfjs ops; the trained model is then run exactly like any other
  let trained: { p: Params; losses: number[]; seconds: number };
  try {
    trained = trainWithTfjsOps(cfg, opts, log);
  } finally {
    setExactSums(true);
  }
  const { p, losses, seconds } = trained;

  const tmp = `${out}.tmp-${process.pid}`;
  try {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const tensors = toTensors(p);
    tf.dispose(allVariables(p));
    const expected = expectedTensors(cfg);
    if (tensors.length !== expected.size || tensors.some((t) => expected.get(t.name)?.join(',') !== t.shape.join(','))) throw new Error('train-toy: tensors do not match expectedTensors');
    writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(TOY_CONFIG, null, 2) + '\n');
    writeFileSync(join(tmp, 'tokenizer.json'), JSON.stringify(toyTokenizerJson(), null, 2) + '\n');
    const heldOut = evaluateCheckpoint(tmp, opts);
    log(`held-out accuracy ${heldOut.accuracy.toFixed(4)} (short factors ${heldOut.short.accuracy.toFixed(4)}, long ${heldOut.long.accuracy.toFixed(4)}) on ${heldOut.predictions} predictions`);
    const last = losses.slice(-25);
    writeFileSync(join(tmp, 'training.json'), JSON.stringify({
      command, backend: tf.getBackend(), ...opts, optimizer: 'adam (linear warmup, cosine decay to lr/10, global-norm clipping)',
      task: 'induction: <s> x1..xn x1..xn, n distinct letters, scored on x2..xn of the second copy (src/teach/toy/task.ts)',
      seconds: Math.round(seconds),
      final_loss_mean_last_25_steps: Number((last.reduce((x, y) => x + y, 0) / last.length).toFixed(4)),
      held_out: heldOut,
    }, null, 2) + '\n');
    rmSync(out, { recursive: true, force: true });
    mkdirSync(dirname(out), { recursive: true });
    renameSync(tmp, out);
    return { losses, seconds, heldOut };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** The held-out report of a checkpoint directory trained with `run` (as the toy test measures it). */
export function evaluateCheckpoint(dir: string, run: { seed: number; steps: number; batch: number }): HeldOutReport {
  const model = Phi3Model.load(dir);
  try {
    const seqs = heldOutSet(run);
    const acc = accuracy(modelLogits(model), seqs, model.config.vocabSize);
    const orig = model.config.rope.originalMaxPositions;
    const part = (long: boolean) => {
      const rows = acc.byLength.filter(([T]) => (T > orig) === long);
      const [c, n] = rows.reduce(([x, y], [, cc, nn]) => [x + cc, y + nn], [0, 0]);
      return { lengths: `${rows[0][0]}..${rows[rows.length - 1][0]} tokens`, predictions: n, accuracy: Number((c / n).toFixed(4)) };
    };
    return {
      sequences: seqs.length, predictions: acc.total, accuracy: Number((acc.correct / acc.total).toFixed(4)),
      short: part(false), long: part(true),
      chance_uniform: Number((1 / ALPHABET.length).toFixed(4)), chance_set_guess: Number(setGuessAccuracy(seqs).toFixed(4)),
    };
  } finally {
    model.dispose();
  }
}

function trainWithTfjsOps(cfg: Phi3Config, opts: TrainOptions, log: (s: string) => void): { p: Params; losses: number[]; seconds: number } {
  const p = initParams(cfg, opts.seed);
  const vars = allVariables(p);
  const optimizer = tf.train.adam(opts.lr);
  const rng = new Rng(opts.seed, 'train');
  const monitor = heldOutSequences(opts.seed, 'monitor', 4); // progress only; nothing is chosen on it
  const monitorAccuracy = () => accuracy((ids, B, T) => tf.tidy(() => logitsOf(p, cfg, ids, B, T).dataSync() as Float32Array), monitor, cfg.vocabSize);
  const losses: number[] = [];
  const t0 = Date.now();
  for (let step = 0; step < opts.steps; step++) {
    const batch = trainingBatch(rng, opts.batch);
    (optimizer as unknown as { learningRate: number }).learningRate = learningRate(opts, step);
    const { value, grads } = tf.variableGrads(() => lossOf(p, cfg, batch), vars);
    const clipped = clipByGlobalNorm(grads, opts.clip);
    optimizer.applyGradients(Object.entries(clipped).map(([name, tensor]) => ({ name, tensor })));
    losses.push(value.dataSync()[0]);
    tf.dispose([value, ...Object.values(grads), ...Object.values(clipped)]);
    if (step % 50 === 0 || step === opts.steps - 1) {
      const acc = monitorAccuracy();
      log(`step ${step}  n ${batch[0].n}  loss ${losses[step].toFixed(4)}  lr ${learningRate(opts, step).toExponential(2)}  monitor acc ${(acc.correct / acc.total).toFixed(3)}  ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  optimizer.dispose();
  return { p, losses, seconds: (Date.now() - t0) / 1000 };
}
