/**
 * Writing .safetensors files, atomically and without holding the whole file
 * in memory.
 *
 * `planSafetensors` computes the header and the layout from names, dtypes
 * and shapes alone. `SafetensorsWriter` writes that header to a temporary
 * file next to the target, then accepts each tensor's data in layout order
 * (a tensor may arrive in several pieces), and on `finish()` fsyncs and
 * renames the temporary file onto the target. Any error aborts: the
 * temporary file is removed and the target is never left partial (an
 * existing target stays as it was). `writeSafetensors` is the one-call form.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DTYPE_SIZES, isDType, type DType } from './dtypes.js';
import { canEncode, elementsIn, encodeElements, type TensorData } from './encode.js';
import { WeightsError } from './safetensors.js';

/** A file-system failure as a one-line WeightsError naming the target file. */
function fileError(target: string, what: string, err: unknown): WeightsError {
  const e = err as NodeJS.ErrnoException;
  return new WeightsError(`${target}: ${what} (${e.code ?? e.message ?? String(err)})`);
}

export type { TensorData } from './encode.js';

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

export interface TensorToWrite extends TensorSpec {
  data: TensorData;
}

export interface PlannedTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Offsets relative to the data section, as in the header's data_offsets. */
  readonly begin: number;
  readonly end: number;
  readonly byteLength: number;
}

export interface SafetensorsLayout {
  /** The 8-byte length prefix followed by the space-padded JSON header. */
  readonly prefix: Uint8Array;
  /** Length of the JSON header including padding (a multiple of 8). */
  readonly headerLength: number;
  readonly tensors: readonly PlannedTensor[];
  /** Size of the data section = sum of tensor byte lengths. */
  readonly dataBytes: number;
  /** Size of the complete file. */
  readonly fileSize: number;
}

/** Largest single fs.writeSync. */
const WRITE_CHUNK_BYTES = 64 * 1024 * 1024;

function shapeString(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Validate specs and compute the header and offsets: tensors are laid out
 * contiguously in the given order; the JSON header (`__metadata__` first when
 * `metadata` is given, then the tensors in order) is padded with spaces to a
 * multiple of 8 bytes. `file` only names the target in error messages.
 */
export function planSafetensors(specs: readonly TensorSpec[], metadata?: Readonly<Record<string, string>>,
  file = '(safetensors)'): SafetensorsLayout {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const m: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new WeightsError(`${file}: metadata value for key "${k}" must be a string, got ${typeof v}`);
      }
      m.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`"__metadata__":{${m.join(',')}}`);
  }
  const seen = new Set<string>();
  const tensors: PlannedTensor[] = [];
  let offset = 0;
  for (const spec of specs) {
    const { name, dtype, shape } = spec;
    if (typeof name !== 'string' || name === '' || name === '__metadata__') {
      throw new WeightsError(`${file}: invalid tensor name ${JSON.stringify(name)}`);
    }
    if (seen.has(name)) throw new WeightsError(`${file}: duplicate tensor name "${name}"`);
    seen.add(name);
    if (!isDType(dtype)) throw new WeightsError(`${file}: tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new WeightsError(`${file}: tensor "${name}": shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    let bytes = DTYPE_SIZES[dtype];
    for (const d of shape) bytes *= d;
    if (!Number.isSafeInteger(bytes)) throw new WeightsError(`${file}: tensor "${name}": shape ${shapeString(shape)} is too large`);
    const t: PlannedTensor = Object.freeze({
      name, dtype, shape: Object.freeze(shape.slice()), begin: offset, end: offset + bytes, byteLength: bytes,
    });
    tensors.push(t);
    parts.push(`${JSON.stringify(name)}:{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(t.shape)},` +
      `"data_offsets":[${t.begin},${t.end}]}`);
    offset += bytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const prefix = Buffer.alloc(8 + headerLength, 0x20); // pad with spaces
  prefix.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(prefix, 8);
  return Object.freeze({
    prefix: new Uint8Array(prefix.buffer, prefix.byteOffset, prefix.length),
    headerLength,
    tensors: Object.freeze(tensors),
    dataBytes: offset,
    fileSize: 8 + headerLength + offset,
  });
}

type WriterState = 'open' | 'finished' | 'aborted';

/**
 * Streaming, atomic writer. Usage:
 *
 *   const w = SafetensorsWriter.create(target, specs, metadata);
 *   for (const s of specs) w.write(s.name, dataFor(s));   // pieces allowed
 *   w.finish();
 *
 * Any error thrown by `write` or `finish` aborts the writer (temporary file
 * removed) before it propagates; call `abort()` yourself when giving up for
 * other reasons.
 */
export class SafetensorsWriter {
  /** Elements per conversion step when encoding (bounds the temporary buffer to 32 MB). Tunable for tests. */
  static encodeChunkElements = 4 * 1024 * 1024;
  /** Called with the temporary file complete, just before the rename (the kill tests hold a run there). */
  static beforeRename: (() => void) | undefined;

  readonly path: string;
  readonly tempPath: string;
  readonly layout: SafetensorsLayout;
  private fd: number | null;
  private state: WriterState = 'open';
  private position = 0;
  private index = 0;
  /** Bytes of tensors[index] written so far. */
  private partial = 0;

  private constructor(target: string, tempPath: string, fd: number, layout: SafetensorsLayout) {
    this.path = target;
    this.tempPath = tempPath;
    this.fd = fd;
    this.layout = layout;
  }

  /** Validate the plan, create the temporary file (exclusively) and write the header. */
  static create(target: string, specs: readonly TensorSpec[], metadata?: Readonly<Record<string, string>>): SafetensorsWriter {
    const layout = planSafetensors(specs, metadata, target);
    const tempPath = `${target}.tmp-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    let fd: number;
    try {
      fd = fs.openSync(tempPath, 'wx');
    } catch (err) {
      throw fileError(target, 'cannot create', err);
    }
    const w = new SafetensorsWriter(target, tempPath, fd, layout);
    w.guard(() => {
      w.writeRaw(layout.prefix);
      w.skipEmpty();
    });
    return w;
  }

  /** Name of the tensor the next `write` must be for (undefined when all are written). */
  get nextTensor(): string | undefined {
    return this.layout.tensors[this.index]?.name;
  }

  /**
   * Append data for tensor `name`, which must be the current tensor in layout
   * order. The data is converted to the tensor's dtype (see `canEncode` in
   * dtypes.ts); a tensor may be written in several pieces, as long as the
   * total matches its shape. A Uint8Array is raw little-endian bytes.
   * Zero-byte tensors need no write (the cursor skips them); an empty write
   * for one is accepted anywhere.
   */
  write(name: string, data: TensorData): void {
    this.guard(() => {
      if (this.state !== 'open') throw new WeightsError(`${this.path}: writer is ${this.state} (writing tensor "${name}")`);
      const empty = this.layout.tensors.find((e) => e.name === name && e.byteLength === 0);
      if (empty) {
        // zero-byte tensors need no data and are skipped by the cursor; accept an empty write in any order
        if (data.length !== 0) {
          throw new WeightsError(`${this.path}: tensor "${name}": too much data: ${empty.dtype} ${shapeString(empty.shape)} is empty`);
        }
        return;
      }
      const t = this.layout.tensors[this.index];
      if (!t) throw new WeightsError(`${this.path}: tensor "${name}": all planned tensors are already written`);
      if (name !== t.name) {
        throw new WeightsError(`${this.path}: tensor "${name}" written out of order: expected tensor "${t.name}" next`);
      }
      if (!canEncode(data, t.dtype)) {
        throw new WeightsError(`${this.path}: tensor "${name}": cannot write a ${data.constructor.name} as ${t.dtype}`);
      }
      const esize = DTYPE_SIZES[t.dtype];
      const raw = data instanceof Uint8Array;
      const bytes = raw ? data.length : data.length * esize;
      if (!raw && this.partial % esize !== 0) {
        throw new WeightsError(`${this.path}: tensor "${name}": typed data after a partial element of raw bytes`);
      }
      if (this.partial + bytes > t.byteLength) {
        throw new WeightsError(
          `${this.path}: tensor "${name}": too much data: ${t.dtype} ${shapeString(t.shape)} needs ${t.byteLength} bytes, ` +
          `got ${this.partial + bytes}`);
      }
      if (raw) {
        this.writeRaw(data);
      } else {
        const step = Math.max(1, SafetensorsWriter.encodeChunkElements);
        for (let i = 0; i < data.length; i += step) {
          const piece = data.subarray(i, Math.min(data.length, i + step)) as TensorData;
          this.writeRaw(encodeElements(piece, t.dtype));
        }
      }
      this.partial += bytes;
      if (this.partial === t.byteLength) {
        this.index++;
        this.partial = 0;
        this.skipEmpty();
      }
    });
  }

  /** Check every tensor is complete, fsync, close and rename onto the target. */
  finish(): void {
    this.guard(() => {
      if (this.state !== 'open') throw new WeightsError(`${this.path}: writer is ${this.state}`);
      const t = this.layout.tensors[this.index];
      if (t) {
        throw new WeightsError(`${this.path}: tensor "${t.name}" incomplete: ${this.partial} of ${t.byteLength} bytes written`);
      }
      if (this.position !== this.layout.fileSize) {
        throw new WeightsError(`${this.path}: internal error: wrote ${this.position} bytes, planned ${this.layout.fileSize}`);
      }
      const fd = this.fd!;
      fs.fsyncSync(fd);
      this.fd = null;
      fs.closeSync(fd);
      SafetensorsWriter.beforeRename?.();
      fs.renameSync(this.tempPath, this.path);
      this.state = 'finished';
      syncDirectory(path.dirname(this.path));
    });
  }

  /** Close and remove the temporary file. Idempotent; a no-op after a successful `finish`. */
  abort(): void {
    if (this.state === 'finished') return;
    this.state = 'aborted';
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; nothing more to do
      }
    }
    try {
      fs.unlinkSync(this.tempPath);
    } catch {
      // already gone
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.abort();
      throw err instanceof WeightsError ? err : fileError(this.path, 'cannot write', err);
    }
  }

  private skipEmpty(): void {
    while (this.layout.tensors[this.index]?.byteLength === 0) this.index++;
  }

  private writeRaw(bytes: Uint8Array): void {
    const fd = this.fd!;
    let done = 0;
    while (done < bytes.length) {
      const n = fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, WRITE_CHUNK_BYTES), this.position);
      done += n;
      this.position += n;
    }
  }
}

/** Best-effort fsync of a directory so that a rename survives a crash (not possible everywhere). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // unsupported on this platform / filesystem
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Write `tensors` to `path` as one .safetensors file, atomically (temporary
 * file in the same directory, fsync, rename). Names, dtypes, shapes, data
 * types and lengths are all checked before anything is created. Data is
 * converted tensor by tensor in bounded pieces; no whole-file buffer is built.
 */
export function writeSafetensors(filePath: string, tensors: TensorToWrite[],
  metadata?: Readonly<Record<string, string>>): void {
  const layout = planSafetensors(tensors, metadata, filePath);
  tensors.forEach((t, i) => {
    const planned = layout.tensors[i]!;
    if (!canEncode(t.data, t.dtype)) {
      throw new WeightsError(`${filePath}: tensor "${t.name}": cannot write a ${t.data.constructor.name} as ${t.dtype}`);
    }
    const have = elementsIn(t.data, t.dtype);
    const want = planned.byteLength / DTYPE_SIZES[t.dtype];
    if (have !== want) {
      const what = t.data instanceof Uint8Array ? `${t.data.length} bytes` : `${t.data.length} elements`;
      throw new WeightsError(`${filePath}: tensor "${t.name}": data length mismatch: ${t.dtype} ` +
        `${shapeString(planned.shape)} needs ${want} elements (${planned.byteLength} bytes), data has ${what}`);
    }
  });
  const w = SafetensorsWriter.create(filePath, tensors, metadata);
  for (const t of tensors) w.write(t.name, t.data);
  w.finish();
}
