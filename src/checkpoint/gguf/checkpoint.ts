// A GGUF of arch "phi3" seen as a Phi3ForCausalLM checkpoint: llama.cpp's tensor names mapped to
// transformers' (token_embd -> model.embed_tokens, blk.N.attn_qkv -> model.layers.N.self_attn.
// qkv_proj, ...), every tensor dequantized to float32 exactly as ggml does (weights/quants/).
// Shapes are numpy's ([out, in] for a weight), as a safetensors checkpoint's.

import { GgufFile, type TensorInfo } from '../../../weights/index.js';

const LAYER: Record<string, string> = {
  attn_norm: 'input_layernorm',
  attn_qkv: 'self_attn.qkv_proj',
  attn_output: 'self_attn.o_proj',
  ffn_norm: 'post_attention_layernorm',
  ffn_up: 'mlp.gate_up_proj',
  ffn_down: 'mlp.down_proj',
};

/** The transformers name of a GGUF tensor, or null for tensors that are not weights (rope factors). */
export function hfName(name: string): string | null {
  if (name === 'token_embd.weight') return 'model.embed_tokens.weight';
  if (name === 'output_norm.weight') return 'model.norm.weight';
  if (name === 'output.weight') return 'lm_head.weight';
  const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(name);
  if (m && LAYER[m[2]]) return `model.layers.${m[1]}.${LAYER[m[2]]}.weight`;
  if (/^rope_factors_(long|short)\.weight$/.test(name)) return null;
  return name; // unknown: checkTensors refuses it by this name
}

export const isGgufPath = (p: string) => p.toLowerCase().endsWith('.gguf');

/** The subset of weights' Checkpoint that loading float32 weights uses, over a GGUF file. */
export class GgufCheckpoint {
  readonly dir: string;
  private readonly g: GgufFile;
  private readonly byHf = new Map<string, string>();

  constructor(path: string) {
    this.dir = path;
    this.g = GgufFile.open(path);
    for (const t of this.g.tensors()) {
      const hf = hfName(t.name);
      if (hf !== null) this.byHf.set(hf, t.name);
    }
  }

  names(): string[] {
    return [...this.byHf.keys()];
  }

  has(name: string): boolean {
    return this.byHf.has(name);
  }

  /** As a float32 tensor (what readBytes returns), its storage type in `storedAs`. */
  info(name: string): TensorInfo & { storedAs: string } {
    const t = this.g.info(this.byHf.get(name) ?? name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    return { name, dtype: 'F32', shape: t.shape.slice(), file: `${this.dir} (${t.name}, ${t.type.name})`, begin: t.offset, end: t.offset + t.byteLength, byteLength: 4 * n, storedAs: t.type.name };
  }

  /** Little-endian float32 bytes of the dequantized tensor. */
  readBytes(name: string): Uint8Array {
    const x = this.g.readFloat32(this.byHf.get(name) ?? name);
    return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  }

  close(): void {
    this.g.close();
  }
}
