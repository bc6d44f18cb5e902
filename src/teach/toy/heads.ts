// What each attention head of the toy model does on a prompt of the task, <s> x1..xn x1..xn,
// measured as the mean attention probability on the keys that an induction circuit uses:
//
//   self       key q         (every query q >= 1)
//   previous   key q - 1     (every query q >= 1): a previous-token head
//   induction  key q - n + 1 (queries q = n+1 .. 2n of the second copy): the token that followed
//              the current token's earlier occurrence, the one to predict next
//   <s>        key 0         (the same second-copy queries)

import * as tf from '@tensorflow/tfjs-core';
import type { AttentionRun } from '../figures/attention.js';
import type { Hook, Hooks } from '../../model/hooks.js';

export interface HeadRole {
  layer: number;
  head: number;
  self: number;
  previous: number;
  induction: number;
  bos: number;
}

/** Per layer and head, the mean probabilities above; `n` is the length of one copy. */
export function headRoles(run: AttentionRun, n: number): HeadRole[] {
  const T = run.ids.length;
  if (T !== 2 * n + 1) throw new Error(`headRoles: a prompt of the task has 2n + 1 = ${2 * n + 1} tokens, not ${T}`);
  const out: HeadRole[] = [];
  run.probs.forEach((heads, layer) => heads.forEach((p, head) => {
    const at = (q: number, k: number) => p[q * T + k];
    const mean = (qs: number[], key: (q: number) => number) => qs.reduce((a, q) => a + at(q, key(q)), 0) / qs.length;
    const all = Array.from({ length: T - 1 }, (_, i) => i + 1);
    const second = Array.from({ length: n }, (_, i) => n + 1 + i);
    out.push({
      layer, head,
      self: mean(all, (q) => q), previous: mean(all, (q) => q - 1),
      induction: mean(second, (q) => q - n + 1), bos: mean(second, () => 0),
    });
  }));
  return out;
}

/** A markdown table of headRoles for two runs side by side (e.g. before and after the LongRoPE switch). */
export function headRolesTable(runs: { label: string; roles: HeadRole[] }[], group: number): string {
  const cols = ['self', 'previous', 'induction', 'bos'] as const;
  const names = { self: 'self', previous: 'previous', induction: 'induction', bos: '&lt;s&gt;' };
  const head = ['| layer.head (kv head) |', ...runs.flatMap((r) => cols.map((c) => ` ${names[c]} (${r.label}) |`))].join('');
  const rule = '|---|' + runs.flatMap(() => cols.map(() => '---|')).join('');
  const rows = runs[0].roles.map((x, i) => `| ${x.layer}.${x.head} (kv ${Math.floor(x.head / group)}) |` + runs.map((r) => cols.map((c) => ` ${r.roles[i][c].toFixed(2)} |`).join('')).join(''));
  return [head, rule, ...rows].join('\n');
}

/**
 * Hooks that switch heads off: at `layers.L.attn_out` [B, T, nh*d] (the heads concatenated, before
 * o_proj) the d columns of each head in `off` are multiplied by 0, so o_proj sees nothing from it.
 * The live page (src/teach/html/live.ts) uses them for its head switches.
 */
export function headsOffHooks(cfg: { numHeads: number; headDim: number }, off: { layer: number; head: number }[]): Hooks {
  const byLayer = new Map<number, number[]>();
  for (const o of off) byLayer.set(o.layer, [...(byLayer.get(o.layer) ?? []), o.head]);
  const hooks: Record<string, Hook> = {};
  for (const [layer, heads] of byLayer) {
    const keep = new Float32Array(cfg.numHeads * cfg.headDim).fill(1); // [nh*d]
    for (const h of heads) keep.fill(0, h * cfg.headDim, (h + 1) * cfg.headDim);
    hooks[`layers.${layer}.attn_out`] = (t) => tf.tidy(() => tf.mul(t, tf.tensor1d(keep)));
  }
  return hooks as Hooks;
}
