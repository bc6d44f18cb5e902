// Autoregressive generation: prefill, then one token at a time with the KV cache, under a chosen
// LongRoPE policy (docs/generation.md).
//
//   step 0:   logits = forward(prompt)[last]              cache = keys/values of the prompt
//   step s:   logits = forward(token_{s-1}, past=cache)[last]
//             token_s = choose(logits)                    stop at an eos id or max_new_tokens
//
// LongRoPE rotates keys with one of two factor sets, short while the sequence fits in
// original_max_position_embeddings and long once it does not. A cached key keeps the rotation it
// was made with, so the policy says what happens at the crossing:
//   default      rebuild the cache at the first step past the boundary (one full forward over the
//                whole sequence, which then uses the long factors everywhere), then continue
//                incrementally: every step equals a full forward over the current sequence.
//   stale        never rebuild: old keys keep the short rotation, new ones get the long one.
//   fixed-long   the long factors for every position from the start (forced, whatever the length).
//   fixed-short  the short factors throughout.
//   chunked      every forward call (each prefill chunk of `prefillChunk` tokens, then each step)
//                chooses the set from its own last position, and cached keys keep theirs: a
//                chunked prefill that crosses the boundary mixes the sets within the prompt.
//   from-context the set chosen once from an allocated context of `context` positions (long when
//                it is past the original), whatever the sequence: fixed-long or fixed-short.
// noCache recomputes the whole sequence at every step (the definition the default must equal).
// A prefillChunk with default or fixed-* is a correct chunked prefill: every chunk uses the set of
// the whole prompt.

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeSafetensors } from '../../weights/index.js';
import type { KvCache } from '../../layers/attention.js';
import { usesLongFactors } from '../../layers/rotary.js';
import { seqAxis } from '../../layers/taps.js';
import { type Tap } from '../../layers/tap.js';
import { type Phi3Config, configHash } from '../model/config.js';
import { type Phi3Model } from '../model/model.js';
import { type SamplingOptions, SplitMix64, checkSampling, chooseToken } from './sampling.js';
import { VERSION } from '../version.js';
import { InputError } from '../errors.js';

export const ROPE_POLICIES = ['default', 'stale', 'fixed-long', 'fixed-short', 'chunked', 'from-context'] as const;
export type RopePolicy = (typeof ROPE_POLICIES)[number];

export interface GenerateOptions {
  maxNewTokens: number;
  sampling?: SamplingOptions;
  /** Seed of the SplitMix64 generator used when sampling (default 0). */
  seed?: number | bigint;
  ropePolicy?: RopePolicy;
  /** Prefill the prompt this many tokens per forward call (default: all at once). Required by `chunked`. */
  prefillChunk?: number;
  /** The allocated context the `from-context` policy chooses its factor set from (required by it). */
  context?: number;
  /** Recompute the whole sequence at every step instead of using the KV cache. */
  noCache?: boolean;
  /** Stop after emitting one of these (default: the config's eos_token_id). */
  eosIds?: Iterable<number>;
  /**
   * Teacher forcing: emit these tokens instead of choosing (the run is `forced.length` steps,
   * eos ignored), so that policies can be compared on the same sequence.
   */
  forced?: ArrayLike<number>;
  /** Called with every new token as soon as it is chosen. */
  onToken?: (id: number, step: number) => void;
  /**
   * Taps to record at every step (src/capture/selection.ts resolves them): each step's last row,
   * the one that predicts the step's token, with the step's position and cache length.
   */
  stepTaps?: readonly string[];
}

/** One step's recorded taps: the row at `position`, computed after `cacheLength` cached positions. */
export interface StepRecord {
  step: number;
  position: number;
  cacheLength: number;
  taps: Map<string, { shape: number[]; data: Float32Array }>;
}

export interface GenerateResult {
  /** The new tokens (the eos token included when one stopped the run). */
  ids: Int32Array;
  /** stepLogits[i]: the logits row [V] that chose ids[i]. */
  stepLogits: Float32Array[];
  /** Whether each step's new positions were rotated with the long factors. */
  ropeLong: boolean[];
  /** The factor set of each prefill call (one entry unless prefillChunk split the prompt): true = long. */
  prefillLong: boolean[];
  /** The step at which the default policy rebuilt the cache, if it did. */
  rebuiltAt: number | null;
  stoppedBy: 'eos' | 'length';
  /** With `stepTaps`: every step's recorded taps. */
  steps?: StepRecord[];
}

/**
 * The ids that end generation: config.json's eos_token_id (an int or a list) together with
 * generation_config.json's, when that file exists (for Phi-4-mini: <|end|> and <|endoftext|>).
 */
export function checkpointEosIds(dir: string, config: Phi3Config): number[] {
  const ids = new Set(config.eosTokenIds);
  const path = join(dir, 'generation_config.json');
  if (existsSync(path)) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new InputError(`${path}: not valid JSON (${(e as Error).message})`);
    }
    const eos = (raw as Record<string, unknown>)?.eos_token_id;
    const list = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos];
    for (const id of list) {
      if (!Number.isInteger(id) || (id as number) < 0) throw new InputError(`${path}: eos_token_id ${JSON.stringify(eos)} is not a token id or a list of them`);
      ids.add(id as number);
    }
  }
  return [...ids];
}

/** Keeps only the last position of `final_norm`, so the head runs on one row, not T of them. */
const lastRowOnly: Tap = (name, t) => {
  if (name !== 'final_norm') return t;
  const [B, T, H] = t.shape;
  return (T === 1 ? t : tf.slice(t, [0, T - 1, 0], [B, 1, H])) as typeof t;
};

const disposeCache = (c: KvCache[] | null) => c && tf.dispose(c.flatMap((l) => [l.k, l.v]));

/**
 * Refuses, before any work, a run whose sequence cannot fit: a prompt longer than
 * max_position_embeddings, or prompt + max new tokens past it (the whole output must have a
 * position; we do not silently stop early).
 */
export function checkLength(config: Phi3Config, promptLength: number, maxNewTokens: number): void {
  const max = config.maxPositions;
  if (promptLength < 1) throw new InputError('prompt: no tokens');
  if (promptLength > max) throw new InputError(`prompt: ${promptLength} tokens is longer than max_position_embeddings = ${max}`);
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 1)) throw new InputError(`--max-new-tokens: must be a positive integer, got ${maxNewTokens}`);
  if (promptLength + maxNewTokens > max) {
    throw new InputError(`--max-new-tokens: prompt (${promptLength}) + ${maxNewTokens} new tokens = ${promptLength + maxNewTokens} is more than max_position_embeddings = ${max}`);
  }
}

/** Refuses option combinations that describe no policy (each message names the option). */
export function checkPolicy(policy: RopePolicy, opts: { noCache?: boolean; prefillChunk?: number; context?: number }, runLength?: number): void {
  if (!ROPE_POLICIES.includes(policy)) throw new InputError(`--rope-policy: "${policy}" is not one of ${ROPE_POLICIES.join(', ')}`);
  if (opts.noCache && (policy === 'stale' || policy === 'chunked')) throw new InputError(`--rope-policy ${policy} describes cached keys; it cannot apply with --no-cache`);
  const chunk = opts.prefillChunk;
  if (chunk !== undefined) {
    if (!(Number.isInteger(chunk) && chunk >= 1)) throw new InputError(`--prefill-chunk: must be a positive integer, got ${chunk}`);
    if (opts.noCache) throw new InputError('--prefill-chunk: --no-cache recomputes the whole sequence at every step; there is no prefill to chunk');
    if (policy === 'stale') throw new InputError('--prefill-chunk: with stale keys a chunked prefill chooses the factor set per chunk; that is --rope-policy chunked');
  } else if (policy === 'chunked') throw new InputError('--rope-policy chunked needs --prefill-chunk N (the tokens per prefill call)');
  const ctx = opts.context;
  if (ctx !== undefined) {
    if (policy !== 'from-context') throw new InputError('--context: the allocated context goes with --rope-policy from-context');
    if (!(Number.isInteger(ctx) && ctx >= 1)) throw new InputError(`--context: must be a positive integer, got ${ctx}`);
    if (runLength !== undefined && runLength > ctx) throw new InputError(`--context: ${ctx} positions cannot hold the prompt and the new tokens (${runLength})`);
  } else if (policy === 'from-context') throw new InputError('--rope-policy from-context needs --context N (the allocated context the factor set is chosen from)');
}

/** Generates up to `maxNewTokens` tokens after `prompt` (one sequence). */
export function generate(model: Phi3Model, prompt: ArrayLike<number>, opts: GenerateOptions): GenerateResult {
  const policy = opts.ropePolicy ?? 'default';
  checkPolicy(policy, opts, prompt.length + opts.maxNewTokens);
  const sampling = opts.sampling ?? {};
  checkSampling(sampling);
  if (opts.forced && opts.forced.length !== opts.maxNewTokens) throw new InputError(`forced: ${opts.forced.length} tokens for ${opts.maxNewTokens} steps`);
  checkLength(model.config, prompt.length, opts.maxNewTokens);

  const rope = model.config.rope;
  const forceLong = policy === 'fixed-long' ? true : policy === 'fixed-short' ? false
    : policy === 'from-context' ? usesLongFactors(rope, opts.context! - 1) : undefined;
  const chunk = opts.prefillChunk ?? Infinity;
  const eos = new Set(opts.eosIds ?? model.config.eosTokenIds);
  const rng = sampling.temperature ? new SplitMix64(opts.seed ?? 0) : null;

  const seq = Array.from(prompt);
  const ids: number[] = [];
  const stepLogits: Float32Array[] = [];
  const ropeLong: boolean[] = [];
  let prefillLong: boolean[] = [];
  let rebuiltAt: number | null = null;
  let stoppedBy: GenerateResult['stoppedBy'] = 'length';
  let past: KvCache[] | null = null;
  let pastLong = false; // the factor set the cached keys were rotated with (default policy)

  // the taps of the last call, its last row: a hook per selected tap observes it
  let recorded = new Map<string, { shape: number[]; data: Float32Array }>();
  const hooks: Record<string, (t: tf.Tensor) => void> = {};
  for (const name of opts.stepTaps ?? []) {
    hooks[name] = (t) => {
      const ax = seqAxis(name);
      const T = t.shape[ax];
      const row = T === 1 ? t : tf.slice(t, t.shape.map((_, i) => (i === ax ? T - 1 : 0)), t.shape.map((n, i) => (i === ax ? 1 : n)));
      recorded.set(name, { shape: row.shape, data: row.dataSync() as Float32Array });
      if (row !== t) row.dispose();
    };
  }
  const steps: StepRecord[] = [];

  /** One forward call over `input` after `past`; the last row's logits. */
  let lastCached = 0; // positions in the cache before the last call
  const call = (input: number[], before: KvCache[] | null, long: boolean | undefined, cached: number) => {
    recorded = new Map();
    lastCached = cached;
    const r = model.forward(
      { inputIds: Int32Array.from(input), batch: 1, seq: input.length },
      { past: before ?? undefined, ropeLong: long, tap: lastRowOnly, ...(opts.stepTaps?.length ? { hooks } : {}) },
    );
    const row = r.logits.dataSync() as Float32Array; // [1, 1, V]
    r.logits.dispose();
    disposeCache(before);
    return { row, cache: r.cache, long: r.ropeLong };
  };

  /**
   * The whole sequence from no past, `chunk` tokens per call. Every call uses the set of the whole
   * sequence, except under `chunked`, where each chooses from its own last position.
   */
  const prefill = (all: number[]) => {
    const long = forceLong ?? (policy === 'chunked' || chunk >= all.length ? undefined : usesLongFactors(rope, all.length - 1));
    let r: ReturnType<typeof call> | null = null;
    const sets: boolean[] = [];
    try {
      for (let s = 0; s < all.length; s += chunk) {
        r = call(all.slice(s, s + chunk), r?.cache ?? null, long, s);
        sets.push(r.long);
      }
    } catch (e) {
      disposeCache(r?.cache ?? null);
      throw e;
    }
    return { ...r!, sets };
  };

  try {
    for (let step = 0; step < opts.maxNewTokens; step++) {
      const total = seq.length;
      let fresh: boolean; // run the whole sequence (no past)?
      if (opts.noCache || past === null) fresh = true;
      else if (policy === 'default' && !pastLong && usesLongFactors(rope, total - 1)) {
        fresh = true; // the sequence just passed the original context: rebuild with the long factors
        rebuiltAt = step;
      } else fresh = false;

      let r: ReturnType<typeof call>;
      if (fresh) {
        disposeCache(past);
        past = null;
        const p = prefill(seq);
        if (step === 0) prefillLong = p.sets;
        r = p;
      } else {
        r = call(seq.slice(total - 1), past, forceLong, total - 1);
      }
      past = opts.noCache ? (disposeCache(r.cache), null) : r.cache;
      if (fresh) pastLong = r.long;
      const row = r.row;

      if (opts.stepTaps?.length) steps.push({ step, position: total - 1, cacheLength: lastCached, taps: recorded });
      const id = opts.forced ? opts.forced[step] : chooseToken(row, sampling, rng);
      ids.push(id);
      stepLogits.push(row);
      ropeLong.push(r.long);
      seq.push(id);
      opts.onToken?.(id, step);
      if (eos.has(id) && !opts.forced) {
        stoppedBy = 'eos';
        break;
      }
    }
  } finally {
    disposeCache(past);
  }
  return { ids: Int32Array.from(ids), stepLogits, ropeLong, prefillLong, rebuiltAt, stoppedBy, ...(opts.stepTaps?.length ? { steps } : {}) };
}

/** Logits of a full forward pass over `ids`, last position only. */
export function lastLogits(model: Phi3Model, ids: ArrayLike<number>, ropeLong?: boolean): Float32Array {
  const r = model.forward({ inputIds: Int32Array.from(ids), batch: 1, seq: ids.length }, { ropeLong, tap: lastRowOnly });
  const row = r.logits.dataSync() as Float32Array;
  tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);
  return row;
}

/**
 * Writes a run atomically: `generated_ids` int32 [N], `step_logits` float32 [N, V] (row i chose
 * token i) and `prompt_ids` int32 [1, T], with the settings in the metadata.
 */
export function writeGeneration(
  out: string, model: Phi3Model, prompt: ArrayLike<number>, r: GenerateResult, settings: Record<string, string>,
): void {
  const N = r.ids.length;
  const V = model.config.vocabSize;
  const logits = new Float32Array(N * V);
  r.stepLogits.forEach((row, i) => logits.set(row, i * V));
  // per-step taps: steps.S.NAME, each the step's last row; the steps' positions and cache lengths in the metadata
  const stepTensors = (r.steps ?? []).flatMap((st) => [...st.taps].map(([name, t]) => ({ name: `steps.${st.step}.${name}`, dtype: 'F32' as const, shape: t.shape, data: t.data })));
  const stepMeta: Record<string, string> = r.steps ? { step_taps: JSON.stringify({ names: [...(r.steps[0]?.taps.keys() ?? [])], steps: r.steps.map((st) => ({ step: st.step, position: st.position, cache: st.cacheLength })) }) } : {};
  writeSafetensors(out, [
    { name: 'generated_ids', dtype: 'I32', shape: [N], data: r.ids },
    { name: 'step_logits', dtype: 'F32', shape: [N, V], data: logits },
    { name: 'prompt_ids', dtype: 'I32', shape: [1, prompt.length], data: Int32Array.from(prompt) },
    ...stepTensors,
  ], {
    ...stepMeta,
    format: 'phi4-ts.generate',
    project_version: VERSION,
    checkpoint: resolve(model.source),
    config_hash: configHash(model.config),
    stopped_by: r.stoppedBy,
    rope_long: JSON.stringify(r.ropeLong),
    prefill_long: JSON.stringify(r.prefillLong),
    ...settings,
  });
}
