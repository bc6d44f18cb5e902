// A tap is a named point in the forward pass. Every block hands each intermediate to `tap`
// under its documented name (see layers/taps.ts) and carries on with what `tap` returns: the same
// tensor to observe, another one to replace it (activation patching).

import type * as tf from '@tensorflow/tfjs-core';

export type Tap = <T extends tf.Tensor>(name: string, t: T) => T;

/** Observes nothing and replaces nothing. */
export const noTap: Tap = (_name, t) => t;

/** Prefixes every name, so that a decoder layer's "qkv" becomes "layers.3.qkv". */
export function prefixTap(tap: Tap, prefix: string): Tap {
  return (name, t) => tap(prefix + name, t);
}
