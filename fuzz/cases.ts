// Fuzz cases, each a pure function of (seed, index): mutated safetensors headers from the bundled
// checkpoints and dumps, mutated configs, mutated --inputs files and mutated compare candidates.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const GOLDEN = path.join(ROOT, 'golden');

/** splitmix32-seeded xorshift: small, fast, reproducible. */
export class Rand {
  private s: number;
  constructor(seed: number, index: number) {
    let h = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
    this.s = (h ^ (h >>> 15)) >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
}

export interface Source {
  file: string;
  header: string;
  dataLength: number;
}

let sources: Source[] | undefined;
/** Headers of every bundled .safetensors file (read once). */
export function headerSources(): Source[] {
  if (sources) return sources;
  const files: string[] = [];
  for (const d of [path.join(GOLDEN, 'dumps'), ...fs.readdirSync(path.join(GOLDEN, 'models')).map((m) => path.join(GOLDEN, 'models', m))]) {
    for (const f of fs.readdirSync(d)) if (f.endsWith('.safetensors')) files.push(path.join(d, f));
  }
  sources = files.sort().map((file) => {
    const fd = fs.openSync(file, 'r');
    const p = Buffer.alloc(8);
    fs.readSync(fd, p, 0, 8, 0);
    const n = Number(p.readBigUInt64LE(0));
    const h = Buffer.alloc(n);
    fs.readSync(fd, h, 0, n, 8);
    const size = fs.fstatSync(fd).size;
    fs.closeSync(fd);
    return { file: path.relative(ROOT, file), header: h.toString('utf8'), dataLength: size - 8 - n };
  });
  return sources;
}

export const CONFIGS = () => [
  path.join(GOLDEN, 'configs', 'phi-4-mini-instruct.json'),
  ...fs.readdirSync(path.join(GOLDEN, 'models')).map((m) => path.join(GOLDEN, 'models', m, 'config.json')),
];

// JSON with numbers kept as written, so mutations can write 1.0, 1e0, -0.
type J = null | boolean | string | { num: string } | { raw: string } | J[] | { obj: [string, J][] };

function toJ(v: unknown): J {
  if (typeof v === 'number') return { num: String(v) };
  if (Array.isArray(v)) return v.map(toJ);
  if (v !== null && typeof v === 'object') return { obj: Object.entries(v).map(([k, x]) => [k, toJ(x)]) };
  return v as J;
}

export function emit(v: J): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(emit).join(',')}]`;
  if ('num' in v) return v.num;
  if ('raw' in v) return v.raw;
  return `{${v.obj.map(([k, x]) => `${JSON.stringify(k)}:${emit(x)}`).join(',')}}`;
}

const HOSTILE_NUMBERS = ['0', '1', '-1', '-0', '1.0', '1e0', '1E2', '0.5', '01', '9007199254740991', '9007199254740992',
  '18446744073709551615', '18446744073709551616', '4294967296', '1e400', '-1e400', '2.5e-3'];
const HOSTILE_STRINGS = ['', 'F32', 'BF16', 'f32', 'F128', 'I64', 'U64', '\u0000', '\u001b[31m', '__metadata__', 'x'.repeat(5000), '\ud800'];

function hostileValue(r: Rand, depth = 0): J {
  switch (r.int(depth > 2 ? 5 : 9)) {
    case 0: return null;
    case 1: return r.chance(0.5);
    case 2: return { num: r.pick(HOSTILE_NUMBERS) };
    case 3: return r.pick(HOSTILE_STRINGS);
    case 4: return { num: String(r.int(1 << 20)) };
    case 5: return Array.from({ length: r.int(4) }, () => hostileValue(r, depth + 1));
    case 6: return { obj: Array.from({ length: r.int(3) }, (_, i) => [`k${i}`, hostileValue(r, depth + 1)] as [string, J]) };
    case 7: return nested(r.pick([1, 50, 126, 127, 128, 129, 200, 5000]), r.chance(0.5));
    default: return { num: String(r.u32() * 2 ** r.int(30)) };
  }
}

/** `depth` nested arrays or objects around a 1, as text (deep values are never built as objects here). */
function nested(depth: number, arrays: boolean): J {
  return { raw: arrays ? '['.repeat(depth) + '1' + ']'.repeat(depth) : '{"k":'.repeat(depth) + '1' + '}'.repeat(depth) };
}

export interface HeaderCase {
  kind: 'header';
  /** Complete file bytes, except `sparse` zero bytes appended as a hole. */
  bytes: Buffer;
  sparse: number;
  what: string;
}

/** One mutated safetensors file. */
export function headerCase(r: Rand): HeaderCase {
  const src = r.pick(headerSources());
  const parsed = JSON.parse(src.header) as Record<string, unknown>;
  const j = toJ(parsed) as { obj: [string, J][] };
  let dataLength = src.dataLength;
  const what: string[] = [src.file];
  const mutations = 1 + r.int(3);
  for (let m = 0; m < mutations; m++) {
    const entries = j.obj;
    const e = entries.length > 0 ? entries[r.int(entries.length)]! : undefined;
    const field = e && typeof e[1] === 'object' && e[1] !== null && 'obj' in e[1] ? (e[1] as { obj: [string, J][] }).obj : undefined;
    const op = r.int(14);
    what.push(`op${op}`);
    switch (op) {
      case 0: if (field) { const f = r.pick(field); f[1] = hostileValue(r); } break; // any field of a tensor
      case 1: if (field) { const s = field.find(([k]) => k === 'shape'); if (s && Array.isArray(s[1]) && s[1].length) s[1][r.int(s[1].length)] = { num: r.pick(HOSTILE_NUMBERS) }; } break;
      case 2: if (field) { const o = field.find(([k]) => k === 'data_offsets'); if (o && Array.isArray(o[1])) o[1][r.int(2)] = { num: r.pick(HOSTILE_NUMBERS) }; } break;
      case 3: if (e) entries.push([e[0], e[1]]); break; // duplicate tensor key
      case 4: if (field) field.push([r.pick(['dtype', 'shape', 'data_offsets', 'extra']), hostileValue(r)]); break; // duplicate or unknown field
      case 5: entries.unshift(['__metadata__', r.pick<J>([null, [], { num: '1' }, { obj: [['k', 'v']] }, { obj: [['k', { num: '1' }]] }, { obj: [['k', 'v'], ['k', 'w']] }, nested(r.pick([126, 127, 128, 130]), false)])]); break;
      case 6: if (field) field.push(['x', nested(r.pick([120, 125, 126, 127, 128, 129, 4100]), r.chance(0.5))]); break;
      case 7: if (e) e[0] = r.pick(['', '\u0000', '\u001b]0;title\u0007', 'n'.repeat(r.pick([4095, 4096, 4097])), '\ud83d\ude00', 'a\u2028b']); break;
      case 8: if (e) entries.splice(entries.indexOf(e), 1); break; // a tensor removed: a gap, usually
      case 9: dataLength += r.pick([-1, 1, -4, 8, 1 << 20]); break;
      case 10: if (field) { const s = field.find(([k]) => k === 'shape'); if (s) s[1] = r.pick<J>([[{ num: '4294967296' }, { num: '4294967296' }, { num: '0' }], [{ num: '0' }, { num: '18446744073709551615' }], [], [{ num: '1' }]]); } break;
      case 11: for (let k = 0; k < r.int(2000); k++) entries.push([`z${k}`, { obj: [['dtype', 'F32'], ['shape', [{ num: '0' }]], ['data_offsets', [{ num: String(dataLength) }, { num: String(dataLength) }]]] }]); break;
      case 12: if (field) { const d = field.find(([k]) => k === 'dtype'); if (d) d[1] = r.pick(['F32', 'F16', 'BF16', 'F64', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'I64', 'U16']); } break;
      default: break; // text-level below
    }
  }
  let text = emit(j);
  const textOp = r.int(10);
  if (textOp === 0) text = r.pick([' ', '\n', '\t']) + text; // leading whitespace
  else if (textOp === 1) text = text + ' '.repeat(r.int(9)); // trailing padding: valid
  else if (textOp === 2 && text.length > 2) { // byte flip
    const at = r.int(text.length);
    text = text.slice(0, at) + String.fromCharCode(r.int(128)) + text.slice(at + 1);
  } else if (textOp === 3) text = text.slice(0, r.int(text.length)); // truncated JSON
  else if (textOp === 4) text = text + r.pick([',', '}', ']', 'x', '\u0000']);
  let header = Buffer.from(text, 'utf8');
  if (r.chance(0.03)) header = Buffer.concat([header.subarray(0, r.int(header.length)), Buffer.from([r.pick([0x80, 0xc3, 0xff, 0xed])]), header.subarray(r.int(header.length))]); // invalid UTF-8
  const prefix = Buffer.alloc(8);
  let n = BigInt(header.length);
  if (r.chance(0.05)) n = r.pick([0n, 1n, n - 1n, n + 1n, 100_000_001n, 2n ** 63n, 2n ** 64n - 1n]);
  prefix.writeBigUInt64LE(n < 0n ? 0n : n);
  if (dataLength < 0) dataLength = 0;
  return { kind: 'header', bytes: Buffer.concat([prefix, header]), sparse: dataLength, what: what.join(' ') };
}

export interface ConfigCase {
  kind: 'config';
  text: string;
  what: string;
}

/** A mutated config.json: fields replaced by hostile values, removed, or the text broken. */
export function configCase(r: Rand): ConfigCase {
  const file = r.pick(CONFIGS());
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const keys = Object.keys(c);
  const what: string[] = [path.relative(ROOT, file)];
  const j = toJ(c) as { obj: [string, J][] };
  for (let m = 0; m < 1 + r.int(3); m++) {
    const field = r.chance(0.7) ? r.pick(['num_hidden_layers', 'hidden_size', 'vocab_size', 'intermediate_size', 'num_attention_heads',
      'num_key_value_heads', 'head_dim', 'max_position_embeddings', 'rope_scaling', 'architectures', 'partial_rotary_factor',
      'sliding_window', 'rope_parameters', 'original_max_position_embeddings', 'model_type', 'eos_token_id']) : r.pick(keys);
    what.push(field);
    const at = j.obj.findIndex(([k]) => k === field);
    const v = r.chance(0.3) ? { num: r.pick(['2000000', '1e9', '65537', '1048577', '16777217', '0', '-1', '1.5']) } : hostileValue(r);
    if (at >= 0) j.obj[at]![1] = v;
    else j.obj.push([field, v]);
  }
  let text = emit(j);
  if (r.chance(0.05)) text = text.slice(0, r.int(text.length));
  return { kind: 'config', text, what: what.join(' ') };
}

export interface InputsCase {
  kind: 'inputs';
  tensors: { name: string; dtype: string; shape: number[]; fill: number }[];
  what: string;
}

/** An --inputs file: input_ids of hostile shape, dtype and values, with or without mask and positions. */
export function inputsCase(r: Rand): InputsCase {
  const [B, T] = r.pick([[1, 3], [2, 64], [2000, 64], [1, 1025], [1, 5000], [0, 3], [3, 0], [7, 1]]);
  const shape = r.pick([[B, T], [B * T], [B, T, 1], []]);
  const tensors = [{ name: 'input_ids', dtype: r.pick(['I32', 'I64', 'F32', 'U8', 'F64']), shape, fill: r.pick([0, 5, 1023, 1024, -1, 2 ** 31 - 1, 0.5]) }];
  if (r.chance(0.3)) tensors.push({ name: 'attention_mask', dtype: 'I32', shape: r.chance(0.8) ? shape : [B, T + 1], fill: r.pick([0, 1, 2]) });
  if (r.chance(0.3)) tensors.push({ name: 'position_ids', dtype: 'I64', shape: r.chance(0.8) ? shape : [1], fill: r.pick([0, 1023, 1024, -5]) });
  if (r.chance(0.1)) tensors.shift();
  return { kind: 'inputs', tensors, what: tensors.map((t) => `${t.name}:${t.dtype}[${t.shape}]=${t.fill}`).join(' ') };
}

export interface CompareCase {
  kind: 'compare';
  reference: string;
  /** Which tensor of the reference is replaced, and by what. */
  target: string;
  change: 'int32-zeros' | 'f64-huge' | 'f32-max' | 'nan' | 'shape' | 'drop' | 'huge-layer-name' | 'offset';
  what: string;
}

export function compareCase(r: Rand): CompareCase {
  const dumps = headerSources().filter((s) => s.file.includes('dumps') && !s.file.includes('generate'));
  const ref = r.pick(dumps);
  const names = Object.keys(JSON.parse(ref.header)).filter((k) => k !== '__metadata__' && k !== 'input_ids' && k !== 'attention_mask' && k !== 'position_ids');
  const target = r.pick(names);
  const change = r.pick(['int32-zeros', 'f64-huge', 'f32-max', 'nan', 'shape', 'drop', 'huge-layer-name', 'offset'] as const);
  return { kind: 'compare', reference: ref.file, target, change, what: `${ref.file} ${target} ${change}` };
}

export type Case = HeaderCase | ConfigCase | InputsCase | CompareCase;

export const KINDS = ['header', 'config', 'inputs', 'compare'] as const;
export type Kind = (typeof KINDS)[number];

/**
 * Case `index` of run `seed`: 80% headers, 8% configs, 7% inputs, 5% compare candidates. A kind
 * left out of `kinds` leaves its cases out (the same index is the same case in every run).
 */
export function makeCase(seed: number, index: number, kinds: readonly Kind[] = KINDS): Case | null {
  const r = new Rand(seed, index);
  const k = r.int(100);
  const kind: Kind = k < 80 ? 'header' : k < 88 ? 'config' : k < 95 ? 'inputs' : 'compare';
  if (!kinds.includes(kind)) return null;
  return kind === 'header' ? headerCase(r) : kind === 'config' ? configCase(r) : kind === 'inputs' ? inputsCase(r) : compareCase(r);
}
