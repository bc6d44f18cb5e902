// `phi4 dump`: one forward pass, every tap written as float32 under its tap name, with the inputs.
// The format is documented in docs/dump-format.md.

import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeSafetensors } from '../weights/index.js';
import { configHash } from './config.js';
import type { ForwardInputs, Phi3Model } from './model.js';
import { tapInfo, tapNames } from './taps.js';
import { VERSION } from './version.js';

export interface DumpInfo {
  backend: string;
  tfjs: string;
}

/** [B * T] row-major -> B rows of T. */
function rows(a: Int32Array, B: number, T: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
}

/** Runs the model on `inputs` and writes every tap and the inputs to `out` (atomically). */
export function writeDump(model: Phi3Model, inputs: ForwardInputs, out: string, info: DumpInfo): number {
  const { logits, taps } = model.runWithCache(inputs);
  try {
    const { batch: B, seq: T } = inputs;
    const tensors: Parameters<typeof writeSafetensors>[1] = [{ name: 'input_ids', dtype: 'I32', shape: [B, T], data: inputs.inputIds }];
    if (inputs.attentionMask) tensors.push({ name: 'attention_mask', dtype: 'I32', shape: [B, inputs.attentionMask.length / B], data: inputs.attentionMask });
    if (inputs.positionIds) tensors.push({ name: 'position_ids', dtype: 'I32', shape: [B, T], data: inputs.positionIds });
    const inputShapes: Record<string, number[]> = {};
    for (const t of tensors) inputShapes[t.name] = [...t.shape];
    const layouts: Record<string, string> = {};
    for (const name of tapNames(model.config.numLayers)) {
      const t = taps.get(name);
      if (!t) continue;
      tensors.push({ name, dtype: 'F32', shape: t.shape, data: t.dataSync() as Float32Array });
      layouts[name] = tapInfo(name)!.layout;
    }
    writeSafetensors(out, tensors, {
      format: 'phi4-ts.dump',
      project_version: VERSION,
      backend: info.backend,
      tfjs_version: info.tfjs,
      checkpoint: resolve(model.source),
      config_hash: configHash(model.config),
      inputs: JSON.stringify(inputShapes),
      input_ids: JSON.stringify(rows(inputs.inputIds, B, T)),
      layouts: JSON.stringify(layouts),
    });
    return tensors.length;
  } finally {
    tf.dispose([logits, ...taps.values()]);
  }
}
