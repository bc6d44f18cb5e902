// The model's weights, by the checkpoint's tensor names, checked against the config:
//
//   model.embed_tokens.weight                          [V, H]
//   model.layers.N.input_layernorm.weight              [H]
//   model.layers.N.self_attn.qkv_proj.weight           [(nh + 2 nkv) d, H]
//   model.layers.N.self_attn.o_proj.weight             [H, nh d]
//   model.layers.N.post_attention_layernorm.weight     [H]
//   model.layers.N.mlp.gate_up_proj.weight             [2 I, H]
//   model.layers.N.mlp.down_proj.weight                [H, I]
//   model.norm.weight                                  [H]
//   lm_head.weight                                     [V, H]   (absent when tied)

import * as tf from '@tensorflow/tfjs-core';
import type { DecoderWeights } from '../layers/decoder.js';
import { Checkpoint, WeightsError, numElements } from '../weights/index.js';
import type { Phi3Config } from './config.js';

export interface ModelWeights {
  embedTokens: tf.Tensor2D;
  layers: DecoderWeights[];
  norm: tf.Tensor1D;
  /** The same tensor as embedTokens when the head is tied. */
  lmHead: tf.Tensor2D;
}

/** Every tensor the checkpoint must hold, with its shape. */
export function expectedTensors(cfg: Phi3Config): Map<string, number[]> {
  const { hiddenSize: H, vocabSize: V, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [V, H]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + 'input_layernorm.weight', [H]);
    m.set(p + 'self_attn.qkv_proj.weight', [(nh + 2 * nkv) * d, H]);
    m.set(p + 'self_attn.o_proj.weight', [H, nh * d]);
    m.set(p + 'post_attention_layernorm.weight', [H]);
    m.set(p + 'mlp.gate_up_proj.weight', [2 * I, H]);
    m.set(p + 'mlp.down_proj.weight', [H, I]);
  }
  m.set('model.norm.weight', [H]);
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', [V, H]);
  return m;
}

/** Buffers old checkpoints carry that transformers ignores on load too. */
const IGNORED = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/** Checks names and shapes; returns nothing, throws a WeightsError naming the first problem. */
export function checkTensors(ckpt: Checkpoint, cfg: Phi3Config): void {
  const expected = expectedTensors(cfg);
  for (const [name, shape] of expected) {
    if (!ckpt.has(name)) throw new WeightsError(`${ckpt.dir}: tensor "${name}" is missing`);
    const got = ckpt.info(name).shape;
    if (got.join(',') !== shape.join(',')) {
      throw new WeightsError(`${ckpt.info(name).file}: tensor "${name}" has shape [${got}], the config needs [${shape}]`);
    }
  }
  for (const name of ckpt.names()) {
    if (expected.has(name) || IGNORED.test(name)) continue;
    // A tied checkpoint may still carry a copy of the head; transformers ties it to the embedding.
    if (name === 'lm_head.weight' && cfg.tieWordEmbeddings) continue;
    throw new WeightsError(`${ckpt.info(name).file}: unexpected tensor "${name}" (not part of Phi3ForCausalLM with this config)`);
  }
}

/** The wasm backend's heap: 4 GiB of 32-bit addresses, less room for activations. */
export const WASM_WEIGHT_BUDGET = 3.5 * 2 ** 30;

/** Bytes the weights take once widened to float32 (the tied head counted once). */
export function float32Bytes(cfg: Phi3Config): number {
  let n = 0;
  for (const shape of expectedTensors(cfg).values()) n += numElements(shape);
  return 4 * n;
}

/** Reads every weight as float32 (bf16 and f16 widen exactly). */
export function loadWeights(dir: string, cfg: Phi3Config): ModelWeights {
  const ckpt = Checkpoint.open(dir);
  try {
    const need = float32Bytes(cfg);
    if (tf.getBackend() === 'wasm' && need > WASM_WEIGHT_BUDGET) {
      throw new WeightsError(`${ckpt.dir}: the weights need ${(need / 2 ** 30).toFixed(1)} GiB as float32, more than the wasm backend's 4 GiB heap can hold; use --backend cpu (or tensorflow)`);
    }
    checkTensors(ckpt, cfg);
    const t2 = (n: string) => tf.tensor2d(ckpt.readFloat32(n), ckpt.info(n).shape as [number, number]);
    const t1 = (n: string) => tf.tensor1d(ckpt.readFloat32(n));
    const embedTokens = t2('model.embed_tokens.weight');
    const layers: DecoderWeights[] = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `model.layers.${i}.`;
      layers.push({
        inputLayernorm: t1(p + 'input_layernorm.weight'),
        attn: { qkvProj: t2(p + 'self_attn.qkv_proj.weight'), oProj: t2(p + 'self_attn.o_proj.weight') },
        postAttentionLayernorm: t1(p + 'post_attention_layernorm.weight'),
        mlp: { gateUpProj: t2(p + 'mlp.gate_up_proj.weight'), downProj: t2(p + 'mlp.down_proj.weight') },
      });
    }
    const norm = t1('model.norm.weight');
    const lmHead = cfg.tieWordEmbeddings ? embedTokens : t2('lm_head.weight');
    return { embedTokens, layers, norm, lmHead };
  } finally {
    ckpt.close();
  }
}
