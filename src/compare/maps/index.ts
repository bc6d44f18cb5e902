// Built-in maps for `phi4 compare --map NAME`: other runtimes' names and layouts lined up with
// the taps without a map file. `--map FILE.json` reads a file (src/compare/map-file.ts, which resolves --map); with no
// --map, a candidate whose names are a built-in map's runtime gets that map (detected).

import type { MapSpec } from '../map.js';
import type { Entries } from '../entries.js';
import { LLAMA_CPP_MAP, looksLikeLlamaCpp } from './llamacpp.js';

export const BUILTIN_MAPS: Record<string, MapSpec> = { 'llama.cpp': { ...LLAMA_CPP_MAP, name: 'llama.cpp' } };

/** The built-in map a candidate's names call for, if any. */
export function detectMap(candidate: Entries): MapSpec | null {
  return looksLikeLlamaCpp(candidate.keys()) ? { ...BUILTIN_MAPS['llama.cpp'], name: 'llama.cpp (detected from the node names)' } : null;
}
