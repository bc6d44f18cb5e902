// The numpy float64 anchor (bench/numpy-forward.py, an independent forward over the same
// checkpoint and ids) run from a bench: its own timing of the forward, or why there is none.
// Used by bench/bench.ts (prefill against numpy's tokens per second) and bench/reference-speed.ts
// (the float64 reference against numpy): issue 22 judges both against the same script.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../bench/numpy-forward.py', import.meta.url));

export interface NumpyAnchor {
  /** Set when there is no timing: python3 or numpy missing, the script failed, or --no-numpy. */
  missing?: string;
  tokens?: number;
  /** The forward, from opening the checkpoint to the logits, as the script times it. */
  seconds?: number;
  tokens_per_s?: number;
  threads?: number;
  /** The child process's wall time, Python's start and imports included. */
  wall_s?: number;
}

/** Runs the numpy forward over `tokens` ids ((i * 7919 + 11) % vocab) of the checkpoint in `dir`. */
export function numpyAnchor(dir: string, tokens: number): NumpyAnchor {
  const t0 = performance.now();
  const r = spawnSync('python3', [SCRIPT, dir, '--tokens', String(tokens)], { encoding: 'utf8', maxBuffer: 2 ** 24 });
  if (r.error) return { missing: `python3: ${r.error.message}` };
  if (r.status !== 0) return { missing: `bench/numpy-forward.py exited ${r.status}: ${r.stderr.trim().split('\n').pop()}` };
  return { ...(JSON.parse(r.stdout.trim()) as NumpyAnchor), wall_s: (performance.now() - t0) / 1000 };
}
