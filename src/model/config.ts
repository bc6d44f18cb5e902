// The Phi3ForCausalLM configuration as a plain typed object.
//
// Reads config.json in both published styles:
//   transformers 4: top-level rope_theta / original_max_position_embeddings / partial_rotary_factor,
//                   and rope_scaling {type|rope_type: "longrope", short_factor, long_factor} or null;
//   transformers 5: rope_parameters {rope_type, rope_theta, short_factor, long_factor,
//                   original_max_position_embeddings, partial_rotary_factor, ...}.
// Anything this implementation cannot honour is refused with an error naming the field.

import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RopeConfig } from '../../layers/rotary.js';
import { isGgufPath } from '../checkpoint/gguf/checkpoint.js';
import { readGgufConfigJson } from '../checkpoint/gguf/config.js';
import { describeJson, readSmallFile } from '../../weights/index.js';
import { ConfigError } from '../errors.js';

export type { RopeConfig };

export interface Phi3Config {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  rmsNormEps: number;
  /** Each query sees at most this many keys (itself included); null = no window. */
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  rope: RopeConfig;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
}

type Json = Record<string, unknown>;

function fail(source: string, field: string, why: string): never {
  throw new ConfigError(`${source}: ${field} ${why}`);
}

/**
 * Upper bounds on the sizes, checked before anything is built from them (a config asking for two
 * million layers would otherwise spend gigabytes listing tensors before any shard is read). Each is
 * far above every published Phi-3 model (Phi-3-medium: 40 layers, hidden 5120, 17920 intermediate,
 * 200,064 tokens for Phi-4-mini, 131,072 positions) and keeps every tensor size an exact integer.
 */
export const CONFIG_LIMITS: Record<string, number> = {
  hidden_size: 65536,
  intermediate_size: 1 << 20,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 4096,
  vocab_size: 1 << 24,
  max_position_embeddings: 1 << 24,
  original_max_position_embeddings: 1 << 24,
  sliding_window: 1 << 24,
};

/** Largest config.json read (published ones are a few kilobytes). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

const show = (v: unknown) => describeJson(v);

function int(c: Json, source: string, field: string, dflt?: number): number {
  const v = c[field] ?? dflt;
  if (v === undefined) fail(source, field, 'is missing');
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(source, field, `must be a positive integer, got ${show(v)}`);
  const max = CONFIG_LIMITS[field];
  if (max !== undefined && v > max) fail(source, field, `is ${v}, more than this implementation accepts (at most ${max})`);
  return v;
}

function num(v: unknown, source: string, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(source, field, `must be a positive number, got ${show(v)}`);
  return v;
}

function optId(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) ? v : null;
}

function factors(v: unknown, n: number, source: string, field: string): number[] {
  if (!Array.isArray(v)) fail(source, field, 'must be a list of numbers');
  if (v.length !== n) fail(source, field, `has ${v.length} entries; rotary dims / 2 = ${n} are needed`);
  return v.map((x, i) => num(x, source, `${field}[${i}]`));
}

/** Parses and validates a config.json object. `source` names the file in errors. */
export function parseConfig(raw: unknown, source = 'config.json'): Phi3Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(source, 'the file', 'is not a JSON object');
  const c = raw as Json;
  if (c.model_type !== undefined && c.model_type !== 'phi3') fail(source, 'model_type', `is ${show(c.model_type)}; only "phi3" (Phi3ForCausalLM) is supported`);
  const archs = c.architectures;
  if (archs !== undefined && archs !== null && (!Array.isArray(archs) || !archs.every((a) => typeof a === 'string'))) {
    fail(source, 'architectures', `must be a list of class names such as ["Phi3ForCausalLM"], got ${show(archs)}`);
  }
  if (Array.isArray(archs) && archs.length > 0 && !archs.includes('Phi3ForCausalLM')) {
    fail(source, 'architectures', `is ${show(archs)}; only Phi3ForCausalLM is supported`);
  }
  for (const f of ['attention_bias', 'mlp_bias', 'lm_head_bias']) {
    if (c[f] === true) fail(source, f, 'is true; Phi3ForCausalLM has no biases and this implementation loads none');
  }
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') fail(source, 'hidden_act', `is ${show(c.hidden_act)}; only "silu" (SwiGLU) is supported`);

  const hiddenSize = int(c, source, 'hidden_size');
  const numHeads = int(c, source, 'num_attention_heads');
  const numKvHeads = int(c, source, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) fail(source, 'num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  let headDim: number;
  if (c.head_dim !== undefined && c.head_dim !== null) {
    headDim = int(c, source, 'head_dim');
  } else {
    if (hiddenSize % numHeads !== 0) fail(source, 'num_attention_heads', `(${numHeads}) must divide hidden_size (${hiddenSize})`);
    headDim = hiddenSize / numHeads;
  }
  const maxPositions = int(c, source, 'max_position_embeddings');

  // Rope: transformers-5 rope_parameters, else transformers-4 rope_scaling + top-level fields.
  const rp = (c.rope_parameters ?? null) as Json | null;
  const rs = (c.rope_scaling ?? null) as Json | null;
  if (rp !== null && (typeof rp !== 'object' || Array.isArray(rp))) fail(source, 'rope_parameters', `must be an object, got ${show(rp)}`);
  if (rs !== null && (typeof rs !== 'object' || Array.isArray(rs))) fail(source, 'rope_scaling', `must be an object or null, got ${show(rs)}`);
  const ropeField = rp !== null ? 'rope_parameters' : 'rope_scaling';
  const r: Json = rp ?? rs ?? {};
  const rawType = r.rope_type ?? r.type ?? 'default';
  // "su" is the name Phi-3-*-128k configs used for LongRoPE before transformers renamed it.
  const type = rawType === 'su' ? 'longrope' : rawType;
  if (type !== 'default' && type !== 'longrope') {
    fail(source, `${ropeField}.${r.rope_type !== undefined ? 'rope_type' : 'type'}`,
      `is ${show(rawType)}; only "longrope" (or no scaling) is supported`);
  }
  const theta = num(r.rope_theta ?? c.rope_theta ?? 10000, source, r.rope_theta !== undefined ? `${ropeField}.rope_theta` : 'rope_theta');
  const prf = num(r.partial_rotary_factor ?? c.partial_rotary_factor ?? 1, source, 'partial_rotary_factor');
  if (prf > 1) fail(source, 'partial_rotary_factor', `is ${prf}; it must be at most 1`);
  const rotaryDim = Math.floor(headDim * prf);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) fail(source, 'partial_rotary_factor', `gives ${rotaryDim} rotary dims of head_dim ${headDim}; an even number >= 2 is needed`);
  const origRaw = r.original_max_position_embeddings ?? c.original_max_position_embeddings;
  const originalMaxPositions = origRaw === undefined || origRaw === null ? maxPositions
    : int({ original_max_position_embeddings: origRaw }, source, 'original_max_position_embeddings');

  let shortFactor: number[] | null = null;
  let longFactor: number[] | null = null;
  let attentionScaling = 1;
  if (type === 'longrope') {
    shortFactor = factors(r.short_factor, rotaryDim / 2, source, `${ropeField}.short_factor`);
    longFactor = factors(r.long_factor, rotaryDim / 2, source, `${ropeField}.long_factor`);
    // As transformers: the factor is max/original when original_max_position_embeddings is known,
    // and attention_factor, when given, overrides the derived scaling.
    const factor = origRaw !== undefined && origRaw !== null
      ? maxPositions / originalMaxPositions
      : num(r.factor ?? 1, source, `${ropeField}.factor`);
    if (r.attention_factor !== undefined && r.attention_factor !== null) {
      attentionScaling = num(r.attention_factor, source, `${ropeField}.attention_factor`);
    } else {
      attentionScaling = factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(originalMaxPositions));
    }
  }

  let slidingWindow: number | null = null;
  if (c.sliding_window !== undefined && c.sliding_window !== null) slidingWindow = int(c, source, 'sliding_window');

  const eos = c.eos_token_id;
  const eosTokenIds = Array.isArray(eos) ? eos.filter((x): x is number => Number.isInteger(x)) : optId(eos) === null ? [] : [eos as number];

  return {
    vocabSize: int(c, source, 'vocab_size'),
    hiddenSize,
    intermediateSize: int(c, source, 'intermediate_size'),
    numLayers: int(c, source, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    rmsNormEps: num(c.rms_norm_eps ?? 1e-5, source, 'rms_norm_eps'),
    slidingWindow,
    tieWordEmbeddings: c.tie_word_embeddings === true,
    rope: { type, theta, rotaryDim, originalMaxPositions, shortFactor, longFactor, attentionScaling },
    bosTokenId: optId(c.bos_token_id),
    eosTokenIds,
    padTokenId: optId(c.pad_token_id),
  };
}

/** Reads `<dir>/config.json` (or a path to a .json file, or a .gguf's metadata). */
export function loadConfig(pathOrDir: string): Phi3Config {
  if (isGgufPath(pathOrDir)) return parseConfig(readGgufConfigJson(pathOrDir), `${pathOrDir} (GGUF metadata)`);
  const file = pathOrDir.endsWith('.json') ? pathOrDir : join(pathOrDir, 'config.json');
  if (file !== pathOrDir && existsSync(pathOrDir)) { // a directory, or what stands where one was named
    if (!statSync(pathOrDir).isDirectory()) throw new ConfigError(`${pathOrDir}: a file, not a checkpoint directory or a config .json`);
    if (!existsSync(file)) throw new ConfigError(`${pathOrDir}: no config.json, so not a checkpoint directory`);
  }
  let text: string;
  try {
    text = readSmallFile(file, MAX_CONFIG_BYTES);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return parseConfig(raw, file);
}

/** A short stable hash of the parsed config, for recording in dumps. */
export function configHash(cfg: Phi3Config): string {
  // LongRoPE factors as the float32 values every runtime computes with (layers/rope-tables.ts,
  // transformers' float32 tensor, a GGUF's F32 tensor): Phi-4-mini's config.json gives them with
  // more digits than float32 holds, and its GGUF must still hash the same
  const f32 = (xs: number[] | null) => xs && xs.map((x) => Math.fround(x));
  const rope = { ...cfg.rope, shortFactor: f32(cfg.rope.shortFactor), longFactor: f32(cfg.rope.longFactor) };
  return createHash('sha256').update(JSON.stringify({ ...cfg, rope })).digest('hex').slice(0, 16);
}
