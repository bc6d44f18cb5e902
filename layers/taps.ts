// The tap table: every intermediate of the forward pass that can be captured or replaced, under
// a stable name and layout. The names are those of the golden dumps (golden/README.md), so a
// dump from transformers, from this project and from another runtime line up name by name.
//
// B batch, T query positions, S key positions (past + T), H hidden, nh / nkv query / key-value
// heads, d head dim, r rotary dims, I intermediate, V vocabulary.

export interface TapInfo {
  /** Layout of the tensor, axis by axis. */
  layout: string;
  /** What it is, in transformers' terms. */
  what: string;
}

export const MODEL_TAPS = {
  embed: { layout: 'B,T,H', what: 'embed_tokens(input_ids)' },
  'rope.cos': { layout: 'B,T,r', what: 'rotary cos table for these positions, attention scaling included' },
  'rope.sin': { layout: 'B,T,r', what: 'rotary sin table for these positions, attention scaling included' },
} as const satisfies Record<string, TapInfo>;

export const LAYER_TAPS = {
  input_norm: { layout: 'B,T,H', what: 'RMSNorm before attention (input_layernorm)' },
  qkv: { layout: 'B,T,(nh+2nkv)d', what: 'fused qkv_proj output: nh*d query, nkv*d key, nkv*d value columns' },
  q_rot: { layout: 'B,nh,T,d', what: 'queries after rotary' },
  k_rot: { layout: 'B,nkv,T,d', what: 'keys after rotary, before GQA sharing (new positions only)' },
  attn_probs: { layout: 'B,nh,T,S', what: 'softmax(q k^T / sqrt(d) + mask); a layer that runs its queries in blocks (long prompts) emits only the selected rows (probsRows)' },
  attn_out: { layout: 'B,T,nh*d', what: 'attention output, heads concatenated (o_proj input)' },
  o_proj: { layout: 'B,T,H', what: 'o_proj output' },
  post_attn_residual: { layout: 'B,T,H', what: 'residual + attention (post_attention_layernorm input)' },
  post_attn_norm: { layout: 'B,T,H', what: 'RMSNorm before the MLP (post_attention_layernorm)' },
  gate_up: { layout: 'B,T,2I', what: 'fused gate_up_proj output: I gate columns, then I up columns' },
  mlp_act: { layout: 'B,T,I', what: 'silu(gate) * up (down_proj input)' },
  mlp_out: { layout: 'B,T,H', what: 'down_proj output' },
  out: { layout: 'B,T,H', what: 'decoder layer output (residual stream)' },
} as const satisfies Record<string, TapInfo>;

export const HEAD_TAPS = {
  final_norm: { layout: 'B,T,H', what: 'final RMSNorm (model.norm)' },
  logits: { layout: 'B,T,V', what: 'lm_head output' },
} as const satisfies Record<string, TapInfo>;

/**
 * Tap names as types, built from the tables above: a misspelt name (`tap('qvk', ...)` in layers/,
 * `hooks: { 'layers.0.qvk': ... }` in a caller) does not compile. `${number}` admits any layer
 * number; whether the model has that layer is checked when the pass starts (src/model/hooks.ts),
 * as are names that arrive as plain strings (the command line, a file).
 */
export type ModelTapName = keyof typeof MODEL_TAPS;
/** A decoder layer's own name for a tap, before layers/tap.ts's prefixTap adds `layers.N.`. */
export type LayerTapName = keyof typeof LAYER_TAPS;
export type HeadTapName = keyof typeof HEAD_TAPS;
export type TapName = ModelTapName | `layers.${number}.${LayerTapName}` | HeadTapName;

const lookup = (table: Record<string, TapInfo>, key: string): TapInfo | undefined => (Object.hasOwn(table, key) ? table[key] : undefined);

/** Every tap name of a model with `numLayers` layers, in forward (computation) order. */
export function tapNames(numLayers: number): TapName[] {
  const names: TapName[] = Object.keys(MODEL_TAPS) as ModelTapName[];
  for (let i = 0; i < numLayers; i++) for (const t of Object.keys(LAYER_TAPS) as LayerTapName[]) names.push(`layers.${i}.${t}`);
  return names.concat(Object.keys(HEAD_TAPS) as HeadTapName[]);
}

/** Whether `name` has the shape of a tap name (any layer number); a string from outside becomes a TapName here. */
export function isTapName(name: string): name is TapName {
  return tapInfo(name) !== undefined;
}

/** The layout and description of a tap name, or undefined when it is not one. */
export function tapInfo(name: string): TapInfo | undefined {
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
  if (m) return lookup(LAYER_TAPS, m[2]);
  return lookup(MODEL_TAPS, name) ?? lookup(HEAD_TAPS, name);
}

/** The axis that indexes query positions (T) in a tap's layout. */
export function seqAxis(name: string): number {
  const info = tapInfo(name);
  if (!info) throw new Error(`unknown tap "${name}"`);
  return info.layout.split(',').indexOf('T');
}
