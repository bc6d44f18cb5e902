// Hooks in the manner of TransformerLens: `{ [tapName]: (t) => t | void }`, called during a
// forward pass with the tensor at that tap. Returning nothing observes; returning a tensor of the
// same shape replaces the tap downstream (activation patching). Tap names: layers/taps.ts.

import { didYouMean } from '../errors.js';
import type * as tf from '@tensorflow/tfjs-core';
import { type Tap, noTap } from '../../layers/tap.js';
import { type TapName, tapNames } from '../../layers/taps.js';
import { HookError } from '../errors.js';

/** Called with the tensor at one tap (owned by the forward pass: read it, do not dispose it). */
export type Hook = (t: tf.Tensor) => tf.Tensor | void;
/**
 * Hooks by tap name. The keys are typed (layers/taps.ts's TapName), so a misspelt name in an object
 * literal does not compile; a layer number past the model's, or keys built at run time, are
 * refused by checkTapNames when the pass starts.
 */
export type Hooks = Readonly<{ [name in TapName]?: Hook }>;

/**
 * Throws a HookError naming the first of `names` that is not a tap of a `numLayers`-layer model.
 * Takes plain strings: it is the check for names that arrive from outside (the command line, a file).
 */
export function checkTapNames(names: Iterable<string>, numLayers: number, what: string): asserts names is Iterable<TapName> {
  const known = new Set<string>(tapNames(numLayers));
  for (const n of names) {
    if (!known.has(n)) {
      const hint = didYouMean(n, known) || ' (names: embed, rope.cos, layers.N.qkv, ..., logits; see layers/taps.ts)';
      throw new HookError(`${what}: "${n}" is not a tap of this ${numLayers}-layer model${hint}`);
    }
  }
}

/**
 * A tap that runs `hooks[name]` first (a replacement must keep the shape) and hands the result
 * to `inner`. Unknown hook names are refused before the forward pass starts.
 */
export function hookTap(hooks: Hooks | undefined, numLayers: number, inner: Tap = noTap): Tap {
  if (!hooks) return inner;
  checkTapNames(Object.keys(hooks), numLayers, 'hooks');
  for (const [name, h] of Object.entries(hooks)) {
    if (typeof h !== 'function') throw new HookError(`hooks: "${name}" is not a function`);
  }
  return <T extends tf.Tensor>(name: TapName, t: T): T => {
    const h = Object.hasOwn(hooks, name) ? hooks[name] : undefined;
    if (!h) return inner(name, t);
    const r = h(t);
    if (r === undefined || r === t) return inner(name, t);
    if (typeof r !== 'object' || r === null || !Array.isArray((r as tf.Tensor).shape)) {
      throw new HookError(`hook "${name}" returned ${r === null ? 'null' : typeof r}, not a tensor (return nothing to observe)`);
    }
    if (r.shape.join(',') !== t.shape.join(',')) {
      throw new HookError(`hook "${name}" returned shape [${r.shape}], the tap has [${t.shape}]`);
    }
    if (r.dtype !== t.dtype) throw new HookError(`hook "${name}" returned dtype ${r.dtype}, the tap has ${t.dtype}`);
    return inner(name, r as T);
  };
}
