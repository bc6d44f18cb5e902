// Taps copied to the host: one forward pass with the named taps kept (all of them when no names
// are given), each read back as a float32 array with its shape, every tensor disposed before the
// function returns. The one tap-capture function of the golden comparison (src/oracle/golden.ts),
// the walkthrough and its figures (src/teach/).

import * as tf from '@tensorflow/tfjs-core';
import type { ForwardInputs, ForwardOptions, Phi3Model } from '../model/model.js';
import type { TapName } from '../../layers/taps.js';

export type HostTaps = Map<string, { data: Float32Array; shape: number[] }>;

/** The taps `names` (default: every tap) of one pass over `inputs`, as host float32 copies. */
export function captureTaps(model: Phi3Model, inputs: ForwardInputs, names?: readonly TapName[], opts: ForwardOptions = {}): HostTaps {
  const { logits, taps } = model.runWithCache(inputs, names ? { ...opts, names } : opts);
  try {
    const out: HostTaps = new Map();
    for (const [name, t] of taps) out.set(name, { data: t.dataSync() as Float32Array, shape: t.shape });
    return out;
  } finally {
    tf.dispose([logits, ...taps.values()]);
  }
}
