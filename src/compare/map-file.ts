// `--map` as the CLI gives it: a built-in map's name, "none", or a JSON file read here (the one
// node:fs use of the maps; ./map.ts parses and applies specs and runs in a page too).

import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { type MapSpec, parseMapSpec } from './map.js';
import { BUILTIN_MAPS } from './maps/index.js';

/** `--map` as given: a built-in name, "none" (no map, no detection), or a JSON file. */
export function resolveMap(arg: string | undefined): MapSpec | null | undefined {
  if (arg === undefined) return undefined; // not given: detect
  if (arg === 'none') return null;
  if (Object.hasOwn(BUILTIN_MAPS, arg)) return BUILTIN_MAPS[arg];
  return readMapSpec(arg);
}

export function readMapSpec(file: string): MapSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`--map ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InputError(`--map ${file}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  return parseMapSpec(json, file);
}
