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
 * -> [batch, 1, rows, keys]: the bias of query rows [from, to) (all of them by default) over keys
 * [0, keys) (all of them by default), so that attention over a long prompt can build it one
 * block of queries at a time, over the keys that block needs (keysNeeded).
 */
export function attentionBias(m: MaskSpec, from = 0, to = m.queryLen, keys = m.keyLen): tf.Tensor4D {
  const { batch, queryLen, keyLen, slidingWindow, attentionMask } = m;
  const offset = keyLen - queryLen;
  const rows = to - from;
  const bias = new Float32Array(batch * rows * keys);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < rows; i++) {
      const q = offset + from + i;
      for (let k = 0; k < keys; k++) {
        const allowed = k <= q
          && (slidingWindow === null || q - k < slidingWindow)
          && (attentionMask === null || attentionMask[b * keyLen + k] !== 0);
        if (!allowed) bias[(b * rows + i) * keys + k] = MASKED;
      }
    }
  }
  return tf.tensor4d(bias, [batch, 1, rows, keys]);
}

/**
 * How many keys, from key 0, a block of query rows [from, to) needs: every key past the count is
 * masked for every row of the block (causally, no query sees a key after its own position), so
 * in the whole row's softmax those keys get exp(MASKED - max) = exactly 0 and add nothing to
 * probs v. That holds only where the row's max is a real score, so a block with a row that sees
 * no key at all (padding) keeps every key: such a row spreads its probability over all of them,
 * as transformers' does. The count is a multiple of `align` (or keyLen) so that each kept key
 * keeps its lane in the sums of layers/exact.ts (even and odd k apart; k mod 4 on cpu): the
 * block's numbers are then bit-identical to the whole matrix's. About half the causal products
 * of a long prompt are skipped this way.
 */
export function keysNeeded(m: MaskSpec, from: number, to: number, align = 16): number {
  const { batch, queryLen, keyLen, slidingWindow, attentionMask } = m;
  const offset = keyLen - queryLen;
  const n = Math.min(keyLen, Math.ceil((offset + to) / align) * align);
  if (n === keyLen || attentionMask === null) return n; // unpadded, every query sees at least itself
  for (let b = 0; b < batch; b++) {
    for (let q = offset + from; q < offset + to; q++) {
      const lo = slidingWindow === null ? 0 : Math.max(0, q - slidingWindow + 1);
      let sees = false;
      for (let k = q; k >= lo && !sees; k--) sees = attentionMask[b * keyLen + k] !== 0;
      if (!sees) return keyLen;
    }
  }
  return n;
}
