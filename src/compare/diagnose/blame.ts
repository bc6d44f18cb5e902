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
  /** For an RMSNorm step: the eps the candidate's output implies (normEps), when its input is in the dump. */
  eps?: number;
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


/** The tap an RMSNorm step reads: input_norm the residual stream before the layer, post_attn_norm the residual after attention. */
function normInput(name: string, layers: number): string | null {
  if (name === 'final_norm') return `layers.${layers - 1}.out`;
  const m = /^layers\.(\d+)\.(input_norm|post_attn_norm)$/.exec(name);
  if (!m) return null;
  if (m[2] === 'post_attn_norm') return `layers.${m[1]}.post_attn_residual`;
  return m[1] === '0' ? 'embed' : `layers.${Number(m[1]) - 1}.out`;
}

/**
 * The eps an RMSNorm output implies. y = x / sqrt(ms + eps) * w per row (ms the mean of x^2), so
 * the candidate's row over ours on the same input is sqrt((ms + ours) / (ms + eps)), whatever the
 * weight: eps = (ms + ours) / q^2 - ms with q the least-squares ratio. The median over rows; null
 * when the rows are not one scale of ours (another bug than eps).
 */
export function normEps(x: Numeric, cand: Numeric, ours: Numeric, H: number, oursEps: number): number | null {
  const est: number[] = [];
  for (let r = 0; r < x.length / H; r++) {
    let ms = 0;
    let co = 0;
    let oo = 0;
    for (let i = 0; i < H; i++) {
      ms += x[r * H + i] ** 2;
      co += cand[r * H + i] * ours[r * H + i];
      oo += ours[r * H + i] ** 2;
    }
    ms /= H;
    if (!(oo > 0)) continue;
    const q = co / oo;
    let res = 0;
    for (let i = 0; i < H; i++) res += (cand[r * H + i] - q * ours[r * H + i]) ** 2;
    if (res > 1e-8 * oo) return null; // not a per-row scale
    est.push((ms + oursEps) / (q * q) - ms);
  }
  if (!est.length) return null;
  est.sort((a, b) => a - b);
  return est[Math.floor(est.length / 2)];
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
    const input = normInput(name, model.config.numLayers);
    const x = input ? cand.get(input) : undefined;
    if (x && !x.int && x.shape.join(',') === e.shape.join(',')) {
      const eps = normEps(x.read(), c, mine, e.shape[e.shape.length - 1], model.config.rmsNormEps);
      if (eps !== null) t.eps = eps;
    }
    taps.push(t);
  }
  const first = taps.find((t) => !(t.local <= threshold));
  let text: string;
  if (!first) {
    text = `per-step blame: every step re-run on the candidate's own input agrees to ${fmt(threshold)} (local errors at most ${fmt(Math.max(0, ...taps.map((t) => t.local)))}); the error is accumulated, not made by one step`;
  } else {
    const bad = first.heads ? first.heads.flatMap((h, i) => (h > threshold ? [i] : [])) : [];
    const heads = first.heads && bad.length < first.heads.length ? `, in head${bad.length > 1 ? 's' : ''} ${bad.join(', ')} of ${first.heads.length}` : '';
    const cfgEps = model.config.rmsNormEps;
    const eps = first.eps !== undefined && Math.abs(first.eps / cfgEps - 1) > 0.05 ? `; its output is this norm with eps ≈ ${fmt(first.eps)}, the config says ${fmt(cfgEps)}` : '';
    text = `per-step blame: ${first.name} is the first step whose own error jumps: re-run on the candidate's input to it, it differs by ${fmt(first.local)} (local${heads}; accumulated ${fmt(first.accumulated)})${eps}`;
  }
  return { taps, blamed: first?.name ?? null, text, threshold };
}
