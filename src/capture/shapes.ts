// The shape of each tap for a given input, from the tap table's layouts (src/taps.ts).

import type { Phi3Config } from '../model/config.js';
import { tapInfo } from '../../layers/taps.js';

/** The shape of tap `name` over [B, T] tokens (no past: S = T), its T axis cut to `rows`. */
export function tapShape(config: Phi3Config, name: string, B: number, T: number, rows: number): number[] {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: d, vocabSize: V } = config;
  const dims: Record<string, number> = {
    B, T: rows, S: T, H, V, r: config.rope.rotaryDim, nh, nkv, d, I, '2I': 2 * I,
    '(nh+2nkv)d': (nh + 2 * nkv) * d, 'nh*d': nh * d,
  };
  return tapInfo(name)!.layout.split(',').map((a) => {
    const n = dims[a];
    if (n === undefined) throw new Error(`internal error: layout axis "${a}" of ${name}`);
    return n;
  });
}

