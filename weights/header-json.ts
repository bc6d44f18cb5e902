/**
 * A strict, bounded JSON parser for safetensors headers.
 *
 * `JSON.parse` is unbounded (a header of 4,100 nested brackets overflows the
 * call stack, 1.5 M entries take gigabytes) and lenient where the reference
 * Rust crate is strict (duplicate keys: last wins). This parser is iterative,
 * counts as it goes and stops at the first limit crossed, before allocating
 * for what lies beyond it:
 *
 *   depth    at most MAX_DEPTH nested arrays/objects (serde_json's recursion limit is 128)
 *   values   at most MAX_VALUES JSON values in the whole header
 *   keys     at most MAX_KEY_CHARS characters in one object key (a tensor or metadata name)
 *   keys     no key twice in one object
 *
 * Numbers are returned as `JsonNumber` holding their source text, so the
 * caller can insist on canonical integers (`2`, not `2.0`, `1e0` or `-0`),
 * as serde does for the Rust crate's `usize` fields.
 */

export class JsonNumber {
  constructor(readonly text: string) {}
  /** The value when the text is a canonical non-negative integer within 2^53 - 1, else undefined. */
  asIndex(): number | undefined {
    if (!/^(0|[1-9][0-9]*)$/.test(this.text)) return undefined;
    const v = Number(this.text);
    return Number.isSafeInteger(v) ? v : undefined;
  }
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
/** Keys in source order; no duplicates. A Map, so "__proto__" is an ordinary key. */
export type JsonObject = Map<string, JsonValue>;

export const MAX_DEPTH = 128;
export const MAX_VALUES = 2_000_000;
export const MAX_KEY_CHARS = 4096;

export class HeaderJsonError extends Error {
  override name = 'HeaderJsonError';
}

const WS = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

type Frame = { kind: 'array'; value: JsonValue[] } | { kind: 'object'; value: JsonObject; key: string | null };

/** Parses `text`; throws HeaderJsonError with a short message and the character offset. */
export function parseHeaderJson(text: string): JsonValue {
  let i = 0;
  const n = text.length;
  let values = 0;
  const stack: Frame[] = [];
  const err = (why: string): never => {
    throw new HeaderJsonError(`${why} at character ${i}`);
  };
  const skipWs = () => {
    while (i < n && WS(text.charCodeAt(i))) i++;
  };
  const count = () => {
    if (++values > MAX_VALUES) err(`more than ${MAX_VALUES} JSON values`);
  };

  const readString = (limit: number): string => {
    // at the opening quote
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) err('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        break;
      }
      if (c < 0x20) err('control character in a string');
      if (c === 0x5c) {
        out += text.slice(start, i);
        const e = text.charCodeAt(i + 1);
        i += 2;
        switch (e) {
          case 0x22: out += '"'; break;
          case 0x5c: out += '\\'; break;
          case 0x2f: out += '/'; break;
          case 0x62: out += '\b'; break;
          case 0x66: out += '\f'; break;
          case 0x6e: out += '\n'; break;
          case 0x72: out += '\r'; break;
          case 0x74: out += '\t'; break;
          case 0x75: {
            const hex = (at: number) => {
              const h = text.slice(at, at + 4);
              if (!/^[0-9a-fA-F]{4}$/.test(h)) err('bad \\u escape');
              return parseInt(h, 16);
            };
            const u = hex(i);
            i += 4;
            if (u >= 0xdc00 && u <= 0xdfff) err('lone trailing surrogate in a \\u escape');
            if (u >= 0xd800 && u <= 0xdbff) {
              if (text.charCodeAt(i) !== 0x5c || text.charCodeAt(i + 1) !== 0x75) err('lone leading surrogate in a \\u escape');
              const lo = hex(i + 2);
              if (lo < 0xdc00 || lo > 0xdfff) err('lone leading surrogate in a \\u escape');
              i += 6;
              out += String.fromCharCode(u, lo);
            } else {
              out += String.fromCharCode(u);
            }
            break;
          }
          default: i -= 1; err('bad escape');
        }
        start = i;
      } else {
        i++;
      }
      if (out.length + (i - start) > limit) err(`string longer than ${limit} characters`);
    }
    return out;
  };

  const readNumber = (): JsonNumber => {
    const m = /-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = i;
    const r = m.exec(text);
    if (!r) err('bad number');
    i += r![0].length;
    return new JsonNumber(r![0]);
  };

  const readLiteral = (): JsonValue => {
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return err('unexpected character');
  };

  /** Appends a finished value to the innermost container; returns it when the stack is empty. */
  let root: JsonValue | undefined;
  const put = (v: JsonValue) => {
    const top = stack[stack.length - 1];
    if (!top) root = v;
    else if (top.kind === 'array') top.value.push(v);
    else {
      top.value.set(top.key!, v);
      top.key = null;
    }
  };

  skipWs();
  for (;;) {
    // expecting a value
    if (i >= n) err('unexpected end of input');
    const c = text.charCodeAt(i);
    let opened = false;
    if (c === 0x7b || c === 0x5b) {
      count();
      if (stack.length + 1 > MAX_DEPTH) err(`nested deeper than ${MAX_DEPTH} levels`);
      i++;
      if (c === 0x7b) {
        stack.push({ kind: 'object', value: new Map(), key: null });
        skipWs();
        if (text.charCodeAt(i) === 0x7d) {
          i++;
          put(stack.pop()!.value);
        } else {
          readKey();
          opened = true;
        }
      } else {
        stack.push({ kind: 'array', value: [] });
        skipWs();
        if (text.charCodeAt(i) === 0x5d) {
          i++;
          put(stack.pop()!.value);
        } else {
          opened = true;
        }
      }
    } else {
      count();
      if (c === 0x22) put(readString(Infinity));
      else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) put(readNumber());
      else put(readLiteral());
    }
    if (opened) continue;
    // after a value: close containers or move to the next element
    for (;;) {
      skipWs();
      const top = stack[stack.length - 1];
      if (!top) {
        if (i < n) err('trailing characters after the JSON value');
        return root!;
      }
      const d = text.charCodeAt(i);
      if (d === 0x2c) {
        i++;
        skipWs();
        if (top.kind === 'object') readKey();
        break;
      }
      if ((top.kind === 'array' && d === 0x5d) || (top.kind === 'object' && d === 0x7d)) {
        i++;
        put(stack.pop()!.value);
        continue;
      }
      err(top.kind === 'array' ? 'expected , or ]' : 'expected , or }');
    }
  }

  function readKey(): void {
    const top = stack[stack.length - 1] as Extract<Frame, { kind: 'object' }>;
    if (text.charCodeAt(i) !== 0x22) err('expected a string key');
    const at = i;
    const key = readString(MAX_KEY_CHARS);
    if (top.value.has(key)) {
      i = at;
      err(`duplicate key "${key.length > 60 ? key.slice(0, 60) + '...' : key}"`);
    }
    skipWs();
    if (text.charCodeAt(i) !== 0x3a) err('expected :');
    i++;
    skipWs();
    top.key = key;
  }
}

/** JSON.stringify for error messages: never throws (deep or cyclic values), at most `max` characters. */
export function describeJson(v: unknown, max = 80): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[...]' : typeof v === 'object' && v !== null ? '{...}' : String(v);
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}
