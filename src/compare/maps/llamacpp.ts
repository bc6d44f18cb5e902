// The built-in map for llama.cpp (`phi4 compare --map llama.cpp`, or detected from the names):
// ggml graph nodes of arch phi3, as tools/llamacpp/phi4-tapdump.cpp writes them, renamed to taps
// and reshaped to their layouts. The rules are computed from the dump itself (its input_ids give
// T; every other size is the node's own), so no config and no hand-editing is needed.
//
// ggml node (numpy order)                      tap                         layout change
// embd                [T, H]                   embed                       [1, T, H]
// attn_norm-N         [T, H]                   layers.N.input_norm         [1, T, H]
// wqkv-N              [T, (nh+2nkv)d]          layers.N.qkv                [1, T, W]
// Qcur-N.rope         [T, nh, d]               layers.N.q_rot              permute -> [1, nh, T, d]
// Kcur-N.rope         [T, nkv, d]              layers.N.k_rot              permute -> [1, nkv, T, d]
// kq_soft_max-N       [nh, T, n_kv]            layers.N.attn_probs         [1, nh, T, n_kv], keys sliced to [0, T):
//                                                                          n_kv spans the KV cache padded to 256 cells
// kqv_out-N           [T, nh d]                layers.N.attn_out           [1, T, nh d]
// blk.N.attn_output.weight>mul_mat             layers.N.o_proj             [1, T, H]
// blk.N.attn_output.weight>mul_mat(>get_rows)>add   layers.N.post_attn_residual (the last layer selects
//                                                                          its output rows first)
// ffn_norm-N, ffn_up-N, ffn_swiglu-N, ffn_out-N, l_out-N   post_attn_norm, gate_up, mlp_act, mlp_out, out
// result_norm, result_output                   final_norm, logits          [1, T, H], [1, T, V]
//
// ggml gives one name to several nodes: Qcur-N names the view of wqkv, the rotated query and the
// scaled query (Kcur-N the view and the rotated key). A capture tool must make them unique, and
// tools do it differently (ours: Qcur-0.rope, Qcur-0.scale; another: Qcur-0@ROPE; another keeps
// Qcur-0, Qcur-0_1, Qcur-0_2). The rotated one is told by the op that made it: from the dump's
// metadata when it records ops (`ops`: {"name": "ROPE", ...}, read into each entry's `op`), else
// from an op word after the name (".rope", "@ROPE", "(rope)"), else by graph order, which is the
// order of the tensors' data in the file: the second node of the name (view, rope, scale).
//
// llama.cpp has no rope.cos / rope.sin node. Every other node (the raw rms_norm before its weight,
// the scaled query, the KV cache views and permutes, the un-normalised kq) matches no tap and is
// summarised by compare as "only in candidate".

import type { Entries } from '../entries.js';
import type { MapRule, MapSpec } from '../map.js';

/** [ggml name pattern, tap]: the nodes that become [1, ...shape] under the tap's name. */
const ROW_TAPS: [RegExp, string][] = [
  [/^embd$/, 'embed'],
  [/^attn_norm-(\d+)$/, 'layers.$1.input_norm'],
  [/^wqkv-(\d+)$/, 'layers.$1.qkv'],
  [/^kqv_out-(\d+)$/, 'layers.$1.attn_out'],
  [/^blk\.(\d+)\.attn_output\.weight>mul_mat$/, 'layers.$1.o_proj'],
  [/^blk\.(\d+)\.attn_output\.weight>mul_mat(>get_rows)?>add$/, 'layers.$1.post_attn_residual'],
  [/^ffn_norm-(\d+)$/, 'layers.$1.post_attn_norm'],
  [/^ffn_up-(\d+)$/, 'layers.$1.gate_up'],
  [/^ffn_swiglu-(\d+)$/, 'layers.$1.mlp_act'],
  [/^ffn_out-(\d+)$/, 'layers.$1.mlp_out'],
  [/^l_out-(\d+)$/, 'layers.$1.out'],
  [/^result_norm$/, 'final_norm'],
  [/^result_output$/, 'logits'],
];

/** Names only llama.cpp's graph uses: enough of them mean the dump came from llama.cpp. */
const SIGNATURE = [/^l_out-\d+$/, /^kqv_out-\d+$/, /^attn_norm-\d+$/, /^result_output$/, /^ffn_swiglu-\d+$/];

/** True when the names look like llama.cpp's graph (at least three of its signature names). */
export function looksLikeLlamaCpp(names: Iterable<string>): boolean {
  const hit = new Set<number>();
  for (const n of names) SIGNATURE.forEach((re, i) => re.test(n) && hit.add(i));
  return hit.size >= 3;
}

/** The op a node name carries after its graph name: "Qcur-0.rope", "Qcur-0@ROPE", "Qcur-0 (rope)" -> "rope". */
function opInName(suffix: string): string | null {
  const m = /^\s*[.@:/|(]\s*([A-Za-z][A-Za-z_]*)\)?(?:#\d+)?$/.exec(suffix);
  return m ? m[1].toLowerCase() : null;
}

/**
 * The nodes that are the rotated query / key of each layer, among the names Qcur-N / Kcur-N share:
 * name -> (Q or K, layer). By op where the dump or the name says it, else the second in graph order.
 */
export function rotatedNodes(entries: Entries): Map<string, { which: 'Q' | 'K'; layer: string }> {
  const groups = new Map<string, { name: string; op: string | null }[]>();
  for (const [name, e] of entries) {
    const m = /^(Q|K)cur-(\d+)(?!\d)(.*)$/.exec(name);
    if (!m || e.int) continue;
    const key = `${m[1]}:${m[2]}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push({ name, op: e.op?.toLowerCase() ?? opInName(m[3]) });
  }
  const out = new Map<string, { which: 'Q' | 'K'; layer: string }>();
  for (const [key, nodes] of groups) {
    const [which, layer] = key.split(':') as ['Q' | 'K', string];
    const byOp = nodes.find((n) => n.op === 'rope');
    // graph order only where nothing names an op (a dump that records ops and has no rope has none)
    const pick = byOp ?? (nodes.every((n) => n.op === null) && nodes.length >= 2 ? nodes[1] : undefined);
    if (pick) out.set(pick.name, { which, layer });
  }
  return out;
}

/** The rules for one dump: a rule per node that corresponds to a tap, with its sizes filled in. */
export function llamaCppRules(entries: Entries): MapRule[] {
  const ids = entries.get('input_ids');
  const T = ids ? ids.shape[ids.shape.length - 1] : undefined;
  const rules: MapRule[] = [];
  const rotated = rotatedNodes(entries);
  for (const [name, e] of entries) {
    if (e.int) continue;
    const row = ROW_TAPS.find(([re]) => re.test(name));
    if (row) {
      // ggml drops trailing axes of size 1 (T = 1 gives [H]); the tap is [1, T, n]
      const n = e.shape[e.shape.length - 1];
      rules.push({ from: name, to: name.replace(row[0], row[1]), reshape: [1, -1, n] });
      continue;
    }
    const rot = rotated.get(name);
    if (rot) {
      const [nh, d] = e.shape.slice(-2);
      const to = `layers.${rot.layer}.${rot.which === 'Q' ? 'q_rot' : 'k_rot'}`;
      // [T, nh, d] -> [nh, T, d] -> [1, nh, T, d]; with T = 1 ggml already wrote [nh, d]
      rules.push(e.shape.length === 3 ? { from: name, to, permute: [1, 0, 2], reshape: [1, nh, -1, d] } : { from: name, to, reshape: [1, nh, 1, d] });
      continue;
    }
    const probs = /^kq_soft_max-(\d+)$/.exec(name);
    if (probs && T !== undefined) {
      // [nh, T, n_kv] (n_kv: cells of the KV cache, padded to 256) -> [1, nh, T, n_kv] -> keys [0, T)
      const s = e.shape.length === 3 ? e.shape : e.shape.length === 2 ? [1, ...e.shape] : null;
      if (!s) continue;
      rules.push({ from: name, to: `layers.${probs[1]}.attn_probs`, reshape: [1, ...s], slice: [null, null, null, [0, 'T']] });
    }
  }
  return rules;
}

/** The built-in map: rules computed from the candidate's own nodes. */
export const LLAMA_CPP_MAP: MapSpec = { applyTo: 'candidate', rules: [], expand: llamaCppRules };
