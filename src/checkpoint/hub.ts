// A checkpoint named by a local directory or by a Hugging Face repo id, found in the local
// Hugging Face cache without any network access.
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

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** The hub cache directory the environment selects. */
export function hubCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'huggingface', 'hub');
  return join(homedir(), '.cache', 'huggingface', 'hub');
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/**
 * A checkpoint directory (or .gguf file) from a path or a repo id ("microsoft/Phi-4-mini-instruct"). A path that
 * exists wins; a repo id resolves to the snapshot refs/main names, else to the only (or newest)
 * snapshot holding a config.json. Throws an InputError saying where it looked.
 */
export function resolveCheckpoint(arg: string, env: Record<string, string | undefined> = process.env): string {
  if (isDir(arg)) return resolve(arg);
  if (arg.toLowerCase().endsWith('.gguf') && existsSync(arg) && statSync(arg).isFile()) return resolve(arg); // a GGUF checkpoint (src/checkpoint/gguf/)
  if (!REPO_ID.test(arg) || existsSync(arg)) throw new InputError(`${arg}: no such checkpoint directory`);

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
