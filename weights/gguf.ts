/**
 * A strict reader for GGUF files (ggml's single-file checkpoint format, version 2 and 3):
 *
 *   "GGUF"  u32 version  u64 tensor_count  u64 kv_count
 *   kv_count x   { string key, u32 value_type, value }          (little-endian throughout)
 *   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to general.alignment (default 32), then the tensor data; offsets are relative to it
 *
 * A string is u64 length + UTF-8 bytes; an array is u32 element type + u64 count + elements.
 * ggml's ne lists the fastest-varying axis first; `shape` here is numpy's order (ne reversed).
 *
 * Why not @huggingface/gguf: it reads through fetch (async, made for remote files), does not
 * check tensor bounds, overlaps or alignment, and decodes no quantized blocks; this project's
 * readers are synchronous over node:fs and refuse a malformed file with one line naming it.
 * Everything is bounded before it is allocated: every count and length against the bytes left in
 * the file, strings at 16 MiB, names at 64 bytes (ggml's GGML_MAX_NAME), arrays at one level.
 */
import * as fs from 'node:fs';
import { WeightsError } from './safetensors.js';
import { GGML_TYPES, type GgmlType, UNSUPPORTED_TYPE_NAMES } from './quants/index.js';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** numpy order (ggml's ne reversed). */
  shape: number[];
  type: GgmlType;
  /** Absolute byte offset in the file. */
  offset: number;
  byteLength: number;
}

const MAX_STRING = 16 * 2 ** 20;
const MAX_NAME = 64;
const MAX_DIMS = 4;
const DEFAULT_ALIGNMENT = 32;

/** Reads the header sequentially, pulling bytes from the file as needed. */
class Cursor {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  constructor(private readonly fd: number, readonly size: number, private readonly file: string) {}
  fail(msg: string): never {
    throw new WeightsError(`${this.file}: not a valid GGUF file: ${msg}`);
  }
  /** n bytes at the cursor; refuses to read past the end of the file. */
  take(n: number, what: string): Buffer {
    if (n > this.size - this.pos) this.fail(`${what} at byte ${this.pos} runs past the end of the file (${this.size} bytes)`);
    const end = this.pos + n;
    if (this.pos < this.bufStart || end > this.bufStart + this.buf.length) {
      const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
      this.buf = Buffer.alloc(len);
      fs.readSync(this.fd, this.buf, 0, len, this.pos);
      this.bufStart = this.pos;
    }
    const out = this.buf.subarray(this.pos - this.bufStart, end - this.bufStart);
    this.pos = end;
    return out;
  }
  u32(what: string): number {
    return this.take(4, what).readUInt32LE(0);
  }
  /** A u64 that must fit a JS number exactly. */
  u64(what: string): number {
    const v = this.take(8, what).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is too large`);
    return Number(v);
  }
  string(what: string, max = MAX_STRING): string {
    const n = this.u64(`${what} length`);
    if (n > max) this.fail(`${what} is ${n} bytes long (limit ${max})`);
    const b = this.take(n, what);
    const s = b.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(b)) this.fail(`${what} is not valid UTF-8`);
    return s;
  }
}

// value types: size in bytes and reader
const SCALARS: Record<number, [number, (b: Buffer) => GgufValue]> = {
  0: [1, (b) => b.readUInt8(0)], 1: [1, (b) => b.readInt8(0)], 2: [2, (b) => b.readUInt16LE(0)], 3: [2, (b) => b.readInt16LE(0)],
  4: [4, (b) => b.readUInt32LE(0)], 5: [4, (b) => b.readInt32LE(0)], 6: [4, (b) => b.readFloatLE(0)],
  10: [8, (b) => b.readBigUInt64LE(0)], 11: [8, (b) => b.readBigInt64LE(0)], 12: [8, (b) => b.readDoubleLE(0)],
};
const BOOL = 7;
const STRING = 8;
const ARRAY = 9;

function readValue(c: Cursor, type: number, key: string, nested: boolean): GgufValue {
  const scalar = SCALARS[type];
  if (scalar) return scalar[1](c.take(scalar[0], `value of ${key}`));
  if (type === BOOL) {
    const b = c.take(1, `value of ${key}`)[0];
    if (b > 1) c.fail(`${key}: bool value ${b} is neither 0 nor 1`);
    return b === 1;
  }
  if (type === STRING) return c.string(`value of ${key}`);
  if (type === ARRAY && !nested) {
    const et = c.u32(`${key} array type`);
    const n = c.u64(`${key} array length`);
    const min = SCALARS[et]?.[0] ?? (et === BOOL ? 1 : et === STRING ? 8 : 0);
    if (min === 0) c.fail(`${key}: array of value type ${et} (arrays hold scalars or strings)`);
    if (n * min > c.size - c.pos) c.fail(`${key}: array of ${n} elements runs past the end of the file`);
    const out: GgufValue[] = [];
    for (let i = 0; i < n; i++) out.push(readValue(c, et, `${key}[${i}]`, true));
    return out;
  }
  return c.fail(`${key}: unknown value type ${type}`);
}

export class GgufFile {
  readonly path: string;
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  private readonly byName: Map<string, GgufTensorInfo>;
  private fd: number | null;

  private constructor(path: string, fd: number, version: number, metadata: Map<string, GgufValue>, tensors: GgufTensorInfo[]) {
    this.path = path;
    this.fd = fd;
    this.version = version;
    this.metadata = metadata;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  /** Opens and validates the whole header and the tensor table; tensor bytes are read on demand. */
  static open(path: string): GgufFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw new WeightsError(`${path}: cannot open (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new WeightsError(`${path}: not a regular file`);
      const c: Cursor = new Cursor(fd, st.size, path);
      if (st.size < 24 || c.take(4, 'magic').toString('latin1') !== 'GGUF') c.fail('no "GGUF" magic');
      const version = c.u32('version');
      if (version !== 2 && version !== 3) c.fail(`version ${version} (this reader knows 2 and 3)`);
      const nTensors = c.u64('tensor count');
      const nKv = c.u64('metadata count');
      // each kv takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor 8 + 4 + 8 + 4 + 8
      if (nKv * 13 > st.size || nTensors * 32 > st.size) c.fail(`${nKv} metadata entries and ${nTensors} tensors cannot fit in ${st.size} bytes`);
      const metadata = new Map<string, GgufValue>();
      for (let i = 0; i < nKv; i++) {
        const key = c.string(`metadata key ${i}`, 65536);
        if (key === '') c.fail(`metadata key ${i} is empty`);
        if (metadata.has(key)) c.fail(`metadata key "${key}" appears twice`);
        metadata.set(key, readValue(c, c.u32(`type of ${key}`), key, false));
      }
      const alignment = metadata.get('general.alignment') ?? DEFAULT_ALIGNMENT;
      if (typeof alignment !== 'number' || !Number.isInteger(alignment) || alignment < 1 || alignment & (alignment - 1)) {
        c.fail(`general.alignment ${String(alignment)} is not a power of two`);
      }
      const infos: { name: string; shape: number[]; type: GgmlType; rel: number; byteLength: number }[] = [];
      const names = new Set<string>();
      for (let i = 0; i < nTensors; i++) {
        const name = c.string(`tensor ${i} name`, MAX_NAME);
        if (name === '' || names.has(name)) c.fail(`tensor ${i}: name "${name}" is ${name === '' ? 'empty' : 'used twice'}`);
        names.add(name);
        const nd = c.u32(`${name} n_dims`);
        if (nd < 1 || nd > MAX_DIMS) c.fail(`${name}: ${nd} dimensions (1 to ${MAX_DIMS})`);
        const ne: number[] = [];
        for (let k = 0; k < nd; k++) ne.push(c.u64(`${name} ne[${k}]`));
        const typeId = c.u32(`${name} type`);
        const type = GGML_TYPES.get(typeId);
        if (!type) {
          const known = UNSUPPORTED_TYPE_NAMES.get(typeId);
          c.fail(`${name}: ${known ? `type ${known} is not supported` : `unknown ggml type ${typeId}`} (supported: ${[...GGML_TYPES.values()].map((t) => t.name).join(', ')})`);
        }
        const rel = c.u64(`${name} offset`);
        const count = ne.reduce((a, b) => a * b, 1);
        if (!Number.isSafeInteger(count) || count > st.size * 8) c.fail(`${name}: ${ne.join('x')} elements cannot fit in the file`);
        if (ne[0] % type.blockElems) c.fail(`${name}: its first dimension ${ne[0]} is not a multiple of ${type.name}'s block of ${type.blockElems}`);
        if (rel % alignment) c.fail(`${name}: offset ${rel} is not a multiple of the alignment ${alignment}`);
        infos.push({ name, shape: ne.slice().reverse(), type, rel, byteLength: (count / type.blockElems) * type.blockBytes });
      }
      const dataStart = Math.ceil(c.pos / alignment) * alignment;
      const tensors = infos.map((t) => ({ name: t.name, shape: t.shape, type: t.type, offset: dataStart + t.rel, byteLength: t.byteLength }));
      const sorted = tensors.slice().sort((a, b) => a.offset - b.offset);
      for (let i = 0; i < sorted.length; i++) {
        const t = sorted[i];
        if (t.offset + t.byteLength > st.size) c.fail(`${t.name}: bytes ${t.offset}..${t.offset + t.byteLength} run past the end of the file (${st.size} bytes)`);
        if (i > 0 && sorted[i - 1].offset + sorted[i - 1].byteLength > t.offset) c.fail(`tensors ${sorted[i - 1].name} and ${t.name} overlap`);
      }
      return new GgufFile(path, fd, version, metadata, tensors);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  tensors(): GgufTensorInfo[] {
    return [...this.byName.values()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new WeightsError(`${this.path}: no tensor "${name}"`);
    return t;
  }

  /** The tensor's stored bytes. */
  readRaw(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === null) throw new WeightsError(`${this.path}: file is closed`);
    const buf = new Uint8Array(t.byteLength);
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, t.offset + done);
      if (n === 0) throw new WeightsError(`${this.path}: ${name}: file ended early (was it truncated?)`);
      done += n;
    }
    return buf;
  }

  /** The tensor dequantized to float32, exactly as ggml does. */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    t.type.decode(this.readRaw(name), n, out, 0);
    return out;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
