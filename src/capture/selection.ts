// Which taps a pass captures, and at which query positions. A selection is resolved against the
// model before the pass: the tap names it holds (in forward order), the rows of the sequence it
// keeps, and the last layer the pass has to run. What is not selected is never materialised.
//
// Syntax (the same for the CLI flags and the library options):
//   taps       comma-separated globs over tap names: `*` any run of characters (dots included),
//              `?` one character. `layers.*.q_rot,logits`. Default: every tap, or every layer tap
//              when a layer range is given.
//   layers     `A-B` (inclusive), `A`, or `A,B-C`: layer taps only of these layers.
//   positions  `A-B` (inclusive, 0-based rows of the sequence), `A`, or `last:N` (the last N rows).

import { LAYER_TAPS, type TapName, tapNames } from '../../layers/taps.js';
import { InputError } from '../errors.js';

/** Bad selection input: reported like any bad input (one line, exit 2). */
export class SelectionError extends InputError {}

export interface SelectionSpec {
  /** Tap-name globs (strings as on the command line are split at commas). */
  taps?: string | readonly string[];
  /** Layer numbers, as `A-B`, `A`, or a list of them. */
  layers?: string;
  /** Query rows: `A-B`, `A` or `last:N`. */
  positions?: string;
}

export interface Selection {
  /** Selected tap names, in forward order. */
  names: TapName[];
  /** Kept rows of the sequence: [start, end). */
  start: number;
  end: number;
  /** The last layer the pass must run (-1: none; numLayers - 1 or more when a head tap is selected). */
  lastLayer: number;
  /** Whether a head tap (final_norm, logits) is selected. */
  head: boolean;
  /** The selection as given, for the dump's metadata. */
  spec: { taps: string; layers: string; positions: string };
}

function globRegex(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** A compact list of the tap names of a model, for refusals. */
export function tapNameList(numLayers: number): string {
  return `embed, rope.cos, rope.sin, layers.N.{${Object.keys(LAYER_TAPS).join(',')}} for N in 0-${numLayers - 1}, final_norm, logits`;
}

/** One `A-B` or `A` within [0, n) -> [A, B]; `text` is the flag's whole value, `expected` its forms. */
function parseRange(part: string, text: string, n: number, flag: string, what: string, expected: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
  if (!m) throw new SelectionError(`${flag}: expected ${expected}, got "${text}"`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a) throw new SelectionError(`${flag}: range ${part} runs backwards`);
  if (b >= n) throw new SelectionError(`${flag}: ${part} is outside the ${what} [0, ${n - 1}]`);
  return [a, b];
}

/** `A-B`, `A` or lists of them, each within [0, n): the numbers, sorted. */
function parseRanges(text: string, n: number, flag: string, what: string): number[] {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [a, b] = parseRange(part, text, n, flag, what, 'A-B, A or a comma-separated list of them');
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** The query rows [start, end) named by `text` in a sequence of `seq` rows. */
function parsePositions(text: string, seq: number, flag: string): [number, number] {
  const last = /^last:(\d+)$/.exec(text.trim());
  if (last) {
    const n = Number(last[1]);
    if (n < 1 || n > seq) throw new SelectionError(`${flag}: last:${n} asks for ${n} rows of a ${seq}-token sequence`);
    return [seq - n, seq];
  }
  const [a, b] = parseRange(text, text, seq, flag, "sequence's positions", 'A-B, A or last:N');
  return [a, b + 1];
}

/**
 * Resolves `spec` against a `numLayers`-layer model and a `seq`-token sequence; refuses (naming
 * the flag) a pattern that matches no tap, a layer or position range outside the model or the
 * sequence, and a selection that is empty. `flags` names the options in messages.
 */
export function resolveSelection(spec: SelectionSpec, numLayers: number, seq: number,
  flags = { taps: '--taps', layers: '--layers', positions: '--positions' }): Selection {
  const all = tapNames(numLayers);
  const layerList = spec.layers !== undefined ? parseRanges(spec.layers, numLayers, flags.layers, `model's layers`) : null;
  const rawTaps = spec.taps === undefined ? (layerList ? ['layers.*'] : ['*'])
    : typeof spec.taps === 'string' ? spec.taps.split(',') : [...spec.taps];
  const globs = rawTaps.map((g) => g.trim());
  const regexes = globs.map((g) => {
    if (g === '') throw new SelectionError(`${flags.taps}: an empty pattern in "${rawTaps.join(',')}"`);
    return globRegex(g);
  });
  globs.forEach((g, i) => {
    if (!all.some((n) => regexes[i].test(n))) {
      throw new SelectionError(`${flags.taps}: "${g}" matches no tap (taps: ${tapNameList(numLayers)})`);
    }
  });
  const layerSet = layerList ? new Set(layerList) : null;
  const names = all.filter((n) => {
    if (!regexes.some((r) => r.test(n))) return false;
    const m = /^layers\.(\d+)\./.exec(n);
    if (m && layerSet) return layerSet.has(Number(m[1]));
    return true;
  });
  if (names.length === 0) {
    throw new SelectionError(`${flags.layers}: no tap matched by ${flags.taps} "${globs.join(',')}" lies in layers ${spec.layers}`);
  }
  const [start, end] = spec.positions !== undefined ? parsePositions(spec.positions, seq, flags.positions) : [0, seq];
  const head = names.includes('final_norm') || names.includes('logits');
  let lastLayer = -1;
  for (const n of names) {
    const m = /^layers\.(\d+)\./.exec(n);
    if (m) lastLayer = Math.max(lastLayer, Number(m[1]));
  }
  if (head) lastLayer = numLayers - 1;
  return {
    names, start, end, lastLayer, head,
    spec: { taps: globs.join(','), layers: spec.layers ?? 'all', positions: spec.positions ?? 'all' },
  };
}
