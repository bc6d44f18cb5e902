// Q4_K and Q5_K (ggml-common.h block_q4_K, block_q5_K): 256 weights in 8 sub-blocks of 32, each
// with a 6-bit scale and a 6-bit min; x = (d * scale) * q - (dmin * min), each product in float32.

import { f16BitsToFloat32 } from '../bits.js';

const fr = Math.fround;

/**
 * The 8 (scale, min) pairs packed in 12 bytes (ggml's get_scale_min_k4):
 *   bytes 0-3   scale j (j < 4) in the low 6 bits; the top 2 bits of scale j + 4
 *   bytes 4-7   min j (j < 4) in the low 6 bits;   the top 2 bits of min j + 4
 *   bytes 8-11  low 4 bits: scale j + 4's low 4 bits; high 4 bits: min j + 4's low 4 bits
 */
function scaleMin(src: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [src[o + j] & 63, src[o + j + 4] & 63];
  return [(src[o + j + 4] & 15) | ((src[o + j - 4] >> 6) << 4), (src[o + j + 4] >> 4) | ((src[o + j] >> 6) << 4)];
}

/**
 * Q4_K, 144 bytes per 256 weights:
 *   d       f16        super-block scale of the scales
 *   dmin    f16        super-block scale of the mins
 *   scales  uint8[12]  8 packed 6-bit (scale, min) pairs, see scaleMin
 *   qs      uint8[128] 4-bit q: 32-byte group g holds sub-block 2g in its low nibbles, 2g + 1 in its high
 */
export function dequantQ4K(src: Uint8Array, n: number, out: Float32Array, at: number): void {
  for (let b = 0; b < n / 256; b++) {
    const o = b * 144;
    const d = f16BitsToFloat32(src[o] | (src[o + 1] << 8));
    const dmin = f16BitsToFloat32(src[o + 2] | (src[o + 3] << 8));
    for (let s = 0; s < 8; s++) {
      const [sc, m] = scaleMin(src, o + 4, s);
      const d1 = fr(d * sc);
      const m1 = fr(dmin * m);
      const qs = o + 16 + (s >> 1) * 32;
      const shift = (s & 1) * 4;
      const y = at + b * 256 + s * 32;
      for (let l = 0; l < 32; l++) out[y + l] = fr(fr(d1 * ((src[qs + l] >> shift) & 15)) - m1);
    }
  }
}

/**
 * Q5_K, 176 bytes per 256 weights: Q4_K's fields plus a fifth bit per weight.
 *   d, dmin, scales  as Q4_K
 *   qh      uint8[32]  bit s of qh[l] is the high bit of weight l of sub-block s
 *   qs      uint8[128] the low 4 bits, laid out as Q4_K's
 */
export function dequantQ5K(src: Uint8Array, n: number, out: Float32Array, at: number): void {
  for (let b = 0; b < n / 256; b++) {
    const o = b * 176;
    const d = f16BitsToFloat32(src[o] | (src[o + 1] << 8));
    const dmin = f16BitsToFloat32(src[o + 2] | (src[o + 3] << 8));
    const qh = o + 16;
    for (let s = 0; s < 8; s++) {
      const [sc, m] = scaleMin(src, o + 4, s);
      const d1 = fr(d * sc);
      const m1 = fr(dmin * m);
      const qs = o + 48 + (s >> 1) * 32;
      const shift = (s & 1) * 4;
      const y = at + b * 256 + s * 32;
      for (let l = 0; l < 32; l++) {
        const q = ((src[qs + l] >> shift) & 15) | (((src[qh + l] >> s) & 1) << 4);
        out[y + l] = fr(fr(d1 * q) - m1);
      }
    }
  }
}
