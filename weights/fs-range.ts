/**
 * Node's implementation of ./ranged.ts's `RangeReader`: positioned reads of a file through
 * node:fs/promises. (The synchronous Node reader, ./safetensors.ts, reads the same way, with
 * fs.readSync; both parse the header with ./safetensors-header.ts.) Not part of the browser build.
 */
import * as fsp from 'node:fs/promises';
import type { RangeReader } from './ranged.js';
import { WeightsError } from './safetensors-header.js';

export async function fileReader(path: string): Promise<RangeReader> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (err) {
    throw new WeightsError(`${path}: cannot open (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new WeightsError(`${path}: not a regular file`);
  }
  return {
    name: path,
    size: st.size,
    async readRange(offset, length) {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(out, done, length - done, offset + done);
        if (bytesRead <= 0) throw new WeightsError(`${path}: short read: expected ${length} bytes at offset ${offset}, got ${done}; file truncated?`);
        done += bytesRead;
      }
      return out;
    },
    close: () => fh.close(),
  };
}
