// ggml's tensor types that GGUF checkpoints of Phi-3 use, and their block decoders. Each decoder
// turns whole blocks of bytes into float32 exactly as ggml does (gguf-py's `quants` module is the
// test's independent reference, golden/gguf/): the same float32 products in the same order, each
// rounded to float32 (Math.fround), so the values are bit-identical.

import { bf16BitsToFloat32, f16BitsToFloat32 } from '../bits.js';
import { dequantQ4K, dequantQ5K } from './k4.js';
import { dequantQ6K } from './q6_k.js';
import { dequantQ4_0, dequantQ8_0 } from './q8.js';

/** A block decoder: `n` elements from `src` (whole blocks) into `out[at .. at + n)`. */
export type Decoder = (src: Uint8Array, n: number, out: Float32Array, at: number) => void;

export interface GgmlType {
  name: string;
  /** Elements per block (1 for plain floats). */
  blockElems: number;
  /** Bytes per block. */
  blockBytes: number;
  decode: Decoder;
}

const view = (src: Uint8Array) => new DataView(src.buffer, src.byteOffset, src.byteLength);

/** F32: little-endian float32 words. */
const f32: Decoder = (src, n, out, at) => {
  const v = view(src);
  for (let i = 0; i < n; i++) out[at + i] = v.getFloat32(4 * i, true);
};
/** F16: IEEE half words. */
const f16: Decoder = (src, n, out, at) => {
  const v = view(src);
  for (let i = 0; i < n; i++) out[at + i] = f16BitsToFloat32(v.getUint16(2 * i, true));
};
/** BF16: the top 16 bits of a float32. */
const bf16: Decoder = (src, n, out, at) => {
  const v = view(src);
  for (let i = 0; i < n; i++) out[at + i] = bf16BitsToFloat32(v.getUint16(2 * i, true));
};

/** The supported types by ggml's type id (ggml.h `enum ggml_type`). */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map([
  [0, { name: 'F32', blockElems: 1, blockBytes: 4, decode: f32 }],
  [1, { name: 'F16', blockElems: 1, blockBytes: 2, decode: f16 }],
  [2, { name: 'Q4_0', blockElems: 32, blockBytes: 18, decode: dequantQ4_0 }],
  [8, { name: 'Q8_0', blockElems: 32, blockBytes: 34, decode: dequantQ8_0 }],
  [12, { name: 'Q4_K', blockElems: 256, blockBytes: 144, decode: dequantQ4K }],
  [13, { name: 'Q5_K', blockElems: 256, blockBytes: 176, decode: dequantQ5K }],
  [14, { name: 'Q6_K', blockElems: 256, blockBytes: 210, decode: dequantQ6K }],
  [30, { name: 'BF16', blockElems: 1, blockBytes: 2, decode: bf16 }],
]);

/** Names of the ggml types this reader does not decode, for the error message. */
export const UNSUPPORTED_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [3, 'Q4_1'], [6, 'Q5_0'], [7, 'Q5_1'], [9, 'Q8_1'], [10, 'Q2_K'], [11, 'Q3_K'], [15, 'Q8_K'],
  [16, 'IQ2_XXS'], [17, 'IQ2_XS'], [18, 'IQ3_XXS'], [19, 'IQ1_S'], [20, 'IQ4_NL'], [21, 'IQ3_S'],
  [22, 'IQ2_S'], [23, 'IQ4_XS'], [24, 'I8'], [25, 'I16'], [26, 'I32'], [27, 'I64'], [28, 'F64'],
  [29, 'IQ1_M'], [34, 'TQ1_0'], [35, 'TQ2_0'], [39, 'MXFP4'],
]);
