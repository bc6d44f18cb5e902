// A GGUF of arch "phi3" (as llama.cpp's convert_hf_to_gguf.py writes it) as a Phi3Config: its
// metadata become the config.json fields they came from, and parseConfig validates them as it
// validates a config.json, naming the file.

import { GgufFile, type GgufValue } from '../../../weights/index.js';
import { ConfigError } from '../../errors.js';

const num = (v: GgufValue | undefined): number | undefined => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined);

/**
 * The shortest decimal that rounds to the same float32: GGUF stores eps, theta and the rope
 * factors as float32, config.json as decimals (1e-5, 1.6); this recovers the decimal, so the
 * config (and its hash) equals the safetensors checkpoint's when it was converted from one.
 */
export function f32Decimal(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const d = Number(x.toPrecision(p));
    if (Math.fround(d) === Math.fround(x)) return d;
  }
  return x;
}
const f32 = (v: number | undefined) => (v === undefined ? undefined : f32Decimal(v));

/** The config.json object the GGUF's metadata stand for (before validation). */
export function ggufConfigJson(g: GgufFile): Record<string, unknown> {
  const m = g.metadata;
  const src = `${g.path} (GGUF metadata)`;
  const arch = m.get('general.architecture');
  if (arch !== 'phi3') throw new ConfigError(`${src}: general.architecture is ${JSON.stringify(arch ?? null)}; only "phi3" (Phi3ForCausalLM) is supported`);
  const k = (key: string) => num(m.get(`phi3.${key}`));
  const H = k('embedding_length');
  const nh = k('attention.head_count');
  const headDim = H !== undefined && nh ? H / nh : undefined;
  const rot = k('rope.dimension_count');
  // the vocabulary: a token list when there is a tokenizer, else phi3.vocab_size, else the embedding rows
  const tokens = m.get('tokenizer.ggml.tokens');
  const vocab = Array.isArray(tokens) ? tokens.length : k('vocab_size') ?? (g.has('token_embd.weight') ? g.info('token_embd.weight').shape[0] : undefined);
  const maxPos = k('context_length');
  const orig = k('rope.scaling.original_context_length');
  const cfg: Record<string, unknown> = {
    model_type: 'phi3',
    architectures: ['Phi3ForCausalLM'],
    hidden_size: H,
    intermediate_size: k('feed_forward_length'),
    num_hidden_layers: k('block_count'),
    num_attention_heads: nh,
    num_key_value_heads: k('attention.head_count_kv'),
    vocab_size: vocab,
    max_position_embeddings: maxPos,
    rms_norm_eps: f32(k('attention.layer_norm_rms_epsilon')),
    rope_theta: f32(k('rope.freq_base')) ?? 10000,
    partial_rotary_factor: rot !== undefined && headDim ? rot / headDim : 1,
    sliding_window: k('attention.sliding_window') || null,
    tie_word_embeddings: !g.has('output.weight'),
    bos_token_id: num(m.get('tokenizer.ggml.bos_token_id')),
    eos_token_id: num(m.get('tokenizer.ggml.eos_token_id')),
    pad_token_id: num(m.get('tokenizer.ggml.padding_token_id')),
  };
  if (g.has('rope_factors_long.weight') || g.has('rope_factors_short.weight')) {
    const factors = (name: string) => (g.has(name) ? [...g.readFloat32(name)].map(f32Decimal) : undefined);
    cfg.original_max_position_embeddings = orig;
    cfg.rope_scaling = { type: 'longrope', long_factor: factors('rope_factors_long.weight'), short_factor: factors('rope_factors_short.weight') };
    // phi3.rope.scaling.attn_factor is float32: keep transformers' derivation (float64) when it is
    // that value rounded, so the rotary tables match a safetensors checkpoint's bit for bit
    const stored = num(m.get('phi3.rope.scaling.attn_factor'));
    if (stored !== undefined && maxPos !== undefined && orig !== undefined) {
      const f = maxPos / orig;
      const derived = f <= 1 ? 1 : Math.sqrt(1 + Math.log(f) / Math.log(orig));
      if (Math.fround(derived) !== Math.fround(stored)) (cfg.rope_scaling as Record<string, unknown>).attention_factor = stored;
    }
  }
  return cfg;
}

/** The config.json fields of the GGUF at `path` (src/model/config.ts's loadConfig validates them). */
export function readGgufConfigJson(path: string): Record<string, unknown> {
  const g = GgufFile.open(path);
  try {
    return ggufConfigJson(g);
  } finally {
    g.close();
  }
}
