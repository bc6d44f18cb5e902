/**
 * The safetensors header, parsed and validated: the one copy, used by the Node file reader
 * (./safetensors.ts, positioned reads through node:fs) and the ranged reader (./ranged.ts: a Blob,
 * a URL or any `RangeReader`). Nothing here reads a file: callers hand in the bytes.
 *
 * Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON header, then the data
 * section. The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}`
 * (offsets relative to the data section) plus an optional `__metadata__` object of string -> string.
 * Validation follows the reference Rust `safetensors` crate.
 */
import { DTYPE_SIZES, isDType, type DType } from './dtypes.js';
import { HeaderJsonError, describeJson, JsonNumber, type JsonValue, parseHeaderJson } from './header-json.js';

/** Every problem with a weights file, index or write. One-line message naming the file (and tensor). */
export class WeightsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeightsError';
  }
}

/** Largest header accepted, as in the Rust crate. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  /** A fresh copy per `info()` call: callers may keep or modify it. */
  readonly shape: number[];
  /** Path of the file holding the tensor, as given to `SafetensorsFile.open`. */
  readonly file: string;
  /** Absolute byte offset of the first byte in `file` (8 + header length + data_offsets[0]). */
  readonly begin: number;
  /** Absolute byte offset one past the last byte in `file`. */
  readonly end: number;
  readonly byteLength: number;
}

const describe = (v: unknown) => describeJson(v);

/** A name as quoted in an error: at most 200 characters (names may be 4096; a message quotes two). */
export function short(name: string): string {
  return name.length > 200 ? `${name.slice(0, 200)}...(${name.length} characters)` : name;
}

/** Collapse whitespace (JSON.parse messages may quote input containing newlines). */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Largest element count (u64) the Rust crate can represent; a shape whose running product passes it is refused. */
const U64_MAX = (1n << 64n) - 1n;

/** Element count of `shape`, refusing (as the Rust crate's checked product does) any prefix product past u64. */
function elementCount(shape: number[]): bigint | undefined {
  let n = 1n;
  for (const d of shape) {
    n *= BigInt(d);
    if (n > U64_MAX) return undefined;
  }
  return n;
}

/** A canonical non-negative integer (no fraction, exponent or sign) within 2^53 - 1, else undefined. */
function index(v: JsonValue | undefined): number | undefined {
  return v instanceof JsonNumber ? v.asIndex() : undefined;
}

/** Header JSON as its source-like text (numbers as written), for error messages; at most 80 characters. */
function plain(v: JsonValue | undefined): string {
  const out: string[] = [];
  let len = 0;
  const emit = (t: string) => {
    out.push(t);
    len += t.length;
  };
  const walk = (x: JsonValue | undefined): void => {
    if (len > 80) return;
    if (x instanceof JsonNumber) emit(x.text);
    else if (x instanceof Map) {
      emit('{');
      let first = true;
      for (const [k, y] of x) {
        if (len > 80) break;
        emit(`${first ? '' : ','}${JSON.stringify(k.slice(0, 80))}:`);
        first = false;
        walk(y);
      }
      emit('}');
    } else if (Array.isArray(x)) {
      emit('[');
      x.forEach((y, i) => {
        if (len > 80) return;
        if (i > 0) emit(',');
        walk(y);
      });
      emit(']');
    } else emit(x === undefined ? 'undefined' : JSON.stringify(typeof x === 'string' ? x.slice(0, 80) : x));
  };
  walk(v);
  const s = out.join('');
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** Sorted by data offsets (begin, then end); ties keep header order. */
  tensors: TensorInfo[];
}

/**
 * Validate a parsed header against the data section size. `dataStart` is the
 * absolute offset of the data section (8 + header length).
 */
export function validateHeader(file: string, header: JsonValue, dataStart: number, dataLength: number): ParsedHeader {
  if (!(header instanceof Map)) {
    throw new WeightsError(`${file}: header is not a JSON object (got ${Array.isArray(header) ? 'an array' : (plain(header))})`);
  }
  const metadata: Record<string, string> = {};
  type Raw = { name: string; dtype: DType; shape: number[]; b: number; e: number; order: number };
  const raws: Raw[] = [];
  for (const [name, entry] of header) {
    if (name === '__metadata__') {
      if (entry === null) continue; // Option<HashMap> in the Rust crate: null is no metadata
      if (!(entry instanceof Map)) {
        throw new WeightsError(`${file}: __metadata__ must be an object of string values, got ${(plain(entry))}`);
      }
      for (const [k, v] of entry) {
        if (typeof v !== 'string') {
          throw new WeightsError(`${file}: __metadata__ value for key "${k}" must be a string, got ${(plain(v))}`);
        }
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const where = `${file}: tensor "${short(name)}"`;
    if (!(entry instanceof Map)) throw new WeightsError(`${where}: header entry is not an object (${(plain(entry))})`);
    const dtype = entry.get('dtype');
    const rawShape = entry.get('shape');
    const rawOffsets = entry.get('data_offsets');
    if (!isDType(dtype)) {
      throw new WeightsError(`${where}: unknown dtype ${(plain(dtype))}`);
    }
    const shape = Array.isArray(rawShape) ? rawShape.map(index) : undefined;
    if (!shape || !shape.every((d) => d !== undefined)) {
      throw new WeightsError(`${where}: shape must be an array of canonical non-negative integers, got ${(plain(rawShape))}`);
    }
    const offsets = Array.isArray(rawOffsets) ? rawOffsets.map(index) : undefined;
    if (!offsets || offsets.length !== 2 || !offsets.every((d) => d !== undefined)) {
      throw new WeightsError(`${where}: data_offsets must be [begin, end] canonical non-negative integers, got ${(plain(rawOffsets))}`);
    }
    const [b, e] = offsets as [number, number];
    if (b > e) throw new WeightsError(`${where}: data_offsets [${b},${e}] has begin > end`);
    const count = elementCount(shape as number[]);
    if (count === undefined) {
      throw new WeightsError(`${where}: shape ${(plain(rawShape))} has more elements than a 64-bit count holds`);
    }
    const bytes = Number(count) * DTYPE_SIZES[dtype];
    if (!Number.isSafeInteger(bytes)) {
      throw new WeightsError(`${where}: shape ${(plain(rawShape))} of ${dtype} is too large (byte size overflows)`);
    }
    if (bytes !== e - b) {
      throw new WeightsError(
        `${where}: dtype/shape mismatch: ${dtype} ${(plain(rawShape))} needs ${bytes} bytes but data_offsets [${b},${e}] span ${e - b}`);
    }
    raws.push({ name, dtype, shape: shape as number[], b, e, order: raws.length });
  }

  raws.sort((x, y) => x.b - y.b || x.e - y.e || x.order - y.order);

  let expected = 0;
  let prev: Raw | undefined;
  for (const r of raws) {
    if (r.b < expected) {
      const p = prev!;
      throw new WeightsError(
        `${file}: tensor "${short(r.name)}" data_offsets [${r.b},${r.e}] overlap tensor "${short(p.name)}" data_offsets [${p.b},${p.e}]`);
    }
    if (r.b > expected) {
      throw new WeightsError(prev
        ? `${file}: gap in the data section: bytes [${expected},${r.b}) between tensor "${short(prev.name)}" and tensor "${short(r.name)}" belong to no tensor`
        : `${file}: gap in the data section: bytes [0,${r.b}) before tensor "${short(r.name)}" belong to no tensor`);
    }
    expected = r.e;
    prev = r;
  }
  if (expected > dataLength) {
    const first = raws.find((r) => r.e > dataLength)!;
    throw new WeightsError(
      `${file}: truncated: expected ${expected} bytes of data, file has ${dataLength}; ` +
      `tensor "${short(first.name)}": data_offsets [${first.b},${first.e}] end past the data section (${dataLength} bytes); file truncated?`);
  }
  if (expected < dataLength) {
    throw new WeightsError(
      `${file}: data section is ${dataLength} bytes but the tensors cover only ${expected}: ${dataLength - expected} trailing bytes`);
  }

  const tensors = raws.map((r): TensorInfo => Object.freeze({
    name: r.name,
    dtype: r.dtype,
    shape: r.shape,
    file,
    begin: dataStart + r.b,
    end: dataStart + r.e,
    byteLength: r.e - r.b,
  }));
  return { metadata, tensors };
}

/**
 * The header length N from the file's first 8 bytes, checked against the file's `size`
 * (the caller then reads bytes [8, 8 + N) and hands them to `parseHeader`).
 */
export function headerLength(path: string, size: number, prefix: Uint8Array): number {
  if (size < 8) {
    throw new WeightsError(`${path}: file is ${size} bytes, too short for a safetensors file (at least 8)`);
  }
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 === 0n) throw new WeightsError(`${path}: header length is 0; not a safetensors file`);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new WeightsError(
      `${path}: header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit; not a safetensors file?`);
  }
  const n = Number(n64);
  if (8 + n > size) {
    throw new WeightsError(
      `${path}: header length ${n} is larger than the file: 8 + ${n} > ${size} bytes; truncated or not a safetensors file?`);
  }
  return n;
}

/** The header's N bytes (file bytes [8, 8 + N)) decoded, parsed and validated against the file's `size`. */
export function parseHeader(path: string, size: number, headerBytes: Uint8Array): ParsedHeader {
  const n = headerBytes.length;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch (err) {
    throw new WeightsError(`${path}: header is not valid UTF-8`, { cause: err });
  }
  // As the Rust crate: the header starts with "{" (no leading whitespace); trailing spaces pad it.
  if (text[0] !== '{') {
    throw new WeightsError(`${path}: header is not a JSON object starting with "{" (got ${describe(text.slice(0, 20))}${/^\s/.test(text) ? ', leading whitespace' : ''}); not a safetensors file?`);
  }
  let json: JsonValue;
  try {
    json = parseHeaderJson(text);
  } catch (err) {
    if (!(err instanceof HeaderJsonError)) throw err;
    throw new WeightsError(`${path}: header is not valid JSON (${err.message})`, { cause: err });
  }
  return validateHeader(path, json, 8 + n, size - 8 - n);
}

/** A fresh copy of a tensor's info (callers may keep or modify its shape). */
export function copyInfo(t: TensorInfo): TensorInfo {
  return { ...t, shape: t.shape.slice() };
}
