// `phi4 compare --budget bf16|f16`: tolerances from the case at hand. The constant presets (bf16
// 6e-2, fp16 8e-3) were calibrated on random weights; trained weights have outlier channels, and
// a long input other errors. So this runs the float64 reference twice on the checkpoint and the
// inputs of the reference dump, once exact and once with its activations stored in bf16 or f16
// (the rounding `phi4 dump --rounding` does), and gives every tap a budget of K times that
// emulation's own error on that tap: the tolerance follows the real weights and the real input.
// compare.ts judges each tap against its budget; the constant preset's verdict is kept beside it.

import { freemem } from 'node:os';
import { SafetensorsFile, isFloatDType } from '../../weights/index.js';
import { F32_TOLERANCE } from '../oracle/golden.js';
import { runReference } from '../oracle/reference/fidelity.js';
import { referenceBytes } from '../oracle/reference/forward.js';
import { readInputs } from '../checkpoint/inputs.js';
import type { ForwardInputs } from '../model/model.js';
import { type Phi3Config, loadConfig } from '../model/config.js';
import { InputError, ReferenceInputError } from '../errors.js';
import type { Entries } from './entries.js';
import { type BudgetReport, INPUT_NAMES } from './report.js';
import { compare } from './compare.js';
import { blameCheckpoint, checkpointMismatch } from './blame-run.js';

/** The storage precisions a budget emulates, and the constant preset each stands beside. */
export const BUDGET_PRESETS = { bf16: 'bf16', f16: 'fp16' } as const;
export type BudgetRounding = keyof typeof BUDGET_PRESETS;

/**
 * How many times the emulation's own error a tap may show. Measured (docs/compare.md, "budget";
 * `node dist/tools/budget-ratio.js`): transformers on CUDA in bf16 (golden/dumps/
 * phi4-mini-tiny.{short,long}.cuda-bf16) against our float64 reference on the same ids is 1.15
 * to 1.28 times the float64 reference with bf16 storage on the 10 (tap, input) pairs with an
 * error (layers.N.out, final_norm, logits; embed is exact in both); K = 3 is 2.3x over the worst.
 * The same K serves f16: no fp16 runtime's dump exists here (no GPU on this machine), so f16's
 * ratio is taken to be bf16's.
 */
export const BUDGET_K = 3;

/**
 * The least budget of any tap: the fp32 tolerance. Where the emulation is exact (the embedding of
 * bf16 weights stored in bf16 loses nothing), K x 0 would fail a float32 runtime's honest rounding.
 */
export const BUDGET_FLOOR = F32_TOLERANCE;

/** Reference taps as entries, with the inputs' attention_mask, so that compare measures the emulation as it measures a candidate. */
export function tapEntries(taps: Map<string, Float64Array | Float32Array>, shapes: Map<string, number[]>, inputs: ForwardInputs): Entries {
  const out: Entries = new Map();
  for (const [name, data] of taps) out.set(name, { shape: shapes.get(name)!, int: false, read: () => data });
  const mask = inputs.attentionMask;
  if (mask) out.set('attention_mask', { shape: [inputs.batch, inputs.seq], int: true, read: () => mask });
  return out;
}

/**
 * The emulation's own error on each tap of `names`: the float64 reference with `rounding` storage
 * against the exact one, on `inputs`, as compare measures a candidate (the larger of the tap's rel
 * L2 and its per-position RMS, on real positions only); NaN where the format overflows. Only the
 * exact values of `names` are kept, and the emulated run is judged tap by tap as it goes.
 */
export function emulationErrors(checkpoint: string, config: Phi3Config, inputs: ForwardInputs, rounding: BudgetRounding,
  names: Set<string>): Map<string, { shape: number[]; emulated: number }> {
  const exact = new Map<string, Float64Array>();
  const shapes = new Map<string, number[]>();
  runReference(checkpoint, config, inputs, 'none', (name, data, shape) => {
    if (!names.has(name)) return;
    exact.set(name, data.slice());
    shapes.set(name, shape.slice());
  });
  const out = new Map<string, { shape: number[]; emulated: number }>();
  runReference(checkpoint, config, inputs, rounding, (name, data) => {
    const x = exact.get(name);
    if (!x) return;
    const one = (v: Float64Array) => tapEntries(new Map([[name, v]]), shapes, inputs);
    const t = compare(one(x), one(data), { tolerance: Infinity }).taps[0];
    out.set(name, { shape: shapes.get(name)!, emulated: Math.max(t.relL2, t.positionRms ?? 0) });
    exact.delete(name); // judged: no longer needed
  });
  return out;
}

/**
 * The budget of each tap of `names`: K x the emulation's own error, at least BUDGET_FLOOR (NaN where
 * the emulation overflows: no budget can be formed, and the tap fails).
 */
export function emulatedBudget(checkpoint: string, config: Phi3Config, inputs: ForwardInputs, rounding: BudgetRounding, names: Set<string>, k = BUDGET_K): BudgetReport {
  const errors = emulationErrors(checkpoint, config, inputs, rounding, names);
  const taps = [...errors].map(([name, { shape, emulated }]) => ({ name, shape, emulated, budget: Number.isFinite(emulated) ? Math.max(k * emulated, BUDGET_FLOOR) : NaN }));
  return { rounding, k, floor: BUDGET_FLOOR, checkpoint, taps };
}

/**
 * Refuses, in one line, an emulation that would not fit in `available` bytes: the reference's own
 * working set plus the exact values it keeps of the taps to judge (`shapes`, from the reference dump).
 */
export function checkBudgetMemory(config: Phi3Config, inputs: ForwardInputs, shapes: number[][], available = freemem()): void {
  const kept = shapes.reduce((s, sh) => s + sh.reduce((p, q) => p * q, 1) * 8, 0);
  const need = referenceBytes(config, inputs.batch, inputs.seq) + kept;
  if (need > available) {
    throw new ReferenceInputError(`--budget: the float64 reference's emulation needs about ${(need / 2 ** 30).toFixed(1)} GiB for ${inputs.batch} x ${inputs.seq} positions ` +
      `and ${shapes.length} taps; ${(available / 2 ** 30).toFixed(1)} GiB is available: compare fewer taps (dump --taps/--layers) or fewer ids`);
  }
}

/**
 * The budget for comparing against the reference dump at `refPath`: the emulation runs on the
 * checkpoint given (`given`), else the one the dump records, on the inputs it records. A checkpoint
 * that cannot be read, or is not the one the dump was made from, is refused in one line.
 */
export function budgetFor(refPath: string, given: string | undefined, rounding: BudgetRounding, k = BUDGET_K): BudgetReport {
  const source = blameCheckpoint(refPath, given);
  const f = SafetensorsFile.open(refPath);
  const shapes = new Map<string, number[]>();
  let recorded: string | undefined;
  try {
    recorded = f.metadata.format === 'phi4-ts.dump' ? f.metadata.checkpoint : undefined;
    for (const t of f.tensors()) if (!INPUT_NAMES.includes(t.name) && isFloatDType(t.dtype)) shapes.set(t.name, t.shape);
  } finally {
    f.close();
  }
  if (!source) {
    throw new InputError(`--budget: ${refPath} ${recorded ? `records the checkpoint ${recorded}, which can no longer be read` : 'records no checkpoint (not a phi4 dump, or one without provenance)'}; ` +
      'give the checkpoint the dumps were made from with --checkpoint DIR');
  }
  const mismatch = checkpointMismatch(refPath, source.checkpoint);
  if (mismatch) throw new InputError(mismatch);
  const config = loadConfig(source.checkpoint);
  const inputs = readInputs(refPath);
  checkBudgetMemory(config, inputs, [...shapes.values()]);
  return emulatedBudget(source.checkpoint, config, inputs, rounding, new Set(shapes.keys()), k);
}
