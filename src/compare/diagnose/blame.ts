// Per-block blame: our model re-run with every tap forced to the candidate's value, so each step
// (norm, projection, rotary, attention, MLP, head) computes from the candidate's own input to it.
// Its *local* error (our step on the candidate's input vs the candidate's output) separates the
// step that goes wrong from the error it inherits (the *accumulated* error, against the reference).

import * as tf from '@tensorflow/tfjs-core';
import type { Entries } from '../entries.js';
import { fmt } from '../format.js';
import { type Numeric, relL2, relL2Along } from '../../oracle/metrics.js';
import type { ForwardInputs, Phi3Model } from '../../model/model.js';
import { tapNames } from '../../../layers/taps.js';

export interface BlameTap {
  name: string;
  /** rel L2 of the candidate against the reference (what compare reports). */
  accumulated: number;
  /** rel L2 of the candidate against our step run on the candidate's input to it. */
  local: number;
  /** local rel L2 per head, for q_rot, k_rot and attn_probs. */
  heads?: number[];
}

export interface BlameReport {
  taps: BlameTap[];
  /** The first tap whose local error exceeds `threshold`, or null. */
  blamed: string | null;
  text: string;
  /** The local error over which a step is blamed (blameThreshold in ../blame-run.ts). */
  threshold: number;
  /** The checkpoint the steps were re-run with (given, or the reference dump's recorded one). */
  checkpoint?: string;
}


/**
 * `accumulated`: each tap's rel L2 from the comparison. Taps the candidate lacks, or holds in
 * another shape, are not forced (our value flows on there).
 */
export function blame(model: Phi3Model, inputs: ForwardInputs, cand: Entries, accumulated: Map<string, number>, threshold: number): BlameReport {
  const ours = new Map<string, Float32Array>();
  const hooks: Record<string, (t: tf.Tensor) => tf.Tensor> = {};
  for (const name of tapNames(model.config.numLayers)) {
    const e = cand.get(name);
    if (!e || e.int) continue;
    hooks[name] = (t) => {
      if (t.shape.join(',') !== e.shape.join(',')) return t;
      ours.set(name, t.dataSync() as Float32Array);
      return tf.tensor(Float32Array.from(e.read() as Numeric), e.shape);
    };
  }
  const r = model.forward(inputs, { hooks });
  tf.dispose(r.logits);
  tf.dispose(r.cache.flatMap((c) => [c.k, c.v]));
  const taps: BlameTap[] = [];
  for (const name of tapNames(model.config.numLayers)) {
    const mine = ours.get(name);
    if (!mine) continue;
    const e = cand.get(name)!;
    const c = e.read();
    const t: BlameTap = { name, accumulated: accumulated.get(name) ?? NaN, local: relL2(c, mine) };
    if (/\.(q_rot|k_rot|attn_probs)$/.test(name) && e.shape.length === 4) t.heads = relL2Along(c, mine, e.shape, 1);
    taps.push(t);
  }
  const first = taps.find((t) => !(t.local <= threshold));
  let text: string;
  if (!first) {
    text = `per-step blame: every step re-run on the candidate's own input agrees to ${fmt(threshold)} (local errors at most ${fmt(Math.max(0, ...taps.map((t) => t.local)))}); the error is accumulated, not made by one step`;
  } else {
    const bad = first.heads ? first.heads.flatMap((h, i) => (h > threshold ? [i] : [])) : [];
    const heads = first.heads && bad.length < first.heads.length ? `, in head${bad.length > 1 ? 's' : ''} ${bad.join(', ')} of ${first.heads.length}` : '';
    text = `per-step blame: ${first.name} is the first step whose own error jumps: re-run on the candidate's input to it, it differs by ${fmt(first.local)} (local${heads}; accumulated ${fmt(first.accumulated)})`;
  }
  return { taps, blamed: first?.name ?? null, text, threshold };
}
