// One pre-norm decoder layer:
//
//   h   = x + attention(rmsNorm(x))
//   out = h + mlp(rmsNorm(h))

import * as tf from '@tensorflow/tfjs-core';
import { type AttentionConfig, type AttentionInputs, type AttentionWeights, type KvCache, attention } from './attention.js';
import { type MlpWeights, mlp } from './mlp.js';
import { rmsNorm } from './rmsnorm.js';
import { type LayerTap, noTap } from './tap.js';

export interface DecoderWeights {
  inputLayernorm: tf.Tensor1D; // input_layernorm.weight [H]
  attn: AttentionWeights;
  postAttentionLayernorm: tf.Tensor1D; // post_attention_layernorm.weight [H]
  mlp: MlpWeights;
}

export interface DecoderConfig extends AttentionConfig {
  rmsNormEps: number;
}

/**
 * x: [batch, seq, hidden] -> [batch, seq, hidden], and this layer's KV cache.
 * Taps: input_norm, (attention's), post_attn_residual, post_attn_norm, (mlp's), out.
 */
export function decoderLayer(
  x: tf.Tensor3D, w: DecoderWeights, cfg: DecoderConfig, inp: AttentionInputs, tap: LayerTap = noTap,
): { out: tf.Tensor3D; cache: KvCache } {
  return tf.tidy(() => {
    const normed = tap('input_norm', rmsNorm(x, w.inputLayernorm, cfg.rmsNormEps));
    const { out: attnOut, cache } = attention(normed, w.attn, cfg, inp, tap);
    const residual = tap('post_attn_residual', tf.add(x, attnOut) as tf.Tensor3D);
    const normed2 = tap('post_attn_norm', rmsNorm(residual, w.postAttentionLayernorm, cfg.rmsNormEps));
    const out = tap('out', tf.add(residual, mlp(normed2, w.mlp, tap)) as tf.Tensor3D);
    return { out, cache };
  });
}
