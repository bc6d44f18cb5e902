/**
 * Reader for one .safetensors file.
 *
 * Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON header, then the data
 * section. The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}`
 * (offsets relative to the data section) plus an optional `__metadata__` object of string -> string.
 *
 * The file is never read whole: `open` reads the 8-byte prefix and the header with positioned
 * reads and validates them (./safetensors-header.ts, shared with the browser's ranged reader); tensor bytes
 * are read on demand, in bounded chunks, straight from their byte range.
 */
import * as fs from 'node:fs';
import { DTYPE_SIZES, type DType } from './dtypes.js';
import { decodeToFloat32, decodeToFloat64, decodeToInt32 } from './decode.js';
import { type ParsedHeader, type TensorInfo, WeightsError, copyInfo, headerLength, parseHeader, short } from './safetensors-header.js';

export { MAX_HEADER_BYTES, WeightsError, oneLine, type TensorInfo } from './safetensors-header.js';

/** Bytes read per step by readFloat64Range, one buffer for every call. */
const rangeScratch = new Uint8Array(8 * 2 ** 20);

/** Positioned read of exactly `dst.length` bytes at `position`, in bounded chunks; throws on a short read. */
function readFully(fd: number, dst: Uint8Array, position: number, onShort: (got: number) => string): void {
  const chunk = SafetensorsFile.readChunkBytes;
  let done = 0;
  while (done < dst.length) {
    const want = Math.min(dst.length - done, chunk);
    const got = fs.readSync(fd, dst, done, want, position + done);
    if (got <= 0) throw new WeightsError(onShort(done));
    done += got;
  }
}

export class SafetensorsFile {
  /**
   * Bytes per positioned read, and per decode step of the readFloat32/64 and
   * readInt32 conversions (bounding their scratch memory). Must be a positive
   * multiple of 8 and at most 2^31 - 1 (the limit of one fs.readSync).
   * Tunable mainly for tests.
   */
  static readChunkBytes = 64 * 1024 * 1024;

  /** Path as given to `open`. */
  readonly path: string;
  /** The `__metadata__` object ({} when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Length N of the JSON header (bytes 8 .. 8+N). */
  readonly headerLength: number;
  /** Size of the file at open. */
  readonly fileSize: number;
  private fd: number | null;
  private readonly byName: Map<string, TensorInfo>;
  private readonly ordered: readonly TensorInfo[];

  private constructor(path: string, fd: number, fileSize: number, headerLength: number, parsed: ParsedHeader) {
    this.path = path;
    this.fd = fd;
    this.fileSize = fileSize;
    this.headerLength = headerLength;
    this.metadata = Object.freeze(parsed.metadata);
    this.ordered = Object.freeze(parsed.tensors);
    this.byName = new Map(parsed.tensors.map((t) => [t.name, t]));
  }

  /**
   * Open and validate `path`. Reads only the 8-byte prefix and the header.
   * The file descriptor stays open until `close()`.
   */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new WeightsError(`${path}: cannot open (${code})`, { cause: err });
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new WeightsError(`${path}: not a regular file`);
      const size = st.size;
      const prefix = new Uint8Array(8);
      if (size >= 8) readFully(fd, prefix, 0, (got) => `${path}: short read of the 8-byte header length (got ${got})`);
      const n = headerLength(path, size, prefix);
      const headerBytes = new Uint8Array(n);
      readFully(fd, headerBytes, 8, (got) => `${path}: short read of the ${n}-byte header (got ${got})`);
      const parsed = parseHeader(path, size, headerBytes);
      return new SafetensorsFile(path, fd, size, n, parsed);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Tensor names in data-offset order (the order of their bytes in the file), not JSON key order. */
  names(): string[] {
    return this.ordered.map((t) => t.name);
  }

  /** Infos of all tensors (fresh objects), in data-offset order. */
  tensors(): TensorInfo[] {
    return this.ordered.map(copyInfo);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Description of one tensor (a fresh object); throws WeightsError naming tensor and file when absent. */
  info(name: string): TensorInfo {
    return copyInfo(this.infoRef(name));
  }

  private infoRef(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new WeightsError(`${this.path}: no tensor "${short(name)}" (file has ${this.byName.size} tensors)`);
    return t;
  }

  /** Sum of the byte lengths of all tensors (= size of the data section). */
  get totalBytes(): number {
    const last = this.ordered[this.ordered.length - 1];
    return last ? last.end - 8 - this.headerLength : 0;
  }

  get closed(): boolean {
    return this.fd === null;
  }

  private openFd(name: string): number {
    if (this.fd === null) throw new WeightsError(`${this.path}: file is closed (reading tensor "${short(name)}")`);
    return this.fd;
  }

  /** Read bytes [info.begin + rel, info.begin + rel + dst.length) into dst. */
  private readAt(info: TensorInfo, rel: number, dst: Uint8Array): void {
    const fd = this.openFd(info.name);
    const pos = info.begin + rel;
    readFully(fd, dst, pos, (got) =>
      `${this.path}: tensor "${short(info.name)}": short read: expected ${dst.length} bytes at offset ${pos}, got ${got}; file truncated?`);
  }

  /** Bytes [start, start + dst.length) of a tensor read into `dst`: part of a tensor, where the caller keeps it. */
  readRange(name: string, start: number, dst: Uint8Array): void {
    const info = this.infoRef(name);
    if (!(Number.isSafeInteger(start) && start >= 0 && start + dst.length <= info.byteLength)) {
      throw new WeightsError(`${this.path}: tensor "${short(name)}": bytes [${start}, ${start + dst.length}) are outside its ${info.byteLength}`);
    }
    this.readAt(info, start, dst);
  }

  /** The raw little-endian bytes of one tensor (a fresh, aligned array). */
  readBytes(name: string): Uint8Array {
    const info = this.infoRef(name);
    const out = this.alloc(info, Uint8Array, info.byteLength);
    this.readAt(info, 0, out);
    return out;
  }

  /**
   * Read a tensor converted to float32: BF16/F16/F8 exact, F64 rounded to
   * nearest, integer dtypes converted (exact up to 2^24 in magnitude).
   */
  readFloat32(name: string): Float32Array {
    return this.readAs(name, Float32Array, 'F32', decodeToFloat32);
  }

  /** Read a tensor widened exactly to float64 (I64/U64 beyond ±(2^53-1) throw). */
  readFloat64(name: string): Float64Array {
    return this.readAs(name, Float64Array, 'F64', decodeToFloat64);
  }

  /**
   * Elements [first, first + count) of a tensor (row-major order), widened exactly to float64,
   * into `out` when given (reused by the caller: fresh memory is slow to fault in) else a new
   * array: a few rows of a matrix too large to hold whole as float64 (an embedding, a tied head).
   */
  readFloat64Range(name: string, first: number, count: number, out?: Float64Array): Float64Array {
    const info = this.infoRef(name);
    const esize = DTYPE_SIZES[info.dtype];
    const n = info.byteLength / esize;
    if (!(Number.isSafeInteger(first) && Number.isSafeInteger(count) && first >= 0 && count >= 0 && first + count <= n)) {
      throw new WeightsError(`${this.path}: tensor "${info.name}": elements [${first}, ${first + count}) are outside its ${n}`);
    }
    const o = out ?? new Float64Array(count);
    if (o.length < count) throw new WeightsError(`${this.path}: tensor "${info.name}": ${count} elements do not fit an array of ${o.length}`);
    const step = Math.max(1, Math.floor(rangeScratch.length / esize));
    for (let done = 0; done < count; done += step) {
      const bytes = rangeScratch.subarray(0, Math.min(step, count - done) * esize);
      this.readAt(info, (first + done) * esize, bytes);
      decodeToFloat64(info.dtype, bytes, o, done);
    }
    return o;
  }

  /**
   * Read a tensor as int32. I32 as is; other integer dtypes and BOOL converted,
   * with values outside the int32 range an error; float dtypes only when every
   * value is an exact integer in int32 range (else an error naming the element).
   */
  readInt32(name: string): Int32Array {
    return this.readAs(name, Int32Array, 'I32', decodeToInt32);
  }

  /** Read into a new `Out` array: a straight copy when the file holds `native`, else decoded chunk by chunk. */
  private readAs<T extends Float32Array | Float64Array | Int32Array>(
    name: string,
    Out: new (n: number) => T,
    native: DType,
    decode: (dtype: DType, bytes: Uint8Array, out: T, outOffset: number) => T,
  ): T {
    const info = this.infoRef(name);
    const out = this.alloc(info, Out, info.byteLength / DTYPE_SIZES[info.dtype]);
    if (info.dtype === native) {
      this.readAt(info, 0, new Uint8Array(out.buffer));
      return out;
    }
    return this.decodeChunks(info, out, decode);
  }

  /**
   * A fresh array of `length` elements for tensor `info`: a declared size this process cannot
   * allocate (a header may declare a 100 GB tensor) is a WeightsError naming the tensor, not a RangeError.
   */
  private alloc<T>(info: TensorInfo, Arr: new (n: number) => T, length: number): T {
    try {
      return new Arr(length);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      throw new WeightsError(`${this.path}: tensor "${short(info.name)}" (${info.dtype} [${info.shape}], ${info.byteLength} bytes) ` +
        `is too large to read into memory (${err.message})`, { cause: err });
    }
  }

  /** Read the tensor in bounded chunks through one scratch buffer, decoding each into `out`. */
  private decodeChunks<T extends Float32Array | Float64Array | Int32Array>(
    info: TensorInfo,
    out: T,
    decode: (dtype: DType, bytes: Uint8Array, out: T, outOffset: number) => T,
  ): T {
    const esize = DTYPE_SIZES[info.dtype];
    const chunk = Math.max(esize, Math.floor(SafetensorsFile.readChunkBytes / esize) * esize);
    const scratch = new Uint8Array(Math.min(info.byteLength, chunk));
    for (let pos = 0; pos < info.byteLength; pos += chunk) {
      const bytes = scratch.subarray(0, Math.min(chunk, info.byteLength - pos));
      this.readAt(info, pos, bytes);
      try {
        decode(info.dtype, bytes, out, pos / esize);
      } catch (err) {
        if (err instanceof RangeError || err instanceof TypeError) {
          throw new WeightsError(`${this.path}: tensor "${short(info.name)}" (${info.dtype}): ${err.message}`, { cause: err });
        }
        throw err;
      }
    }
    return out;
  }

  /** Close the file descriptor. Idempotent; later reads throw. */
  close(): void {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      fs.closeSync(fd);
    }
  }
}
