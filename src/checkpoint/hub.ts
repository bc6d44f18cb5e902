// A checkpoint named by a local directory (or .gguf file), by the name of a bundled one
// (src/checkpoint/bundled.ts), or by a Hugging Face repo id, found in the local Hugging Face
// cache without any network access.
//
//   <hub>/models--<owner>--<name>/refs/main          the revision "main" points at
//   <hub>/models--<owner>--<name>/snapshots/<rev>/   config.json, *.safetensors, tokenizer.json, ...
//
// <hub> is $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub (huggingface_hub's own order).

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { bundledDir, bundledNames } from './bundled.js';

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** The hub cache directory the environment selects. */
export function hubCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'huggingface', 'hub');
  return join(homedir(), '.cache', 'huggingface', 'hub');
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** What a checkpoint argument may be, for the refusals. */
function accepted(): string {
  return `a checkpoint directory, a .gguf file, a bundled checkpoint (${bundledNames().join(', ')}) or a repo id in the local Hugging Face cache`;
}

/**
 * A checkpoint directory (or .gguf file) from a path, a bundled checkpoint's name ("phi4-mini-tiny")
 * or a repo id ("microsoft/Phi-4-mini-instruct"). A path that exists wins, then a bundled name; a
 * repo id resolves to the snapshot refs/main names, else to the only (or newest) snapshot holding
 * a config.json. Throws an InputError saying what the argument is and where it looked.
 */
export function resolveCheckpoint(arg: string, env: Record<string, string | undefined> = process.env): string {
  if (isDir(arg)) return resolve(arg);
  if (arg.toLowerCase().endsWith('.gguf') && existsSync(arg) && statSync(arg).isFile()) return resolve(arg); // a GGUF checkpoint (src/checkpoint/gguf/)
  if (existsSync(arg)) throw new InputError(`${arg}: a file, not a checkpoint (expected ${accepted()})`);
  const bundled = bundledDir(arg);
  if (bundled !== null) return bundled;
  if (!REPO_ID.test(arg)) throw new InputError(`${arg}: no such file or directory (expected ${accepted()})`);

  const [owner, name] = arg.split('/');
  const repoDir = join(hubCacheDir(env), `models--${owner}--${name}`);
  const snapshots = join(repoDir, 'snapshots');
  const where = `${arg}: not a directory, and not in the local Hugging Face cache (looked in ${snapshots})`;
  if (!isDir(snapshots)) throw new InputError(where);

  const refMain = join(repoDir, 'refs', 'main');
  if (existsSync(refMain)) {
    const rev = readFileSync(refMain, 'utf8').trim();
    const dir = join(snapshots, rev);
    if (rev && existsSync(join(dir, 'config.json'))) return dir;
  }
  const candidates = readdirSync(snapshots)
    .map((rev) => join(snapshots, rev))
    .filter((dir) => existsSync(join(dir, 'config.json')))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (candidates.length === 0) throw new InputError(`${where}: no snapshot with a config.json`);
  return candidates[0];
}
