// Tap shapes from the tap table's layouts (layers/taps.ts): each axis letter of a layout has a
// size for a given config and input. The walkthrough (src/teach/) and the selected dumps
// (src/oracle/dump.ts, ./memory.ts) read shapes from here.

import type { Phi3Config } from '../model/config.js';
import { tapInfo } from '../../layers/taps.js';

/** The value of each axis letter of the layouts for a config and an input of [batch, seq] tokens (no past: S = T). */
export function axisSizes(cfg: Phi3Config, batch: number, seq: number): Record<string, number> {
  const { hiddenSize: H, numHeads: nh, numKvHeads: nkv, headDim: d, intermediateSize: I, vocabSize: V } = cfg;
  return {
    '1': 1, B: batch, T: seq, S: seq, H, nh, nkv, d, r: cfg.rope.rotaryDim, I, V,
    '2I': 2 * I, 'nh*d': nh * d, 'nkv*d': nkv * d, '(nh+2nkv)d': (nh + 2 * nkv) * d,
  };
}

/** A layout ("B,T,H") read with `sizes`. */
export function layoutShape(layout: string, sizes: Record<string, number>): number[] {
  return layout.split(',').map((a) => {
    const n = sizes[a];
    if (n === undefined) throw new Error(`layout axis "${a}" has no size`);
    return n;
  });
}

/** The shape of tap `name` over [B, T] tokens (no past: S = T), its T axis cut to `rows`. */
export function tapShape(config: Phi3Config, name: string, B: number, T: number, rows: number): number[] {
  return layoutShape(tapInfo(name)!.layout, { ...axisSizes(config, B, T), T: rows });
}
