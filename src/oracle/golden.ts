// The golden cases (golden/README.md) and the rule that judges a tap against them.
//
// For every tap of a case:
//   rel L2 against transformers' float32 dump                 <= F32_TOLERANCE
//   where a float64 dump exists, rel L2 against float64       <= max(F64_FACTOR * e_hf, F64_FLOOR)
//   with e_hf the rel L2 of transformers' own float32 result against the float64 one.
// In a padded batch only positions whose attention_mask is 1 count.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../weights/index.js';
import { readInputs } from '../checkpoint/inputs.js';
import { BUNDLED_DIR } from '../checkpoint/bundled.js';
import { maxAbs, relL2, selectPositions } from './metrics.js';
import type { Phi3Model } from '../model/model.js';
import { captureTaps } from '../capture/host.js';
import { seqAxis, tapInfo, tapNames } from '../../layers/taps.js';
import { F32_TOLERANCE, F64_FACTOR, F64_FLOOR } from './tolerance.js';

export { F32_TOLERANCE, F64_FACTOR, F64_FLOOR };

export const GOLDEN_DIR = fileURLToPath(new URL('../../../golden/', import.meta.url));

export interface GoldenCase {
  name: string;
  model: string;
}

/** The forward cases, each with a float32 dump and (where made) a float64 one. */
export const FORWARD_CASES: GoldenCase[] = [
  { name: 'phi4-mini-tiny.short', model: 'phi4-mini-tiny' },
  { name: 'phi4-mini-tiny.long', model: 'phi4-mini-tiny' },
  { name: 'phi4-mini-tiny.batch', model: 'phi4-mini-tiny' },
  { name: 'phi4-mini-geometry.short', model: 'phi4-mini-geometry' },
  { name: 'phi3-mini-tiny.short', model: 'phi3-mini-tiny' },
  { name: 'phi3-mini-tiny.long', model: 'phi3-mini-tiny' },
  // made by golden/generator/gen_variants.py
  { name: 'phi4-mini-tiny.batch-long', model: 'phi4-mini-tiny' },
  { name: 'phi3-mini-tiny.batch', model: 'phi3-mini-tiny' },
  { name: 'phi35-mini-tiny.short', model: 'phi35-mini-tiny' },
  { name: 'phi35-mini-tiny.long', model: 'phi35-mini-tiny' },
  { name: 'phi3-medium-tiny.short', model: 'phi3-medium-tiny' },
  { name: 'phi3-medium-tiny.long', model: 'phi3-medium-tiny' },
  // the trained toy (npm run train-toy) on the walkthrough's prompts; made by golden/generator/gen_toy_golden.py
  { name: 'phi4-toy-induction.short', model: 'phi4-toy-induction' },
  { name: 'phi4-toy-induction.long', model: 'phi4-toy-induction' },
];

/**
 * The float64 dumps golden/manifest.json lists, by case name ('phi4-mini-tiny.short' for
 * dumps/phi4-mini-tiny.short.f64.safetensors): where the manifest lists one, its float64 checks are
 * required, so a deleted file fails loudly instead of removing its checks.
 */
export function manifestF64Cases(): string[] {
  const m = JSON.parse(readFileSync(join(GOLDEN_DIR, 'manifest.json'), 'utf8')) as { cases: { file: string }[] };
  return m.cases.map((c) => /^dumps\/(.+)\.f64\.safetensors$/.exec(c.file)?.[1]).filter((n): n is string => n !== undefined);
}

export const modelDir = (model: string) => join(BUNDLED_DIR, model);
export const dumpPath = (name: string) => join(GOLDEN_DIR, 'dumps', `${name}.safetensors`);

export interface TapCheck {
  tap: string;
  shape: number[];
  /** rel L2 and max |diff| against transformers' float32. */
  rel: number;
  maxAbs: number;
  /** Against float64, where that dump exists: ours, transformers' float32, and the limit. */
  rel64?: number;
  hfRel64?: number;
  limit64?: number;
  ok: boolean;
  problem?: string;
}

const INPUT_NAMES = new Set(['input_ids', 'attention_mask', 'position_ids']);

/** Compares our taps with a golden case, tap by tap in forward order. */
export function checkCase(model: Phi3Model, name: string): TapCheck[] {
  const ref = SafetensorsFile.open(dumpPath(name));
  const f64Path = dumpPath(`${name}.f64`);
  if (!existsSync(f64Path) && manifestF64Cases().includes(name)) throw new Error(`${f64Path}: listed in golden/manifest.json but missing`);
  const ref64 = existsSync(f64Path) ? SafetensorsFile.open(f64Path) : null;
  try {
    const inputs = readInputs(dumpPath(name));
    const ours = captureTaps(model, inputs);
    const keep = inputs.attentionMask ?? null;
    const order: readonly string[] = tapNames(model.config.numLayers);
    const names = ref.names().filter((n) => !INPUT_NAMES.has(n));
    names.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    return names.map((tap): TapCheck => {
      const shape = ref.info(tap).shape;
      const mine = ours.get(tap);
      if (!tapInfo(tap) || !mine) return { tap, shape, rel: NaN, maxAbs: NaN, ok: false, problem: 'not produced by this implementation' };
      if (mine.shape.join(',') !== shape.join(',')) {
        return { tap, shape, rel: NaN, maxAbs: NaN, ok: false, problem: `shape [${mine.shape}] vs golden [${shape}]` };
      }
      const sel = <A extends Float32Array | Float64Array>(a: A): A => (keep ? selectPositions(a, shape, seqAxis(tap), keep) : a);
      const a = sel(mine.data);
      const b = sel(ref.readFloat32(tap));
      const c: TapCheck = { tap, shape, rel: relL2(a, b), maxAbs: maxAbs(a, b), ok: true };
      c.ok = c.rel <= F32_TOLERANCE;
      if (ref64 && ref64.has(tap)) {
        const exact = sel(ref64.readFloat64(tap));
        c.rel64 = relL2(a, exact);
        c.hfRel64 = relL2(b, exact);
        c.limit64 = Math.max(F64_FACTOR * c.hfRel64, F64_FLOOR);
        c.ok &&= c.rel64 <= c.limit64;
      }
      return c;
    });
  } finally {
    ref.close();
    ref64?.close();
  }
}
