// The checkpoint's parameter names, the one table of them (see MODEL_PARAMETERS below):
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
//
// Pure data and names (no tfjs): src/model/weights.ts loads, holds and frees the tensors by it,
// the memory calculator and synth size and write checkpoints by it.

import type { Phi3Config } from './config.js';

/**
 * The checkpoint's parameters, the one table of them: each field of the model's weights, the
 * tensor it is read from and that tensor's shape. The expected tensors, every loader below and
 * ResidentWeights.dispose are derived from it; `decoderLayer` is the one place a layer's names
 * meet layers/decoder.ts's DecoderWeights fields.
 */
type Shape = (c: Phi3Config) => number[];
const qkvRows = (c: Phi3Config) => (c.numHeads + 2 * c.numKvHeads) * c.headDim;
export const MODEL_PARAMETERS = {
  embedTokens: { tensor: 'model.embed_tokens.weight', shape: (c) => [c.vocabSize, c.hiddenSize] },
  norm: { tensor: 'model.norm.weight', shape: (c) => [c.hiddenSize] },
  lmHead: { tensor: 'lm_head.weight', shape: (c) => [c.vocabSize, c.hiddenSize] }, // absent when tied
} as const satisfies Record<string, { tensor: string; shape: Shape }>;
/** Per layer N, under `model.layers.N.`, in the checkpoint's order. */
export const LAYER_PARAMETERS = {
  inputLayernorm: { tensor: 'input_layernorm.weight', shape: (c) => [c.hiddenSize] },
  qkvProj: { tensor: 'self_attn.qkv_proj.weight', shape: (c) => [qkvRows(c), c.hiddenSize] },
  oProj: { tensor: 'self_attn.o_proj.weight', shape: (c) => [c.hiddenSize, c.numHeads * c.headDim] },
  postAttentionLayernorm: { tensor: 'post_attention_layernorm.weight', shape: (c) => [c.hiddenSize] },
  gateUpProj: { tensor: 'mlp.gate_up_proj.weight', shape: (c) => [2 * c.intermediateSize, c.hiddenSize] },
  downProj: { tensor: 'mlp.down_proj.weight', shape: (c) => [c.hiddenSize, c.intermediateSize] },
} as const satisfies Record<string, { tensor: string; shape: Shape }>;
export type LayerParameter = keyof typeof LAYER_PARAMETERS;

/** The tensor name of layer i's parameter `p`. */
export const layerTensor = (i: number, p: LayerParameter) => `model.layers.${i}.${LAYER_PARAMETERS[p].tensor}`;

/** Layer i's weights as DecoderWeights' fields: `norm` gives each norm, `matrix` each matrix, from its tensor name. */
export function decoderLayer<N, M>(i: number, norm: (tensor: string) => N, matrix: (tensor: string) => M) {
  const n = (p: LayerParameter) => norm(layerTensor(i, p));
  const m = (p: LayerParameter) => matrix(layerTensor(i, p));
  return {
    inputLayernorm: n('inputLayernorm'),
    attn: { qkvProj: m('qkvProj'), oProj: m('oProj') },
    postAttentionLayernorm: n('postAttentionLayernorm'),
    mlp: { gateUpProj: m('gateUpProj'), downProj: m('downProj') },
  };
}

/** Every tensor the checkpoint must hold, with its shape, in the checkpoint's order. */
export function expectedTensors(cfg: Phi3Config): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set(MODEL_PARAMETERS.embedTokens.tensor, MODEL_PARAMETERS.embedTokens.shape(cfg));
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const [p, { shape }] of Object.entries(LAYER_PARAMETERS)) m.set(layerTensor(i, p as LayerParameter), shape(cfg));
  }
  m.set(MODEL_PARAMETERS.norm.tensor, MODEL_PARAMETERS.norm.shape(cfg));
  if (!cfg.tieWordEmbeddings) m.set(MODEL_PARAMETERS.lmHead.tensor, MODEL_PARAMETERS.lmHead.shape(cfg));
  return m;
}

