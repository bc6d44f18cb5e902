/**
 * A checkpoint: one `model.safetensors`, or `model.safetensors.index.json`
 * plus the shards it lists, or a direct path to a single .safetensors file
 * or to an index .json file.
 *
 * Every shard header is opened and validated at `open` (file descriptors stay
 * open until `close()`); tensor bytes are read on demand.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSmallFile } from './small-file.js';
import { describeJson } from './header-json.js';
import { SafetensorsFile, WeightsError, oneLine, type TensorInfo } from './safetensors.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';
/** Largest index file read: a 100,000-tensor index is about 10 MB. */
export const MAX_INDEX_BYTES = 100_000_000;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

export class Checkpoint {
  /** Directory holding the files. */
  readonly dir: string;
  /** Paths of the .safetensors files (index order of first appearance for a sharded checkpoint). */
  readonly files: readonly string[];
  /** Path of the index file, when the checkpoint is sharded. */
  readonly indexPath: string | undefined;
  /** `metadata.total_size` of the index when present, else undefined. */
  readonly indexTotalSize: number | undefined;
  /** Sum of the byte lengths of all tensors. */
  readonly totalBytes: number;
  private readonly shards: readonly SafetensorsFile[];
  private readonly owner: Map<string, SafetensorsFile>;

  private constructor(dir: string, indexPath: string | undefined, indexTotalSize: number | undefined,
    shards: SafetensorsFile[]) {
    this.dir = dir;
    this.indexPath = indexPath;
    this.indexTotalSize = indexTotalSize;
    this.shards = Object.freeze(shards);
    this.files = Object.freeze(shards.map((s) => s.path));
    this.owner = new Map();
    let total = 0;
    for (const s of shards) {
      for (const t of s.tensors()) {
        this.owner.set(t.name, s);
        total += t.byteLength;
      }
    }
    this.totalBytes = total;
  }

  /**
   * Open a checkpoint directory (`model.safetensors` is preferred over
   * `model.safetensors.index.json` when both exist, as transformers does), a
   * `.safetensors` file, or an index `.json` file.
   */
  static open(pathOrDir: string): Checkpoint {
    const st = statOrNull(pathOrDir);
    if (!st) throw new WeightsError(`${pathOrDir}: no such file or directory`);
    if (st.isDirectory()) {
      const single = path.join(pathOrDir, SINGLE_FILE_NAME);
      if (statOrNull(single)?.isFile()) return Checkpoint.openSingle(single);
      const index = path.join(pathOrDir, INDEX_FILE_NAME);
      if (statOrNull(index)?.isFile()) return Checkpoint.openIndex(index);
      throw new WeightsError(`${pathOrDir}: no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME} in this directory`);
    }
    if (pathOrDir.endsWith('.json')) return Checkpoint.openIndex(pathOrDir);
    return Checkpoint.openSingle(pathOrDir);
  }

  private static openSingle(file: string): Checkpoint {
    return new Checkpoint(path.dirname(file), undefined, undefined, [SafetensorsFile.open(file)]);
  }

  private static openIndex(indexPath: string): Checkpoint {
    const dir = path.dirname(indexPath);
    let text: string;
    try {
      text = readSmallFile(indexPath, MAX_INDEX_BYTES); // an index is small JSON
    } catch (err) {
      throw new WeightsError((err as Error).message, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new WeightsError(`${indexPath}: not valid JSON (${oneLine((err as Error).message)})`, { cause: err });
    }
    if (!isPlainObject(json)) throw new WeightsError(`${indexPath}: not a JSON object`);
    const weightMap = json['weight_map'];
    if (!isPlainObject(weightMap)) throw new WeightsError(`${indexPath}: missing or invalid "weight_map" object`);

    let totalSize: number | undefined;
    const meta = json['metadata'];
    if (meta !== undefined && meta !== null) {
      if (!isPlainObject(meta)) throw new WeightsError(`${indexPath}: "metadata" is not an object`);
      const ts = meta['total_size'];
      if (ts !== undefined) {
        if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) {
          throw new WeightsError(`${indexPath}: metadata.total_size must be a non-negative integer, got ${describeJson(ts)}`);
        }
        totalSize = ts;
      }
    }

    // Shard file names in order of first appearance, with one tensor each for error messages.
    const shardNames = new Map<string, string>();
    for (const [tensor, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string' || shard === '') {
        throw new WeightsError(`${indexPath}: weight_map entry for tensor "${tensor}" must be a shard file name, got ${describeJson(shard)}`);
      }
      if (path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
        throw new WeightsError(`${indexPath}: weight_map entry for tensor "${tensor}" names shard "${shard}" outside the checkpoint directory`);
      }
      if (!shardNames.has(shard)) shardNames.set(shard, tensor);
    }

    const opened: SafetensorsFile[] = [];
    try {
      const byShard = new Map<string, SafetensorsFile>();
      for (const [shard, tensor] of shardNames) {
        const file = path.join(dir, shard);
        if (!statOrNull(file)?.isFile()) {
          throw new WeightsError(`${indexPath}: shard "${shard}" is missing (${file} not found), needed for tensor "${tensor}"`);
        }
        const sf = SafetensorsFile.open(file);
        opened.push(sf);
        byShard.set(shard, sf);
      }
      for (const [tensor, shard] of Object.entries(weightMap) as [string, string][]) {
        const sf = byShard.get(shard)!;
        if (!sf.has(tensor)) {
          throw new WeightsError(`${indexPath}: tensor "${tensor}" is mapped to shard "${shard}" but ${sf.path} has no such tensor`);
        }
      }
      for (const [shard, sf] of byShard) {
        for (const tensor of sf.names()) {
          if (!Object.prototype.hasOwnProperty.call(weightMap, tensor)) {
            throw new WeightsError(`${indexPath}: tensor "${tensor}" is in shard ${sf.path} but not in the index weight_map`);
          }
          const mapped = weightMap[tensor] as string;
          if (mapped !== shard) {
            throw new WeightsError(
              `${indexPath}: tensor "${tensor}" is present in two shards, "${mapped}" and "${shard}" (${sf.path})`);
          }
        }
      }
      return new Checkpoint(dir, indexPath, totalSize, opened);
    } catch (err) {
      for (const sf of opened) sf.close();
      throw err;
    }
  }

  /** All tensor names: shards in `files` order, within a shard in data-offset order. */
  names(): string[] {
    return this.shards.flatMap((s) => s.names());
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  /** The shard holding `name` (throws WeightsError when absent). */
  shardOf(name: string): SafetensorsFile {
    const s = this.owner.get(name);
    if (!s) {
      throw new WeightsError(`${this.indexPath ?? this.files[0] ?? this.dir}: no tensor "${name}" in this checkpoint`);
    }
    return s;
  }

  info(name: string): TensorInfo {
    return this.shardOf(name).info(name);
  }

  readBytes(name: string): Uint8Array {
    return this.shardOf(name).readBytes(name);
  }

  readRange(name: string, start: number, dst: Uint8Array): void {
    this.shardOf(name).readRange(name, start, dst);
  }

  readFloat32(name: string): Float32Array {
    return this.shardOf(name).readFloat32(name);
  }

  readFloat64(name: string): Float64Array {
    return this.shardOf(name).readFloat64(name);
  }

  readFloat64Range(name: string, first: number, count: number, out?: Float64Array): Float64Array {
    return this.shardOf(name).readFloat64Range(name, first, count, out);
  }

  readInt32(name: string): Int32Array {
    return this.shardOf(name).readInt32(name);
  }

  /** Close every shard. Idempotent. */
  close(): void {
    for (const s of this.shards) s.close();
  }
}
