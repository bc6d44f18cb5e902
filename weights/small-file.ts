/**
 * Reading a small text file (an index, a config) without trusting what the path names: it must be
 * a regular file (a FIFO would block forever, /dev/zero never ends) no larger than a bound, and it
 * is opened non-blocking so that even a FIFO cannot stall the open itself.
 */
import * as fs from 'node:fs';

export class SmallFileError extends Error {
  override name = 'SmallFileError';
}

/** Reads `file` as UTF-8; throws SmallFileError (one line, naming the file) when it is not a regular file of at most `maxBytes`. */
export function readSmallFile(file: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw new SmallFileError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? err})`, { cause: err });
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SmallFileError(`${file}: not a regular file (a ${kindOf(st)})`);
    if (st.size > maxBytes) throw new SmallFileError(`${file}: ${st.size} bytes, more than the ${maxBytes}-byte limit for this file`);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const got = fs.readSync(fd, buf, done, buf.length - done, done);
      if (got <= 0) break;
      done += got;
    }
    return buf.subarray(0, done).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'FIFO';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isSocket()) return 'socket';
  return 'special file';
}
