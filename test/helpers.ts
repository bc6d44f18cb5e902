// Shared test setup: backends, golden paths, small numeric helpers.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend.js';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../weights/index.js';

/** The kernel sets every golden test runs on. */
export const TEST_BACKENDS = ['wasm', 'cpu'] as const;

export async function useBackend(name: string): Promise<void> {
  await initBackend(name);
  if (tf.getBackend() !== name) throw new Error(`backend ${name} did not start`);
}

export function arr(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
export function rand(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/**
 * Copies a safetensors dump with some tensors changed: `change` gets each tensor's data (floats as
 * float32, ints as int32) and shape, and returns what to write, or null to drop the tensor. The
 * metadata goes along only with `keepMetadata`.
 */
export function rewriteDump(
  src: string, dst: string,
  change: (name: string, data: Float32Array | Int32Array, shape: number[]) => { data: Float32Array | Int32Array; shape: number[] } | null,
  keepMetadata = false,
): void {
  const f = SafetensorsFile.open(src);
  const tensors: TensorToWrite[] = [];
  try {
    for (const t of f.tensors()) {
      const int = t.dtype.startsWith('I');
      const r = change(t.name, int ? f.readInt32(t.name) : f.readFloat32(t.name), t.shape);
      if (r) tensors.push({ name: t.name, dtype: int ? 'I32' : 'F32', shape: r.shape, data: r.data });
    }
  } finally {
    f.close();
  }
  writeSafetensors(dst, tensors, keepMetadata ? f.metadata : undefined);
}

/**
 * How two float arrays differ: the number of elements that are not bit-identical (NaN equals NaN)
 * and the largest absolute difference. For paths the code claims are bit-identical the test asserts
 * `{ differing: 0 }` exactly, so that a change of one ulp anywhere fails.
 */
export function bitDiff(a: ArrayLike<number>, b: ArrayLike<number>): { length: number; differing: number; maxAbs: number } {
  if (a.length !== b.length) throw new Error(`bitDiff: lengths ${a.length} and ${b.length}`);
  let differing = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    if (Object.is(a[i], b[i]) || a[i] === b[i]) continue;
    differing++;
    maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
  }
  return { length: a.length, differing, maxAbs };
}

/** A copy of checkpoint `model` (shards linked) under tmp/name, with its config.json changed: a bug planted in a config value. */
export function plantedCheckpoint(model: string, tmp: string, name: string, change: (cfg: Record<string, unknown>) => Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(model)) if (f !== 'config.json') fs.symlinkSync(path.join(model, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(change(JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')))));
  return dir;
}
