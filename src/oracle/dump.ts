// `phi4 dump`: one forward pass, every tap written under its tap name, with the inputs: float32
// from the tfjs model, or float64 from the reference (src/oracle/reference/), optionally with its
// activations rounded to a storage format. The format is documented in docs/dump-format.md.

import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint, writeSafetensors } from '../../weights/index.js';
import { type Phi3Config, configHash } from '../model/config.js';
import type { ForwardInputs, Phi3Model } from '../model/model.js';
import { referenceForward } from './reference/forward.js';
import type { Rounding } from './reference/rounding.js';
import { tapInfo, tapNames } from '../../layers/taps.js';
import { VERSION } from '../version.js';

export interface DumpInfo {
  /** What computed the taps: a tfjs backend name, or "float64-reference". */
  backend: string;
  tfjs: string;
  /** The reference's activation rounding, for a float64 dump. */
  rounding?: Rounding;
}

type Tensors = Parameters<typeof writeSafetensors>[1];
type TapData = { dtype: 'F32' | 'F64'; shape: number[]; data: Float32Array | Float64Array };

/** [B * T] row-major -> B rows of T. */
function rows(a: Int32Array, B: number, T: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
}

/** Writes the inputs and the taps (in forward order) with the dump's metadata, atomically. */
function writeTaps(out: string, source: string, config: Phi3Config, inputs: ForwardInputs, taps: Map<string, TapData>, info: DumpInfo): number {
  const { batch: B, seq: T } = inputs;
  const tensors: Tensors = [{ name: 'input_ids', dtype: 'I32', shape: [B, T], data: inputs.inputIds }];
  if (inputs.attentionMask) tensors.push({ name: 'attention_mask', dtype: 'I32', shape: [B, inputs.attentionMask.length / B], data: inputs.attentionMask });
  if (inputs.positionIds) tensors.push({ name: 'position_ids', dtype: 'I32', shape: [B, T], data: inputs.positionIds });
  const inputShapes: Record<string, number[]> = {};
  for (const t of tensors) inputShapes[t.name] = [...t.shape];
  const layouts: Record<string, string> = {};
  for (const name of tapNames(config.numLayers)) {
    const t = taps.get(name);
    if (!t) continue;
    tensors.push({ name, ...t });
    layouts[name] = tapInfo(name)!.layout;
  }
  writeSafetensors(out, tensors, {
    format: 'phi4-ts.dump',
    project_version: VERSION,
    backend: info.backend,
    tfjs_version: info.tfjs,
    ...(info.rounding ? { precision: 'float64', rounding: info.rounding } : { precision: 'float32' }),
    checkpoint: resolve(source),
    config_hash: configHash(config),
    inputs: JSON.stringify(inputShapes),
    input_ids: JSON.stringify(rows(inputs.inputIds, B, T)),
    layouts: JSON.stringify(layouts),
  });
  return tensors.length;
}

/** Runs the model on `inputs` and writes every tap (float32) and the inputs to `out` (atomically). */
export function writeDump(model: Phi3Model, inputs: ForwardInputs, out: string, info: DumpInfo): number {
  const { logits, taps } = model.runWithCache(inputs);
  try {
    const data = new Map<string, TapData>();
    for (const [name, t] of taps) data.set(name, { dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array });
    return writeTaps(out, model.source, model.config, inputs, data, info);
  } finally {
    tf.dispose([logits, ...taps.values()]);
  }
}

/** Runs the float64 reference on the checkpoint in `dir` and writes every tap as F64 to `out` (atomically). */
export function writeReferenceDump(dir: string, config: Phi3Config, inputs: ForwardInputs, out: string, rounding: Rounding, tfjs: string): number {
  const ckpt = Checkpoint.open(dir);
  const data = new Map<string, TapData>();
  try {
    referenceForward(ckpt, config, inputs, { rounding, onTap: (name, a, shape) => data.set(name, { dtype: 'F64', shape, data: a }) });
  } finally {
    ckpt.close();
  }
  return writeTaps(out, dir, config, inputs, data, { backend: 'float64-reference', tfjs, rounding });
}
