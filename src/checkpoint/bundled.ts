// The checkpoints bundled with the package, golden/models/NAME, by name: `bundledModel('phi4-mini-tiny')`
// in the library, `phi4 dump phi4-mini-tiny ...` on the command line (through resolveCheckpoint),
// listed by `phi4 --help`. One copy of where they live and which names they answer to.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.js';

/** golden/models/ of the installed package (dist/src/checkpoint/ -> the package root). */
export const BUNDLED_DIR = fileURLToPath(new URL('../../../golden/models/', import.meta.url));

const NAME = /^[\w.-]+$/;

/** The bundled checkpoints' names: the folders of golden/models/ holding a config.json, sorted. */
export function bundledNames(): string[] {
  if (!existsSync(BUNDLED_DIR)) return [];
  return readdirSync(BUNDLED_DIR).filter((n) => NAME.test(n) && existsSync(join(BUNDLED_DIR, n, 'config.json'))).sort();
}

/** The directory of bundled checkpoint `name`, or null when there is none of that name. */
export function bundledDir(name: string): string | null {
  return NAME.test(name) && name !== '.' && name !== '..' && existsSync(join(BUNDLED_DIR, name, 'config.json')) ? join(BUNDLED_DIR, name) : null;
}

/**
 * The directory of a checkpoint bundled with the package (golden/models/NAME), e.g.
 * `bundledModel('phi4-mini-tiny')`: tiny random-weight Phi-4-mini with a tokenizer.
 */
export function bundledModel(name: string): string {
  const dir = bundledDir(name);
  if (dir === null) throw new InputError(`bundledModel: no bundled checkpoint "${name}" (bundled: ${bundledNames().join(', ')})`);
  return dir;
}
