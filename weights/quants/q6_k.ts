// Q6_K (ggml-common.h block_q6_K): 256 weights of 6 bits in 16 groups of 16, each with an int8 scale.

import { f16BitsToFloat32 } from '../bits.js';

const fr = Math.fround;

/**
 * Q6_K, 210 bytes per 256 weights, as two halves of 128:
 *   ql      uint8[128] low 4 bits: half h uses ql[64h .. 64h + 64); weight 32k + l of the half takes
 *                      the low nibble of ql[l + 32 (k & 1)] for k < 2, the high nibble for k >= 2
 *   qh      uint8[64]  high 2 bits: half h uses qh[32h .. 32h + 32); weight 32k + l takes bits 2k, 2k+1 of qh[l]
 *   scales  int8[16]   one per 16 weights
 *   d       f16        super-block scale
 *   x = (d * scales[i / 16]) * (q - 32), the product d * scale in float32 first
 */
export function dequantQ6K(src: Uint8Array, n: number, out: Float32Array, at: number): void {
  for (let b = 0; b < n / 256; b++) {
    const o = b * 210;
    const d = f16BitsToFloat32(src[o + 208] | (src[o + 209] << 8));
    for (let i = 0; i < 256; i++) {
      const h = i >> 7; // half
      const k = (i >> 5) & 3; // group of 32 within the half
      const l = i & 31;
      const lo = (src[o + 64 * h + l + 32 * (k & 1)] >> (k >= 2 ? 4 : 0)) & 15;
      const hi = (src[o + 128 + 32 * h + l] >> (2 * k)) & 3;
      const sc = (src[o + 192 + (i >> 4)] << 24) >> 24;
      out[at + b * 256 + i] = fr(fr(d * sc) * ((lo | (hi << 4)) - 32));
    }
  }
}
