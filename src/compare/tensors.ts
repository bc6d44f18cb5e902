// compare on tensors held in memory: a runtime author runs the oracle and their runtime side by side
// (in Node, or in a page through phi4-ts/browser) and gets the report, and the verdict text,
// `phi4 compare` gives on the same tensors written as files. Each side is a map (a Map or a plain
// object) of name -> { data: typed array, shape } or a tfjs tensor (runWithCache's `taps` as they
// come). Checked here, one line naming the side and the tensor; then the same map and the same
// compare (./compare.ts) as compareFiles (./files.ts), rendered by the same formatReport (./render.ts).
// No Node module: this runs in a page.

import type { Phi3Config } from '../model/config.js';
import { InputError } from '../errors.js';
import type { Entries } from './entries.js';
import { type CompareOptions, type CompareReport, PRESETS } from './report.js';
import { compare } from './compare.js';
import { type MapSpec, applyMap, parseMapSpec } from './map.js';
import { BUILTIN_MAPS, detectMap } from './maps/index.js';

/** A typed array of values; floats are compared as taps, integers (ids, masks) exactly. */
export type TensorData = Float32Array | Float64Array | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
/** One tensor in memory: its values, row-major, and its shape. */
export interface InMemoryTensor {
  data: TensorData;
  shape: readonly number[];
}
/** What a tfjs tensor offers here (any copy of tfjs: the bundle's `tf` or an app's own). */
export interface TensorLike {
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly isDisposed: boolean;
  dataSync(): ArrayLike<number> | Uint8Array[] | string[];
}
export type TensorInput = InMemoryTensor | TensorLike;
/** One side of a comparison: tensor name -> tensor. */
export type TensorMap = ReadonlyMap<string, TensorInput> | Readonly<Record<string, TensorInput>>;

export interface TensorCompareOptions extends Pick<CompareOptions, 'preset' | 'tolerance' | 'rows'> {
  /**
   * As `--map`: a built-in map's name ('llama.cpp'), 'none' or null (no map), a map spec object
   * (the JSON of a --map file, docs/compare.md), or a parsed MapSpec; not given: the built-in map
   * the candidate's names call for, if any.
   */
  map?: string | null | MapSpec | Record<string, unknown>;
  /**
   * The reference model's config (parseConfig, or `model.config` of a loaded model): its rotary
   * config and sliding window, for the LongRoPE and sliding-window fingerprints, which compareFiles
   * reads from the checkpoint the reference dump records.
   */
  config?: Pick<Phi3Config, 'rope' | 'slidingWindow'>;
  /** The report header's names for the two sides (default: "reference (in memory)", "candidate (in memory)"). */
  labels?: { reference?: string; candidate?: string };
}

/** The report, the header's names, and the map applied (compareFiles returns the same). */
export interface Comparison {
  report: CompareReport;
  labels: { reference: string; candidate: string };
  /** The map applied: the one given, or a built-in one detected from the candidate's names. */
  map: MapSpec | null;
}

const INT_ARRAYS = ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array'];

function isTensorLike(t: unknown): t is TensorLike {
  return typeof t === 'object' && t !== null && typeof (t as TensorLike).dataSync === 'function' && typeof (t as TensorLike).dtype === 'string';
}

/** Integer values as Int32Array (as the file reader gives ids and masks), each checked to fit. */
function toInt32(data: ArrayLike<number | bigint>, where: string): Int32Array {
  if (data instanceof Int32Array) return data;
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]);
    if (v < -2147483648 || v > 2147483647) throw new InputError(`${where}: element ${i} (${String(data[i])}) does not fit in int32`);
    out[i] = v;
  }
  return out;
}

/**
 * One side's tensors as compare's entries. Refused, in one line naming the side and the tensor: a
 * shape that is not a list of whole sizes, data that is not a typed array (or a tensor of another
 * dtype, or a disposed one), a data length that is not the shape's size. Non-finite values are
 * kept: compare judges them (a tap holding NaN or Infinity diverges), as it does read from files.
 * Typed arrays are not copied; tfjs tensors are read once, here.
 */
export function tensorEntries(tensors: TensorMap, side: 'reference' | 'candidate'): Entries {
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors)) {
    throw new InputError(`${side}: expected a Map or an object of name -> { data, shape } (or tfjs tensor), got ${Array.isArray(tensors) ? 'an array' : String(tensors)}`);
  }
  const pairs: [string, unknown][] = tensors instanceof Map ? [...(tensors as ReadonlyMap<string, unknown>)] : Object.entries(tensors);
  if (pairs.length === 0) throw new InputError(`${side}: no tensors`);
  const out: Entries = new Map();
  for (const [name, t] of pairs) {
    const where = `${side} tensor "${String(name)}"`;
    if (typeof name !== 'string' || name === '') throw new InputError(`${where}: a tensor's name must be a non-empty string`);
    let shape: unknown;
    let data: ArrayLike<number | bigint>;
    let kind: string;
    if (isTensorLike(t)) {
      if (t.isDisposed) throw new InputError(`${where}: the tfjs tensor is disposed`);
      if (!['float32', 'int32', 'bool'].includes(t.dtype)) throw new InputError(`${where}: a ${t.dtype} tensor (float32, int32 or bool)`);
      shape = t.shape;
      data = t.dataSync() as ArrayLike<number>;
      kind = t.dtype === 'float32' ? 'Float32Array' : 'Int32Array';
    } else {
      if (typeof t !== 'object' || t === null || !('data' in t) || !('shape' in t)) throw new InputError(`${where}: expected { data: typed array, shape: number[] } or a tfjs tensor`);
      shape = (t as InMemoryTensor).shape;
      const d = (t as InMemoryTensor).data as unknown;
      kind = ArrayBuffer.isView(d) && !(d instanceof DataView) ? d.constructor.name : '';
      if (kind !== 'Float32Array' && kind !== 'Float64Array' && !INT_ARRAYS.includes(kind)) {
        throw new InputError(`${where}: data must be a typed array (Float32Array, Float64Array or an integer array), got ${Array.isArray(d) ? 'an Array' : kind || typeof d}`);
      }
      data = d as ArrayLike<number | bigint>;
    }
    if (!Array.isArray(shape) || !shape.every((x) => Number.isInteger(x) && x >= 0)) throw new InputError(`${where}: shape must be a list of whole sizes, got ${JSON.stringify(shape)}`);
    const size = (shape as number[]).reduce((p, q) => p * q, 1);
    if (size !== data.length) throw new InputError(`${where}: shape [${shape.join(',')}] holds ${size} values, data has ${data.length}`);
    const int = INT_ARRAYS.includes(kind);
    const values = int ? toInt32(data, where) : (data as Float32Array | Float64Array);
    out.set(name, { shape: [...(shape as number[])], int, read: () => values });
  }
  return out;
}

/** `map` as given to compareTensors, or to compareFiles (a MapSpec, null, or undefined to detect). */
function resolveSpec(map: TensorCompareOptions['map']): MapSpec | null | undefined {
  if (map === undefined || map === null || map === 'none') return map === undefined ? undefined : null;
  if (typeof map === 'string') {
    if (!Object.hasOwn(BUILTIN_MAPS, map)) throw new InputError(`map: unknown built-in map "${map}" (${Object.keys(BUILTIN_MAPS).join(', ')}, none, or a map spec object)`);
    return BUILTIN_MAPS[map];
  }
  if (Array.isArray((map as MapSpec).rules) && typeof (map as MapSpec).applyTo === 'string') return map as MapSpec;
  return parseMapSpec(map, '(map option)');
}

/**
 * Both sides with the map applied, as compareFiles and compareTensors apply it: `given` undefined
 * applies the built-in map the candidate's names call for; null none. `note` ends the candidate's
 * label in the report header.
 */
export function mapSides(ref: Entries, cand: Entries, given: MapSpec | null | undefined): { ref: Entries; cand: Entries; map: MapSpec | null; note: string } {
  const map = given === undefined ? detectMap(cand) : given;
  return {
    ref: map && map.applyTo !== 'candidate' ? applyMap(ref, map, 'reference') : ref,
    cand: map && map.applyTo !== 'reference' ? applyMap(cand, map, 'candidate') : cand,
    map, note: map?.name ? `; map: ${map.name}` : '',
  };
}

/**
 * `phi4 compare` on two sets of in-memory tensors: the same report (and, through formatReport,
 * the same text) the CLI gives on those tensors written as safetensors files, with `--no-blame`
 * (the per-step blame re-runs the checkpoint from files) and without --budget.
 */
export function compareTensors(reference: TensorMap, candidate: TensorMap, opts: TensorCompareOptions = {}): Comparison {
  const ref = tensorEntries(reference, 'reference');
  const cand = tensorEntries(candidate, 'candidate');
  const { map: given, config, labels, ...rest } = opts;
  if (rest.preset !== undefined && !Object.hasOwn(PRESETS, rest.preset)) throw new InputError(`preset: unknown preset "${String(rest.preset)}" (${Object.keys(PRESETS).join(', ')})`);
  if (rest.tolerance !== undefined && !(rest.tolerance > 0 && Number.isFinite(rest.tolerance))) throw new InputError(`tolerance: ${String(rest.tolerance)} is not a positive number`);
  const m = mapSides(ref, cand, resolveSpec(given));
  const fromConfig = config ? { rope: config.rope, slidingWindow: config.slidingWindow } : {};
  return {
    report: compare(m.ref, m.cand, { ...fromConfig, ...rest }),
    labels: { reference: labels?.reference ?? 'reference (in memory)', candidate: (labels?.candidate ?? 'candidate (in memory)') + m.note },
    map: m.map,
  };
}
