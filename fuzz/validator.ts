// An independent judge of safetensors files, written from the format's rules (not from
// weights/safetensors.ts): given a file's bytes, should a reader accept it? The fuzzer compares
// this verdict with the reader's.
//
// The format: 8 bytes little-endian u64 N; N bytes of UTF-8 JSON starting with "{"; then the data.
// The JSON is an object; "__metadata__" (optional) is null or an object of strings; every other
// key names a tensor: {"dtype": one of the known names, "shape": [u64...], "data_offsets":
// [begin, end]} (other fields ignored), integers written canonically (digits, no sign, fraction
// or exponent). The running product of the shape stays within u64; its element count times the
// dtype size is end - begin; sorted by offsets, the tensors tile the data section exactly.
// Duplicate keys are refused anywhere. This project's documented limits come on top: N at most
// 100,000,000 bytes, nesting at most 128 levels, at most 2,000,000 JSON values, keys at most 4096
// UTF-16 units, and integers within 2^53 - 1 (JavaScript's exact range).

export const LIMITS = { headerBytes: 100_000_000, depth: 128, values: 2_000_000, keyUnits: 4096 };

const SIZES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

type V =
  | { t: 'obj'; entries: [string, V][] }
  | { t: 'arr'; items: V[] }
  | { t: 'str'; s: string }
  | { t: 'num'; text: string }
  | { t: 'lit'; v: boolean | null };

class Reject extends Error {}
const no = (why: string): never => {
  throw new Reject(why);
};

/** Recursive descent over the raw bytes (the depth limit bounds the recursion). */
class ByteParser {
  pos = 0;
  values = 0;
  constructor(readonly b: Uint8Array) {}

  ws(): void {
    while (this.pos < this.b.length && (this.b[this.pos] === 32 || this.b[this.pos] === 9 || this.b[this.pos] === 10 || this.b[this.pos] === 13)) this.pos++;
  }

  value(depth: number): V {
    this.ws();
    if (++this.values > LIMITS.values) no('values');
    const c = this.b[this.pos];
    if (c === 0x7b || c === 0x5b) {
      if (depth + 1 > LIMITS.depth) no('depth');
      return c === 0x7b ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === 0x22) return { t: 'str', s: this.string() };
    if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) return this.number();
    for (const [w, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (w.split('').every((ch, k) => this.b[this.pos + k] === ch.charCodeAt(0))) {
        this.pos += w.length;
        return { t: 'lit', v };
      }
    }
    return no('token');
  }

  object(depth: number): V {
    this.pos++;
    const entries: [string, V][] = [];
    const seen = new Set<string>();
    this.ws();
    if (this.b[this.pos] === 0x7d) {
      this.pos++;
      return { t: 'obj', entries };
    }
    for (;;) {
      this.ws();
      if (this.b[this.pos] !== 0x22) no('key');
      const k = this.string();
      if (k.length > LIMITS.keyUnits) no('key length');
      if (seen.has(k)) no('duplicate');
      seen.add(k);
      this.ws();
      if (this.b[this.pos++] !== 0x3a) no('colon');
      entries.push([k, this.value(depth)]);
      this.ws();
      const c = this.b[this.pos++];
      if (c === 0x7d) return { t: 'obj', entries };
      if (c !== 0x2c) no('comma');
    }
  }

  array(depth: number): V {
    this.pos++;
    const items: V[] = [];
    this.ws();
    if (this.b[this.pos] === 0x5d) {
      this.pos++;
      return { t: 'arr', items };
    }
    for (;;) {
      items.push(this.value(depth));
      this.ws();
      const c = this.b[this.pos++];
      if (c === 0x5d) return { t: 'arr', items };
      if (c !== 0x2c) no('comma');
    }
  }

  number(): V {
    const start = this.pos;
    const digit = () => this.b[this.pos] !== undefined && this.b[this.pos]! >= 0x30 && this.b[this.pos]! <= 0x39;
    if (this.b[this.pos] === 0x2d) this.pos++;
    if (this.b[this.pos] === 0x30) this.pos++;
    else if (digit()) while (digit()) this.pos++;
    else no('number');
    if (this.b[this.pos] === 0x2e) {
      this.pos++;
      if (!digit()) no('fraction');
      while (digit()) this.pos++;
    }
    if (this.b[this.pos] === 0x65 || this.b[this.pos] === 0x45) {
      this.pos++;
      if (this.b[this.pos] === 0x2b || this.b[this.pos] === 0x2d) this.pos++;
      if (!digit()) no('exponent');
      while (digit()) this.pos++;
    }
    return { t: 'num', text: String.fromCharCode(...this.b.subarray(start, this.pos)) };
  }

  /** A JSON string from UTF-8 bytes (already known valid UTF-8), as UTF-16 units. */
  string(): string {
    this.pos++;
    const units: number[] = [];
    for (;;) {
      const c = this.b[this.pos];
      if (c === undefined) no('eof in string');
      if (c === 0x22) {
        this.pos++;
        break;
      }
      if (c! < 0x20) no('control');
      if (c === 0x5c) {
        const e = String.fromCharCode(this.b[this.pos + 1] ?? 0);
        this.pos += 2;
        const simple: Record<string, number> = { '"': 0x22, '\\': 0x5c, '/': 0x2f, b: 8, f: 12, n: 10, r: 13, t: 9 };
        if (e in simple) units.push(simple[e]!);
        else if (e === 'u') {
          const hex = String.fromCharCode(...this.b.subarray(this.pos, this.pos + 4));
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) no('hex');
          this.pos += 4;
          units.push(parseInt(hex, 16));
        } else no('escape');
        continue;
      }
      // UTF-8 sequence -> code point -> units
      let cp: number;
      let len: number;
      if (c! < 0x80) [cp, len] = [c!, 1];
      else if (c! >= 0xf0) [cp, len] = [c! & 0x07, 4];
      else if (c! >= 0xe0) [cp, len] = [c! & 0x0f, 3];
      else [cp, len] = [c! & 0x1f, 2];
      for (let k = 1; k < len; k++) cp = (cp << 6) | (this.b[this.pos + k]! & 0x3f);
      this.pos += len;
      if (cp > 0xffff) units.push(0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff));
      else units.push(cp);
    }
    // escaped surrogates must pair (serde_json refuses lone ones)
    for (let k = 0; k < units.length; k++) {
      const u = units[k]!;
      if (u >= 0xd800 && u <= 0xdbff) {
        const lo = units[k + 1];
        if (lo === undefined || lo < 0xdc00 || lo > 0xdfff) no('lone surrogate');
        k++;
      } else if (u >= 0xdc00 && u <= 0xdfff) no('lone surrogate');
    }
    let s = '';
    for (let k = 0; k < units.length; k += 8192) s += String.fromCharCode(...units.slice(k, k + 8192));
    return s;
  }
}

function canonical(v: V | undefined): bigint | undefined {
  if (!v || v.t !== 'num' || !/^(0|[1-9][0-9]*)$/.test(v.text)) return undefined;
  const n = BigInt(v.text);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? n : undefined;
}

function validUtf8(b: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

export interface Verdict {
  accept: boolean;
  /** Why not (a short tag), when refused. */
  why?: string;
  /** Tensor names, sorted, when accepted. */
  names?: string[];
}

/**
 * Should a reader accept a file of `fileLength` bytes that starts with `head`? The bytes past
 * `head` are zeros (the fuzzer appends the data section as a sparse hole), and a length prefix may
 * reach into them.
 */
export function judge(head: Uint8Array, fileLength = head.length): Verdict {
  try {
    if (fileLength < 8 || head.length < 8) no('short');
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n === 0n || n > BigInt(LIMITS.headerBytes) || 8n + n > BigInt(fileLength)) no('length');
    const end = 8 + Number(n);
    const header = end <= head.length ? head.subarray(8, end) : Buffer.concat([head.subarray(8), new Uint8Array(end - head.length)]);
    const dataLength = BigInt(fileLength) - 8n - n;
    if (!validUtf8(header)) no('utf8');
    if (header[0] !== 0x7b) no('start');
    const p = new ByteParser(header);
    const root = p.value(0);
    p.ws();
    if (p.pos !== header.length) no('trailing');
    if (root.t !== 'obj') no('root');
    const spans: [bigint, bigint][] = [];
    const names: string[] = [];
    for (const [k, v] of (root as Extract<V, { t: 'obj' }>).entries) {
      if (k === '__metadata__') {
        if (v.t === 'lit' && v.v === null) continue;
        if (v.t !== 'obj' || v.entries.some(([, x]) => x.t !== 'str')) no('metadata');
        continue;
      }
      if (v.t !== 'obj') no('entry');
      const get = (f: string) => (v as Extract<V, { t: 'obj' }>).entries.find(([x]) => x === f)?.[1];
      const dtype = get('dtype');
      if (!dtype || dtype.t !== 'str' || !(dtype.s in SIZES)) no('dtype');
      const shape = get('shape');
      if (!shape || shape.t !== 'arr') no('shape');
      let count = 1n;
      for (const d of (shape as Extract<V, { t: 'arr' }>).items) {
        const x = canonical(d);
        if (x === undefined) no('dim');
        count *= x!;
        if (count > 2n ** 64n - 1n) no('overflow');
      }
      const offs = get('data_offsets');
      if (!offs || offs.t !== 'arr' || offs.items.length !== 2) no('offsets');
      const [b, e] = (offs as Extract<V, { t: 'arr' }>).items.map(canonical);
      if (b === undefined || e === undefined || b > e) no('offsets');
      const bytes = count * BigInt(SIZES[(dtype as { s: string }).s]!);
      if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) no('size');
      if (bytes !== e! - b!) no('mismatch');
      spans.push([b!, e!]);
      names.push(k);
    }
    spans.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
    let at = 0n;
    for (const [b, e] of spans) {
      if (b !== at) no(b < at ? 'overlap' : 'gap');
      at = e;
    }
    if (at !== dataLength) no('data length');
    return { accept: true, names: names.sort() };
  } catch (err) {
    if (err instanceof Reject) return { accept: false, why: err.message };
    throw err;
  }
}
