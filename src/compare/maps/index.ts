// Built-in maps for `phi4 compare --map NAME`: other runtimes' names and layouts lined up with
// the taps without a map file. `--map FILE.json` reads a file (src/compare/map.ts); with no
// --map, a candidate whose names are a built-in map's runtime gets that map (detected).

import { type MapSpec, readMapSpec } from '../map.js';
import type { Entries } from '../entries.js';
import { LLAMA_CPP_MAP, looksLikeLlamaCpp } from './llamacpp.js';

export const BUILTIN_MAPS: Record<string, MapSpec> = { 'llama.cpp': { ...LLAMA_CPP_MAP, name: 'llama.cpp' } };

/** `--map` as given: a built-in name, "none" (no map, no detection), or a JSON file. */
export function resolveMap(arg: string | undefined): MapSpec | null | undefined {
  if (arg === undefined) return undefined; // not given: detect
  if (arg === 'none') return null;
  if (Object.hasOwn(BUILTIN_MAPS, arg)) return BUILTIN_MAPS[arg];
  return readMapSpec(arg);
}

/** The built-in map a candidate's names call for, if any. */
export function detectMap(candidate: Entries): MapSpec | null {
  return looksLikeLlamaCpp(candidate.keys()) ? { ...BUILTIN_MAPS['llama.cpp'], name: 'llama.cpp (detected from the node names)' } : null;
}
