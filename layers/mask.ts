// The additive attention mask: 0 where query q may attend to key k, the lowest float32 where
// it may not (as transformers' eager attention adds finfo(float32).min).
//
//   allowed(q, k) = k <= q                      causal
//               and q - k < slidingWindow       sliding window (when the config has one)
//               and attentionMask[b, k] == 1    padding
//
// q and k are absolute indices in the sequence: queries are the last `queryLen` of `keyLen`
// positions (the first keyLen - queryLen are already in a KV cache).

import * as tf from '@tensorflow/tfjs-core';

export const MASKED = -3.4028234663852886e38;

export interface MaskSpec {
  batch: number;
  queryLen: number;
  keyLen: number;
  slidingWindow: number | null;
  /** [batch * keyLen], 1 = real token, 0 = padding; null = no padding. */
  attentionMask: Int32Array | null;
}

/**
 * -> [batch, 1, rows, keyLen]: the bias of query rows [from, to) (all of them by default), so
 * that attention over a long prompt can build it one chunk of queries at a time.
 */
export function attentionBias(m: MaskSpec, from = 0, to = m.queryLen): tf.Tensor4D {
  const { batch, queryLen, keyLen, slidingWindow, attentionMask } = m;
  const offset = keyLen - queryLen;
  const rows = to - from;
  const bias = new Float32Array(batch * rows * keyLen);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < rows; i++) {
      const q = offset + from + i;
      for (let k = 0; k < keyLen; k++) {
        const allowed = k <= q
          && (slidingWindow === null || q - k < slidingWindow)
          && (attentionMask === null || attentionMask[b * keyLen + k] !== 0);
        if (!allowed) bias[(b * rows + i) * keyLen + k] = MASKED;
      }
    }
  }
  return tf.tensor4d(bias, [batch, 1, rows, keyLen]);
}
