// A tap is a named point in the forward pass. Every block hands each intermediate to `tap`
// under its documented name (see layers/taps.ts) and carries on with what `tap` returns: the same
// tensor to observe, another one to replace it (activation patching).

import type * as tf from '@tensorflow/tfjs-core';
import type { LayerTapName, TapName } from './taps.js';

/** A tap over names `N`: the model's full names by default, a block's own names as LayerTap. */
export type Tap<N extends string = TapName> = <T extends tf.Tensor>(name: N, t: T) => T;
/** What a decoder layer's blocks call: `tap('qkv', ...)`; a name outside the table does not compile. */
export type LayerTap = Tap<LayerTapName>;

/** Observes nothing and replaces nothing (any names). */
export const noTap: Tap<string> = (_name, t) => t;

/** Prefixes every name, so that a decoder layer's "qkv" becomes "layers.3.qkv". */
export function prefixTap(tap: Tap, prefix: `layers.${number}.`): LayerTap {
  return (name, t) => tap(`${prefix}${name}`, t);
}
