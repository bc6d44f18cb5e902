// `phi4 compare --map FILE.json`: renames another runtime's tensors to tap names and transposes
// or reshapes their layouts. The spec (docs/compare.md):
//
//   { "apply_to": "candidate",                        // or "reference" or "both"; default candidate
//     "tensors": [
//       { "from": "blk.{N}.attn_q", "to": "layers.{N}.q_rot", "permute": [0, 2, 1, 3] },
//       { "from": "blk.{N}.attn_ctx", "to": "layers.{N}.attn_out", "reshape": [0, 0, -1] },
//       { "from": "hidden.{N}", "to": "layers.{N}.out" } ] }
//
// `--map FILE.json` is read by ./map-file.ts (node:fs); this module is pure (it runs in a page too).
// `{X}` in `from` matches a decimal number and is substituted in `to`. Rules are tried in order;
// the first match wins; names no rule matches keep their name. `permute` follows numpy.transpose
// (output axis i is input axis permute[i]); `reshape` runs after it, 0 keeps that axis' size and
// one -1 takes what is left. `slice` runs last: one entry per axis, null (whole axis) or
// [start, stop) where stop may be "T", the number of positions in the dump's input_ids (a
// runtime whose scores span a padded KV cache: "slice": [null, null, null, [0, "T"]]).
// `"drop": true` removes the tensors a rule matches (no tap, not listed as unmatched).

import type { Entries, Entry } from './entries.js';
import type { Numeric } from '../oracle/metrics.js';
import { InputError } from '../errors.js';

export interface MapRule {
  from: string;
  to: string;
  permute?: number[];
  reshape?: number[];
  slice?: (null | [number, number | 'T'])[];
  drop?: boolean;
}

export interface MapSpec {
  applyTo: 'candidate' | 'reference' | 'both';
  rules: MapRule[];
  /** A built-in map's rules, computed from the side's own tensors (src/compare/maps/); used instead of `rules`. */
  expand?: (entries: Entries) => MapRule[];
  /** A built-in map's name, for the report header. */
  name?: string;
}

const isIntArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x));

/** Parses and checks a map spec; every problem names the file and the rule. */
export function parseMapSpec(json: unknown, file: string): MapSpec {
  const bad = (msg: string) => new InputError(`--map ${file}: ${msg}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('must be a JSON object with "tensors"');
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'apply_to' && k !== 'tensors') throw bad(`unknown key "${k}" (apply_to, tensors)`);
  const applyTo = o.apply_to ?? 'candidate';
  if (applyTo !== 'candidate' && applyTo !== 'reference' && applyTo !== 'both') throw bad(`apply_to must be "candidate", "reference" or "both", got ${JSON.stringify(applyTo)}`);
  if (!Array.isArray(o.tensors)) throw bad('"tensors" must be an array of rules');
  const rules = o.tensors.map((r: unknown, i): MapRule => {
    const where = `tensors[${i}]`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad(`${where} must be an object`);
    const rule = r as Record<string, unknown>;
    for (const k of Object.keys(rule)) if (!['from', 'to', 'permute', 'reshape', 'slice', 'drop'].includes(k)) throw bad(`${where}: unknown key "${k}" (from, to, permute, reshape, slice, drop)`);
    if (typeof rule.from !== 'string' || rule.from === '') throw bad(`${where}: "from" must be a tensor name (with {N} placeholders)`);
    const to = rule.to ?? rule.from;
    if (typeof to !== 'string' || to === '') throw bad(`${where}: "to" must be a tensor name`);
    const holes = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const h of holes(to)) if (!holes(rule.from).includes(h)) throw bad(`${where}: "to" uses {${h}}, which "from" does not define`);
    const out: MapRule = { from: rule.from, to };
    if (rule.permute !== undefined) {
      const p = rule.permute;
      if (!isIntArray(p) || p.slice().sort((a, b) => a - b).some((x, j) => x !== j)) throw bad(`${where}: "permute" must be a permutation of 0..n-1, got ${JSON.stringify(p)}`);
      out.permute = p;
    }
    if (rule.reshape !== undefined) {
      const s = rule.reshape;
      if (!isIntArray(s) || s.some((x) => x < -1) || s.filter((x) => x === -1).length > 1) throw bad(`${where}: "reshape" must be sizes (0 = keep, at most one -1), got ${JSON.stringify(s)}`);
      out.reshape = s;
    }
    if (rule.slice !== undefined) {
      const sl = rule.slice;
      const okAxis = (a: unknown) => a === null || (Array.isArray(a) && a.length === 2 && Number.isInteger(a[0]) && a[0] >= 0 &&
        ((Number.isInteger(a[1]) && (a[1] as number) > a[0]) || a[1] === 'T'));
      if (!Array.isArray(sl) || !sl.every(okAxis)) throw bad(`${where}: "slice" must be one entry per axis, null or [start, stop] (stop a number > start or "T"), got ${JSON.stringify(sl)}`);
      out.slice = sl as MapRule['slice'];
    }
    if (rule.drop !== undefined) {
      if (typeof rule.drop !== 'boolean') throw bad(`${where}: "drop" must be true or false`);
      if (rule.drop) out.drop = true;
    }
    return out;
  });
  return { applyTo, rules };
}

/** Transposes row-major `data` of `shape` by `perm` (numpy semantics). */
export function permute(data: Numeric, shape: number[], perm: number[]): { data: Numeric; shape: number[] } {
  const n = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStride = new Array<number>(n);
  for (let i = n - 1, s = 1; i >= 0; i--) {
    inStride[i] = s;
    s *= shape[i];
  }
  const strideOut = perm.map((p) => inStride[p]); // input stride of each output axis
  const out = new (data.constructor as new (len: number) => Numeric)(data.length);
  const idx = new Array<number>(n).fill(0);
  let src = 0;
  for (let o = 0; o < data.length; o++) {
    out[o] = data[src];
    for (let ax = n - 1; ax >= 0; ax--) { // odometer over the output index
      idx[ax]++;
      src += strideOut[ax];
      if (idx[ax] < outShape[ax]) break;
      src -= strideOut[ax] * outShape[ax];
      idx[ax] = 0;
    }
  }
  return { data: out, shape: outShape };
}

function reshaped(shape: number[], spec: number[], name: string): number[] {
  const total = shape.reduce((a, b) => a * b, 1);
  const s = spec.map((x, i) => (x === 0 ? shape[i] : x));
  if (s.some((x) => x === undefined)) throw new InputError(`--map: "${name}": reshape ${JSON.stringify(spec)} keeps an axis that [${shape}] does not have`);
  const known = s.filter((x) => x !== -1).reduce((a, b) => a * b, 1);
  const out = s.map((x) => (x === -1 ? total / known : x));
  if (out.reduce((a, b) => a * b, 1) !== total || out.some((x) => !Number.isInteger(x))) {
    throw new InputError(`--map: "${name}": cannot reshape [${shape}] to ${JSON.stringify(spec)}`);
  }
  return out;
}

/** numpy's data[s0, s1, ...] for row-major `data` of `shape`, with ranges [start, stop) per axis. */
export function sliceAxes(data: Numeric, shape: number[], ranges: [number, number][]): Numeric {
  const outShape = ranges.map(([a, b]) => b - a);
  const total = outShape.reduce((p, q) => p * q, 1);
  const out = new (data.constructor as new (len: number) => Numeric)(total);
  const n = shape.length;
  const stride = new Array<number>(n);
  for (let i = n - 1, s = 1; i >= 0; i--) {
    stride[i] = s;
    s *= shape[i];
  }
  const idx = new Array<number>(n).fill(0);
  for (let o = 0; o < total; o++) {
    let src = 0;
    for (let ax = 0; ax < n; ax++) src += (ranges[ax][0] + idx[ax]) * stride[ax];
    out[o] = data[src];
    for (let ax = n - 1; ax >= 0; ax--) {
      if (++idx[ax] < outShape[ax]) break;
      idx[ax] = 0;
    }
  }
  return out;
}

function matcher(from: string): { re: RegExp; holes: string[] } {
  const holes: string[] = [];
  const src = from.split(/(\{\w+\})/).map((part) => {
    const m = /^\{(\w+)\}$/.exec(part);
    if (m) {
      holes.push(m[1]);
      return '(\\d+)';
    }
    return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return { re: new RegExp(`^${src.join('')}$`), holes };
}

/** Applies the rules to one side's entries. Two names landing on the same target is an error. */
export function applyMap(entries: Entries, spec: MapSpec, side: string): Entries {
  const compiled = (spec.expand ? spec.expand(entries) : spec.rules).map((r) => ({ r, ...matcher(r.from) }));
  const out: Entries = new Map();
  const origin = new Map<string, string>();
  const positions = () => {
    const ids = entries.get('input_ids');
    if (!ids) throw new InputError(`--map: a slice to "T" needs the ${side}'s input_ids, which it does not have`);
    return ids.shape[ids.shape.length - 1];
  };
  for (const [name, e] of entries) {
    let target = name;
    let dropped = false;
    let entry: Entry = e;
    for (const { r, re, holes } of compiled) {
      const m = re.exec(name);
      if (!m) continue;
      if (r.drop) {
        dropped = true;
        break;
      }
      target = holes.reduce((s, h, i) => s.split(`{${h}}`).join(m[i + 1]), r.to);
      let shape = e.shape;
      if (r.permute) {
        if (r.permute.length !== shape.length) throw new InputError(`--map: "${name}" has ${shape.length} axes [${shape}], its permute has ${r.permute.length}`);
        shape = r.permute.map((p) => e.shape[p]);
      }
      const mid = r.reshape ? reshaped(shape, r.reshape, name) : shape;
      const perm = r.permute;
      const read = () => (perm ? permute(e.read(), e.shape, perm).data : e.read());
      if (!r.slice) {
        entry = { shape: mid, int: e.int, read };
      } else {
        if (r.slice.length !== mid.length) throw new InputError(`--map: "${name}" has ${mid.length} axes [${mid}] after permute/reshape, its slice has ${r.slice.length}`);
        const ranges = r.slice.map((s, ax): [number, number] => {
          if (s === null) return [0, mid[ax]];
          const stop = s[1] === 'T' ? positions() : s[1];
          if (stop > mid[ax] || s[0] >= stop) throw new InputError(`--map: "${name}": slice [${s[0]}, ${stop}) does not fit axis ${ax} of [${mid}]`);
          return [s[0], stop];
        });
        entry = { shape: ranges.map(([a, b]) => b - a), int: e.int, read: () => sliceAxes(read(), mid, ranges) };
      }
      break;
    }
    if (dropped) continue;
    if (origin.has(target)) throw new InputError(`--map: ${side} tensors "${origin.get(target)}" and "${name}" both map to "${target}"`);
    origin.set(target, name);
    out.set(target, entry);
  }
  return out;
}
