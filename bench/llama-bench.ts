// The anchor: llama.cpp's own benchmark (`llama-bench`) on a GGUF of the same weights, run by
// bench/bench.ts on the same machine, in the same run, with the same thread count, before and
// after phi4-ts's own passes (so a change in the machine's load shows as a difference between the
// two). Prefill: `-p N` (N prompt tokens in one batch); decode: `-n N` (N tokens generated one at a
// time, from an empty context). llama.cpp is not part of this project: the path is the user's.

import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { UsageError } from '../src/cli/args.js';

export interface LlamaBenchRun {
  prompt_tokens: number;
  prompt_tokens_per_s: number;
  new_tokens: number;
  decode_tokens_per_s: number;
  decode_s_per_token: number;
  threads: number;
  repetitions: number;
  /** llama.cpp's build (commit) and the model type it reports. */
  build_commit: string;
  model_type: string;
  wall_s: number;
}

/** One bad argument: a line naming it (exit 2), before anything is measured. */
export function checkLlamaBench(exe: string, gguf: string): void {
  if (!existsSync(exe) || !statSync(exe).isFile()) throw new UsageError(`--llama-bench: ${exe} is not a file`);
  try {
    accessSync(exe, constants.X_OK);
  } catch {
    throw new UsageError(`--llama-bench: ${exe} is not executable`);
  }
  if (!existsSync(gguf) || !statSync(gguf).isFile()) throw new UsageError(`--gguf: ${gguf} is not a file`);
}

interface LlamaBenchRecord { n_prompt: number; n_gen: number; avg_ts: number; n_threads: number; build_commit?: string; model_type?: string }

/** Runs llama-bench once: prefill of `prompt` tokens and decode of `steps`, `reps` times each, on `threads` threads. */
export function runLlamaBench(exe: string, gguf: string, prompt: number, steps: number, threads: number, reps = 3): LlamaBenchRun {
  const args = ['-m', gguf, '-p', String(prompt), '-n', String(steps), '-t', String(threads), '-r', String(reps), '-o', 'json'];
  const t0 = performance.now();
  const r = spawnSync(exe, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const wall = (performance.now() - t0) / 1000;
  if (r.error) throw new Error(`llama-bench: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`llama-bench exited with ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  let records: LlamaBenchRecord[];
  try {
    records = JSON.parse(r.stdout) as LlamaBenchRecord[];
  } catch {
    throw new Error(`llama-bench: its output is not the JSON asked for with -o json: ${r.stdout.slice(0, 200)}`);
  }
  const pp = records.find((x) => x.n_prompt === prompt && x.n_gen === 0);
  const tg = records.find((x) => x.n_gen === steps && x.n_prompt === 0);
  if (!pp || !tg) throw new Error(`llama-bench: no prefill (n_prompt ${prompt}) or decode (n_gen ${steps}) record in its output`);
  return {
    prompt_tokens: prompt,
    prompt_tokens_per_s: pp.avg_ts,
    new_tokens: steps,
    decode_tokens_per_s: tg.avg_ts,
    decode_s_per_token: 1 / tg.avg_ts,
    threads: pp.n_threads,
    repetitions: reps,
    build_commit: pp.build_commit ?? '',
    model_type: pp.model_type ?? '',
    wall_s: wall,
  };
}
