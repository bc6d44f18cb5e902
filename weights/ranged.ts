/**
 * A safetensors file read through ranged reads of any byte source: a `Blob` (a `File` the user
 * picked: `Blob.slice`), a URL (`fetch` with an HTTP `Range` header), or Node's file system
 * (./fs-range.ts). The file is never held as one buffer: `open` reads the 8-byte prefix and the
 * header, each tensor is read from its own byte range when asked for. The header is parsed and
 * validated by the same code as the Node reader's (./safetensors-header.ts).
 *
 * This module imports nothing from Node: it is part of the browser build (src/browser/).
 */
import { type ParsedHeader, type TensorInfo, WeightsError, copyInfo, headerLength, parseHeader, short } from './safetensors-header.js';

/** Bytes [offset, offset + length) of one file, however it is stored. */
export interface RangeReader {
  /** How errors name the file: a path, a URL, a File's name. */
  readonly name: string;
  /** Bytes in the file. */
  readonly size: number;
  /** Exactly `length` bytes from `offset` (a fresh array); rejects with a WeightsError naming the file otherwise. */
  readRange(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void> | void;
}

function exact(name: string, offset: number, length: number, got: Uint8Array): Uint8Array {
  if (got.length !== length) {
    throw new WeightsError(`${name}: short read: expected ${length} bytes at offset ${offset}, got ${got.length}; file truncated?`);
  }
  return got;
}

/** A `Blob` or `File`: each range is `blob.slice(begin, end).arrayBuffer()`, only those bytes read. */
export function blobReader(blob: Blob, name = (blob as { name?: string }).name ?? 'blob'): RangeReader {
  return {
    name,
    size: blob.size,
    async readRange(offset, length) {
      return exact(name, offset, length, new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()));
    },
  };
}

/** `bytes a-b/SIZE` of a 206 reply: the file's size. */
function totalOf(contentRange: string | null): number | undefined {
  const m = /\/(\d+)\s*$/.exec(contentRange ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * A URL served with HTTP range requests (any static file server, a CDN, the Hugging Face hub's
 * resolve URLs): the size comes from the first range's `Content-Range`; a server that ignores
 * `Range` (status 200: it would send the whole file) is refused rather than read whole.
 */
export async function urlReader(url: string | URL, init: RequestInit = {}): Promise<RangeReader> {
  const name = String(url);
  const get = async (offset: number, length: number): Promise<Response> => {
    let res: Response;
    try {
      const headers = new Headers(init.headers);
      headers.set('Range', `bytes=${offset}-${offset + length - 1}`);
      res = await fetch(url, { ...init, headers });
    } catch (err) {
      throw new WeightsError(`${name}: cannot fetch (${(err as Error).message})`, { cause: err });
    }
    if (res.status !== 206) {
      await res.body?.cancel();
      throw new WeightsError(res.status === 200
        ? `${name}: the server ignored the Range header (status 200, the whole file); serve it with range requests`
        : `${name}: HTTP status ${res.status} for bytes ${offset}-${offset + length - 1}`);
    }
    return res;
  };
  const first = await get(0, 8);
  const size = totalOf(first.headers.get('Content-Range'));
  if (size === undefined) throw new WeightsError(`${name}: the range reply names no file size (Content-Range ${first.headers.get('Content-Range')})`);
  const prefix = new Uint8Array(await first.arrayBuffer());
  return {
    name,
    size,
    async readRange(offset, length) {
      if (length === 0) return new Uint8Array(0);
      if (offset === 0 && length === prefix.length) return prefix.slice();
      return exact(name, offset, length, new Uint8Array(await (await get(offset, length)).arrayBuffer()));
    },
  };
}

/** The tensors of one safetensors file, each read on demand from its byte range. */
export class RangedSafetensors {
  readonly metadata: Readonly<Record<string, string>>;
  private readonly byName: Map<string, TensorInfo>;
  private readonly ordered: readonly TensorInfo[];

  private constructor(readonly source: RangeReader, readonly headerLength: number, parsed: ParsedHeader) {
    this.metadata = Object.freeze(parsed.metadata);
    this.ordered = Object.freeze(parsed.tensors);
    this.byName = new Map(parsed.tensors.map((t) => [t.name, t]));
  }

  /** Reads and validates the prefix and the header (two ranged reads); nothing else. */
  static async open(source: RangeReader): Promise<RangedSafetensors> {
    const { name, size } = source;
    const prefix = size >= 8 ? await source.readRange(0, 8) : new Uint8Array(8);
    const n = headerLength(name, size, prefix);
    return new RangedSafetensors(source, n, parseHeader(name, size, await source.readRange(8, n)));
  }

  get dir(): string {
    return this.source.name;
  }

  /** Tensor names in data-offset order. */
  names(): string[] {
    return this.ordered.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new WeightsError(`${this.source.name}: no tensor "${short(name)}" (file has ${this.byName.size} tensors)`);
    return copyInfo(t);
  }

  /** The raw little-endian bytes of one tensor: one ranged read of exactly its bytes. */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    try {
      return await this.source.readRange(t.begin, t.byteLength);
    } catch (err) {
      if (err instanceof WeightsError) throw new WeightsError(`${err.message} (tensor "${short(name)}")`, { cause: err });
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}
