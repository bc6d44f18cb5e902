// The 32-element blocks: Q8_0 and Q4_0 (ggml-common.h block_q8_0, block_q4_0).

import { f16BitsToFloat32 } from '../bits.js';

const fr = Math.fround;

/**
 * Q8_0, 34 bytes per 32 weights:
 *   d   f16      scale
 *   qs  int8[32] x[i] = qs[i] * d
 */
export function dequantQ8_0(src: Uint8Array, n: number, out: Float32Array, at: number): void {
  for (let b = 0; b < n / 32; b++) {
    const o = b * 34;
    const d = f16BitsToFloat32(src[o] | (src[o + 1] << 8));
    for (let i = 0; i < 32; i++) out[at + b * 32 + i] = fr(((src[o + 2 + i] << 24) >> 24) * d);
  }
}

/**
 * Q4_0, 18 bytes per 32 weights:
 *   d   f16       scale
 *   qs  uint8[16] x[i] = ((qs[i] & 15) - 8) * d, x[i + 16] = ((qs[i] >> 4) - 8) * d
 */
export function dequantQ4_0(src: Uint8Array, n: number, out: Float32Array, at: number): void {
  for (let b = 0; b < n / 32; b++) {
    const o = b * 18;
    const d = f16BitsToFloat32(src[o] | (src[o + 1] << 8));
    const y = at + b * 32;
    for (let i = 0; i < 16; i++) {
      const q = src[o + 2 + i];
      out[y + i] = fr(((q & 15) - 8) * d);
      out[y + i + 16] = fr(((q >> 4) - 8) * d);
    }
  }
}
