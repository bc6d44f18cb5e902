// How far a forward pass is from exact: every tap of the tfjs model on the current backend, and
// of the ideal float32 (the float64 reference with float32 storage between operations: exact
// sums, one rounding per stored value), measured against the float64 reference as rel L2.
// `npm run fidelity` prints it; test/fidelity.test.ts holds the default backend to it.

import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint } from '../../../weights/index.js';
import type { Phi3Config } from '../../model/config.js';
import { relL2 } from '../metrics.js';
import type { ForwardInputs, Phi3Model } from '../../model/model.js';
import { referenceForward } from './forward.js';
import type { Rounding } from './rounding.js';

/**
 * Every tap of a reference run, kept as float64, or as float32 where only errors far above
 * float32's rounding are to be measured against it (the bf16 / f16 emulations of a long input).
 */
export type TapValues = Map<string, Float64Array | Float32Array>;

/** Runs the float64 reference on the checkpoint in `dir` with `rounding`, each tap handed to `onTap` as it is made (the array is reused: copy what you keep). */
export function runReference(dir: string, config: Phi3Config, inputs: ForwardInputs, rounding: Rounding,
  onTap: (name: string, data: Float64Array, shape: number[]) => void): void {
  const ckpt = Checkpoint.open(dir);
  try {
    referenceForward(ckpt, config, inputs, { rounding, onTap });
  } finally {
    ckpt.close();
  }
}

/** Runs the reference with `rounding` and keeps a copy of every tap (and, given `shapes`, each tap's shape in it). */
export function referenceTaps(dir: string, config: Phi3Config, inputs: ForwardInputs, rounding: Rounding = 'none', keep: 'f64' | 'f32' = 'f64',
  shapes?: Map<string, number[]>): TapValues {
  const taps: TapValues = new Map();
  runReference(dir, config, inputs, rounding, (name, data, shape) => {
    taps.set(name, keep === 'f64' ? data.slice() : Float32Array.from(data));
    shapes?.set(name, shape.slice());
  });
  return taps;
}

/** rel L2 of each tap of a reference run with `rounding` against `exact`, tap by tap as the run goes. */
export function referenceErrors(dir: string, config: Phi3Config, inputs: ForwardInputs, rounding: Rounding, exact: TapValues): Map<string, number> {
  const out = new Map<string, number>();
  runReference(dir, config, inputs, rounding, (name, data) => {
    const ref = exact.get(name);
    if (ref) out.set(name, relL2(data, ref));
  });
  return out;
}

/** rel L2 of each tap of the tfjs model (on the current backend) against `exact`, tap by tap as the pass goes. */
export function modelErrors(model: Phi3Model, inputs: ForwardInputs, exact: TapValues): Map<string, number> {
  const out = new Map<string, number>();
  const r = model.forward(inputs, {
    attentionChunk: Infinity, // so that attn_probs is emitted
    tap: (name, t) => {
      const ref = exact.get(name);
      if (ref) out.set(name, relL2(t.dataSync() as Float32Array, ref));
      return t;
    },
  });
  tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);
  return out;
}
