// `phi4 dump`: one forward pass, every tap written under its tap name, with the inputs: float32
// from the tfjs model, or float64 from the reference (src/oracle/reference/), optionally with its
// activations rounded to a storage format. The format is documented in docs/dump-format.md.

import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Checkpoint, SafetensorsWriter, writeSafetensors } from '../../weights/index.js';
import type { Selection } from '../capture/selection.js';
import { tapShape } from '../capture/shapes.js';
import { type Phi3Config, configHash } from '../model/config.js';
import type { ForwardInputs, Phi3Model } from '../model/model.js';
import { referenceForward } from './reference/forward.js';
import type { Rounding } from './reference/rounding.js';
import { seqAxis, tapInfo, tapNames } from '../../layers/taps.js';
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

/** The inputs as tensors to write, and their shapes for the metadata. */
function inputTensors(inputs: ForwardInputs): { tensors: Tensors; shapes: Record<string, number[]> } {
  const { batch: B, seq: T } = inputs;
  const tensors: Tensors = [{ name: 'input_ids', dtype: 'I32', shape: [B, T], data: inputs.inputIds }];
  if (inputs.attentionMask) tensors.push({ name: 'attention_mask', dtype: 'I32', shape: [B, inputs.attentionMask.length / B], data: inputs.attentionMask });
  if (inputs.positionIds) tensors.push({ name: 'position_ids', dtype: 'I32', shape: [B, T], data: inputs.positionIds });
  const shapes: Record<string, number[]> = {};
  for (const t of tensors) shapes[t.name] = [...t.shape];
  return { tensors, shapes };
}

/**
 * Streams a selected dump to `out`: the header is planned from the selection before the pass, the
 * inputs are written, then `run` hands each selected tap's values (cut to the selected rows) to
 * `write` as soon as the pass computes it, and the file is renamed into place at the end. A failure
 * removes the temporary file; a kill leaves only it, and the reaper of src/safety/outputs.ts
 * removes it.
 */
function streamSelected(out: string, source: string, config: Phi3Config, inputs: ForwardInputs, sel: Selection, info: DumpInfo,
  dtype: 'F32' | 'F64', run: (write: (name: string, data: Float32Array | Float64Array) => void) => void): number {
  const { tensors, shapes } = inputTensors(inputs);
  const layouts: Record<string, string> = {};
  const specs = [...tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })),
    ...sel.names.map((name) => {
      layouts[name] = tapInfo(name)!.layout;
      return { name, dtype, shape: tapShape(config, name, inputs.batch, inputs.seq, sel.end - sel.start) };
    })];
  const w = SafetensorsWriter.create(out, specs, {
    ...dumpMetadata(source, config, inputs, shapes, layouts, info),
    selection: JSON.stringify({ ...sel.spec, names: sel.names.length, rows: [sel.start, sel.end] }),
  });
  try {
    for (const t of tensors) w.write(t.name, t.data);
    run((name, data) => w.write(name, data));
    w.finish();
  } catch (err) {
    w.abort();
    throw err;
  }
  return specs.length;
}

/** Runs the model on `inputs` keeping only `sel`, and streams its taps (float32) with the inputs to `out`. */
export function writeSelectedDump(model: Phi3Model, inputs: ForwardInputs, sel: Selection, out: string, info: DumpInfo,
  fwd: Parameters<Phi3Model['capture']>[3] = {}): number {
  return streamSelected(out, model.source, model.config, inputs, sel, info, 'F32', (write) => {
    model.capture(inputs, sel, (name, t) => write(name, t.dataSync() as Float32Array), fwd).dispose();
  });
}

function dumpMetadata(source: string, config: Phi3Config, inputs: ForwardInputs, inputShapes: Record<string, number[]>,
  layouts: Record<string, string>, info: DumpInfo): Record<string, string> {
  return {
    format: 'phi4-ts.dump',
    project_version: VERSION,
    backend: info.backend,
    tfjs_version: info.tfjs,
    ...(info.rounding ? { precision: 'float64', rounding: info.rounding } : { precision: 'float32' }),
    checkpoint: resolve(source),
    config_hash: configHash(config),
    inputs: JSON.stringify(inputShapes),
    input_ids: JSON.stringify(rows(inputs.inputIds, inputs.batch, inputs.seq)),
    layouts: JSON.stringify(layouts),
  };
}

/** Writes the inputs and the taps (in forward order) with the dump's metadata, atomically. */
function writeTaps(out: string, source: string, config: Phi3Config, inputs: ForwardInputs, taps: Map<string, TapData>, info: DumpInfo): number {
  const { tensors, shapes: inputShapes } = inputTensors(inputs);
  const layouts: Record<string, string> = {};
  for (const name of tapNames(config.numLayers)) {
    const t = taps.get(name);
    if (!t) continue;
    tensors.push({ name, ...t });
    layouts[name] = tapInfo(name)!.layout;
  }
  writeSafetensors(out, tensors, dumpMetadata(source, config, inputs, inputShapes, layouts, info));
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

/** Rows [a, b) of axis `ax` of a row-major array of `shape`. */
function cutRows(x: Float64Array, shape: number[], ax: number, a: number, b: number): Float64Array {
  const outer = shape.slice(0, ax).reduce((p, q) => p * q, 1);
  const inner = shape.slice(ax + 1).reduce((p, q) => p * q, 1);
  const T = shape[ax];
  if (a === 0 && b === T) return x;
  const out = new Float64Array(outer * (b - a) * inner);
  for (let o = 0; o < outer; o++) out.set(x.subarray((o * T + a) * inner, (o * T + b) * inner), o * (b - a) * inner);
  return out;
}

/**
 * The float64 reference with a selection, streamed like writeSelectedDump: only the selected taps
 * (cut to the selected rows) are written, each as soon as the reference computes it, and the pass
 * stops after the last layer needed. (The reference still computes every row and, when the head is
 * selected, the logits of every row.)
 */
export function writeSelectedReferenceDump(dir: string, config: Phi3Config, inputs: ForwardInputs, sel: Selection, out: string,
  rounding: Rounding, tfjs: string): number {
  const want = new Set<string>(sel.names); // the float64 forward names its taps as plain strings
  const ckpt = Checkpoint.open(dir);
  try {
    return streamSelected(out, dir, config, inputs, sel, { backend: 'float64-reference', tfjs, rounding }, 'F64', (write) => {
      referenceForward(ckpt, config, inputs, {
        rounding, lastLayer: sel.lastLayer,
        onTap: (name, a, shape) => { if (want.has(name)) write(name, cutRows(a, shape, seqAxis(name), sel.start, sel.end)); },
      });
    });
  } finally {
    ckpt.close();
  }
}

/** Runs the float64 reference on the checkpoint in `dir` and writes every tap as F64 to `out` (atomically). */
export function writeReferenceDump(dir: string, config: Phi3Config, inputs: ForwardInputs, out: string, rounding: Rounding, tfjs: string): number {
  const ckpt = Checkpoint.open(dir);
  const data = new Map<string, TapData>();
  try {
    referenceForward(ckpt, config, inputs, { rounding, onTap: (name, a, shape) => data.set(name, { dtype: 'F64', shape, data: a.slice() }) }); // a tap's buffer is reused: copy
  } finally {
    ckpt.close();
  }
  return writeTaps(out, dir, config, inputs, data, { backend: 'float64-reference', tfjs, rounding });
}
