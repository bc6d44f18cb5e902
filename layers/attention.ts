// Grouped-query self-attention with the fused qkv projection of the Phi-3 checkpoints.
//
//   [q | k | v] = x W_qkv^T          nh*d query columns, then nkv*d key, then nkv*d value
//   q, k        = rope(q), rope(k)
//   probs       = softmax(q k^T / sqrt(d) + mask)      query head h reads key/value head h / g,
//   out         = (probs v) W_o^T                     g = nh / nkv queries per group
//
// Instead of repeating each key/value head g times, the g query heads of a group are stacked
// along the sequence axis and multiplied by their one shared key head: the same numbers, no copy.
// The products and the softmax sum exactly (./exact.ts).

import * as tf from '@tensorflow/tfjs-core';
import { rowDots, softmax } from './exact.js';
import { type LinearWeight, linear } from './linear.js';
import { type MaskSpec, attentionBias, keysNeeded } from './mask.js';
import { applyRotary } from './rotary.js';
import { type LayerTap, noTap } from './tap.js';

export interface AttentionConfig {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

export interface AttentionWeights {
  qkvProj: LinearWeight; // self_attn.qkv_proj.weight [(nh + 2 nkv) d, H]
  oProj: LinearWeight; // self_attn.o_proj.weight [H, nh d]
}

/** Keys (after rotary) and values of earlier positions, before any group repetition. */
export type KvCache = {
  k: tf.Tensor4D; // [batch, nkv, past, d]
  v: tf.Tensor4D; // [batch, nkv, past, d]
};

export interface AttentionInputs {
  cos: tf.Tensor3D; // [batch, seq, rotaryDim]
  sin: tf.Tensor3D; // [batch, seq, rotaryDim]
  mask: MaskSpec; // which keys each query may see (layers/mask.ts)
  past?: KvCache;
  /**
   * Queries per chunk (default: all at once). The scores of a chunk are [batch, nh, chunk, past +
   * seq], so chunking bounds their memory on long prompts; a chunked pass does not emit attn_probs.
   */
  queryChunk?: number;
  /**
   * Emit attn_probs for query rows [start, end) only, as [batch, nh, end - start, s], even when
   * the queries run in chunks (then the tap observes them: a replacement is not used).
   */
  probsRows?: [number, number];
}

/** probs [b, nh, tc, n] -> its rows [from, to) (clipped to the chunk), zero-padded to s keys: [b, nh, rows, s] */
function keptRows(probs: tf.Tensor4D, from: number, to: number, s: number): tf.Tensor4D {
  const [b, nh, tc, n] = probs.shape;
  const a = Math.max(0, from);
  const z = Math.min(tc, to);
  const part = tf.slice(probs, [0, 0, a, 0], [b, nh, z - a, n]); // [b, nh, z - a, n]
  return n === s ? part : tf.pad(part, [[0, 0], [0, 0], [0, 0], [0, s - n]]); // skipped keys: probability 0
}

/** [batch, seq, heads * d] -> [batch, heads, seq, d] */
function splitHeads(x: tf.Tensor3D, heads: number, d: number): tf.Tensor4D {
  const [b, t] = x.shape;
  return tf.transpose(tf.reshape(x, [b, t, heads, d]), [0, 2, 1, 3]);
}

/**
 * x: [batch, seq, hidden] -> out [batch, seq, hidden], and the cache extended by this step.
 * Taps: qkv, q_rot, k_rot, attn_probs, attn_out, o_proj.
 */
export function attention(
  x: tf.Tensor3D, w: AttentionWeights, cfg: AttentionConfig, inp: AttentionInputs, tap: LayerTap = noTap,
): { out: tf.Tensor3D; cache: KvCache } {
  return tf.tidy(() => {
    const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
    const g = nh / nkv;
    const [b, t] = x.shape;

    const qkv = tap('qkv', linear(x, w.qkvProj)); // [b, t, (nh + 2 nkv) d]
    const [qFlat, kFlat, vFlat] = tf.split(qkv, [nh * d, nkv * d, nkv * d], 2) as tf.Tensor3D[];
    const q = tap('q_rot', applyRotary(splitHeads(qFlat, nh, d), inp.cos, inp.sin)); // [b, nh, t, d]
    const kNew = tap('k_rot', applyRotary(splitHeads(kFlat, nkv, d), inp.cos, inp.sin)); // [b, nkv, t, d]
    const vNew = splitHeads(vFlat, nkv, d); // [b, nkv, t, d]
    const k = inp.past ? tf.concat([inp.past.k, kNew], 2) : kNew; // [b, nkv, s, d], s = past + t
    const v = inp.past ? tf.concat([inp.past.v, vNew], 2) : vNew;
    const s = k.shape[2];

    const kRows = tf.reshape(k, [b * nkv, s, d]) as tf.Tensor3D; // one row per key
    const vT = tf.reshape(tf.transpose(v, [0, 1, 3, 2]), [b * nkv, d, s]) as tf.Tensor3D; // one row per head dim: probs v as row dot products

    // Queries in chunks of `c` rows (one chunk unless the caller bounds the scores' memory). A
    // chunk reads only the keys its queries may see (keysNeeded: none past its last query): the
    // keys it skips would get probability exactly 0, so every number is the whole matrix's.
    const c = Math.min(t, inp.queryChunk ?? t);
    const rows = inp.probsRows; // attn_probs wanted for these query rows only
    const parts: tf.Tensor4D[] = [];
    const probsParts: tf.Tensor4D[] = []; // [b, nh, rows in chunk, s], kept past the chunk
    for (let r0 = 0; r0 < t; r0 += c) {
      const tc = Math.min(c, t - r0);
      parts.push(tf.tidy(() => { // each chunk's scores are freed before the next chunk's
        const n = keysNeeded(inp.mask, r0, r0 + tc); // keys [0, n); n = s for a single chunk
        const qc = tc === t ? q : tf.slice(q, [0, 0, r0, 0], [b, nh, tc, d]); // [b, nh, tc, d]
        const qGrouped = tf.reshape(qc, [b * nkv, g * tc, d]) as tf.Tensor3D; // heads h = kv * g + r share key head kv
        const kc = n === s ? kRows : tf.slice(kRows, [0, 0, 0], [b * nkv, n, d]); // [b nkv, n, d]
        const vc = n === s ? vT : tf.slice(vT, [0, 0, 0], [b * nkv, d, n]); // [b nkv, d, n]
        const scores = rowDots(qGrouped, kc, 1 / Math.sqrt(d)); // q k^T / sqrt(d): [b nkv, g tc, n]
        const bias = attentionBias(inp.mask, r0, r0 + tc, n); // [b, 1, tc, n], 0 or MASKED
        const masked = tf.add(tf.reshape(scores, [b, nh, tc, n]), bias) as tf.Tensor4D; // [b, nh, tc, n]
        let probs = softmax(masked); // [b, nh, tc, n]
        if (tc === t && !rows) probs = tap('attn_probs', probs);
        else if (rows && r0 < rows[1] && rows[0] < r0 + tc) probsParts.push(tf.keep(keptRows(probs, rows[0] - r0, rows[1] - r0, s)));
        const ctx = rowDots(tf.reshape(probs, [b * nkv, g * tc, n]) as tf.Tensor3D, vc); // probs v: [b nkv, g tc, d]
        return tf.reshape(ctx, [b, nh, tc, d]) as tf.Tensor4D;
      }));
    }
    if (probsParts.length > 0) { // observed only: the chunks have already used their probabilities
      try {
        tap('attn_probs', probsParts.length === 1 ? probsParts[0] : tf.concat(probsParts, 2)); // [b, nh, rows, s]
      } finally {
        tf.dispose(probsParts);
      }
    }
    const ctxAll = parts.length === 1 ? parts[0] : tf.concat(parts, 2); // [b, nh, t, d]
    const heads = tf.transpose(ctxAll, [0, 2, 1, 3]); // [b, t, nh, d]
    const attnOut = tap('attn_out', tf.reshape(heads, [b, t, nh * d]) as tf.Tensor3D); // [b, t, nh d]
    const out = tap('o_proj', linear(attnOut, w.oProj)); // [b, t, hidden]
    return { out, cache: { k, v } };
  });
}
