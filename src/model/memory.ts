// How much memory a Phi-3-family model needs: weights under each storage scheme, plus the KV
// cache and an activation workspace for a context size. Pure functions over the parsed config
// (and, when a checkpoint is at hand, its safetensors headers); the formulas are in
// docs/memory.md.
//
//   cell(scheme, context) = weights(scheme) + kvCache(context) + workspace(context)
//   kvCache   = 2 * layers * kvHeads * headDim * context * batch * kvBytes
//   workspace = batch * 4 bytes * (C * (3H + (nh + 2nkv) d + 3I) + nh * C * context + V),
//               C = min(context, PREFILL_CHUNK) query positions per step

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, numElements } from '../../weights/index.js';
import { type Phi3Config, loadConfig } from './config.js';
import { GOLDEN_DIR } from '../oracle/golden.js';
import { resolveCheckpoint } from '../checkpoint/hub.js';
import { checkTensors, expectedTensors } from './weights.js';
import { InputError } from '../errors.js';
import { formatMemory } from '../progress.js';

/** One weight tensor under its checkpoint name; `shape` is [out, in] for matrices. */
export interface WeightTensor {
  name: string;
  shape: number[];
}

export type SchemeId = 'fp32' | 'bf16' | 'q8_0' | 'q4_k_m' | 'q4_0' | 'int4_g128';

export interface Scheme {
  id: SchemeId;
  label: string;
  /** One line: how the bytes are counted. */
  formula: string;
}

export const SCHEMES: Scheme[] = [
  { id: 'fp32', label: 'fp32', formula: '4 bytes per parameter' },
  { id: 'bf16', label: 'bf16 / fp16', formula: '2 bytes per parameter (the published checkpoint)' },
  { id: 'q8_0', label: 'int8 (Q8_0)', formula: 'matrices in blocks of 32: 32 int8 + fp16 scale = 34 bytes; norms f32' },
  { id: 'q4_k_m', label: '4-bit (Q4_K_M)', formula: "llama.cpp's mix: Q4_K 144 B/256, Q5_K 176 B/256 for qkv, Q6_K 210 B/256 for the head and some down_proj; norms f32" },
  { id: 'q4_0', label: '4-bit (Q4_0)', formula: 'matrices in blocks of 32: 16 bytes of nibbles + fp16 scale = 18 bytes; norms f32' },
  { id: 'int4_g128', label: '4-bit (GPTQ/AWQ g128)', formula: 'decoder matrices: 4-bit weights + per 128 inputs an fp16 scale and a 4-bit zero; embedding, head, norms fp16' },
];

export type KvDtype = 'fp32' | 'bf16' | 'fp8' | 'int8';
export const KV_BYTES: Record<KvDtype, number> = { fp32: 4, bf16: 2, fp8: 1, int8: 1 };

/** Query positions per prefill step in the workspace estimate (llama.cpp's default micro-batch). */
export const PREFILL_CHUNK = 512;

/** The tensors the model uses (the tied head once), in checkpoint order. */
export function modelTensors(cfg: Phi3Config): WeightTensor[] {
  return [...expectedTensors(cfg)].map(([name, shape]) => ({ name, shape }));
}

export function parameterCount(tensors: WeightTensor[]): number {
  return tensors.reduce((n, t) => n + numElements(t.shape), 0);
}

// ---- llama.cpp block formats: bytes per block of `n` weights along a row ----

interface BlockType {
  name: string;
  n: number;
  bytes: number;
}
const F32: BlockType = { name: 'F32', n: 1, bytes: 4 };
const F16: BlockType = { name: 'F16', n: 1, bytes: 2 };
const Q8_0: BlockType = { name: 'Q8_0', n: 32, bytes: 34 }; // fp16 d + 32 int8
const Q4_0: BlockType = { name: 'Q4_0', n: 32, bytes: 18 }; // fp16 d + 16 bytes of nibbles
const Q5_0: BlockType = { name: 'Q5_0', n: 32, bytes: 22 }; // fp16 d + 4 bytes high bits + 16 nibbles
const Q5_1: BlockType = { name: 'Q5_1', n: 32, bytes: 24 }; // fp16 d, m + 4 + 16
const Q4_K: BlockType = { name: 'Q4_K', n: 256, bytes: 144 }; // fp16 d, dmin + 12 scale bytes + 128
const Q5_K: BlockType = { name: 'Q5_K', n: 256, bytes: 176 }; // fp16 d, dmin + 12 + 32 high bits + 128
const Q6_K: BlockType = { name: 'Q6_K', n: 256, bytes: 210 }; // 128 low + 64 high + 16 int8 scales + fp16 d

/** llama.cpp's substitutes when a row is not a multiple of 256 (then F16 if not of 32 either). */
const K_FALLBACK: Record<string, BlockType> = { Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0 };

function blockBytes(t: WeightTensor, type: BlockType): { type: string; bytes: number } {
  let ty = type;
  const row = t.shape[t.shape.length - 1];
  if (row % ty.n !== 0) ty = K_FALLBACK[ty.name] ?? F16;
  if (row % ty.n !== 0) ty = F16;
  return { type: ty.name, bytes: (numElements(t.shape) / ty.n) * ty.bytes };
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between. */
export function useMoreBits(layer: number, layers: number): boolean {
  const e = Math.floor(layers / 8);
  return layer < e || layer >= Math.floor((7 * layers) / 8) || (layer - e) % 3 === 2;
}

const layerOf = (name: string) => Number(/^model\.layers\.(\d+)\./.exec(name)?.[1] ?? -1);

/** The GGUF type llama.cpp's Q4_K_M assigns to a Phi-3 tensor (fused qkv and gate_up kept). */
function q4kmType(t: WeightTensor, cfg: Phi3Config): BlockType {
  if (t.shape.length === 1) return F32;
  if (t.name === 'lm_head.weight') return Q6_K; // output.weight
  if (t.name === 'model.embed_tokens.weight') return cfg.tieWordEmbeddings ? Q6_K : Q4_K; // tied: it is the output
  if (t.name.endsWith('self_attn.qkv_proj.weight')) return Q5_K; // attn_qkv
  if (t.name.endsWith('mlp.down_proj.weight')) return useMoreBits(layerOf(t.name), cfg.numLayers) ? Q6_K : Q4_K;
  return Q4_K; // attn_output, ffn_up (the fused gate_up)
}

/** GPTQ/AWQ: qweight (8 nibbles per int32), fp16 scales and packed 4-bit zeros per group of inputs. */
export const INT4_GROUP = 128;
function int4GroupBytes(t: WeightTensor): { type: string; bytes: number } {
  const quantized = t.shape.length === 2 && t.name.startsWith('model.layers.');
  if (!quantized) return { type: 'F16', bytes: 2 * numElements(t.shape) };
  const [out, inp] = t.shape;
  const groups = Math.ceil(inp / INT4_GROUP);
  return { type: 'int4-g128', bytes: (out * inp) / 2 + out * groups * 2 + (out * groups) / 2 };
}

export interface WeightBytes {
  bytes: number;
  /** Bytes per storage type, e.g. { Q4_K: ..., Q6_K: ... }. */
  byType: Record<string, number>;
}

export function weightBytes(scheme: SchemeId, tensors: WeightTensor[], cfg: Phi3Config): WeightBytes {
  const byType: Record<string, number> = {};
  let bytes = 0;
  for (const t of tensors) {
    const n = numElements(t.shape);
    let r: { type: string; bytes: number };
    switch (scheme) {
      case 'fp32': r = { type: 'F32', bytes: 4 * n }; break;
      case 'bf16': r = { type: 'BF16', bytes: 2 * n }; break;
      case 'q8_0': r = t.shape.length === 1 ? blockBytes(t, F32) : blockBytes(t, Q8_0); break;
      case 'q4_0': r = t.shape.length === 1 ? blockBytes(t, F32) : blockBytes(t, Q4_0); break;
      case 'q4_k_m': r = blockBytes(t, q4kmType(t, cfg)); break;
      case 'int4_g128': r = int4GroupBytes(t); break;
    }
    byType[r.type] = (byType[r.type] ?? 0) + r.bytes;
    bytes += r.bytes;
  }
  return { bytes, byType };
}

export function kvCacheBytes(cfg: Phi3Config, context: number, batch: number, kv: KvDtype): number {
  return 2 * cfg.numLayers * cfg.numKvHeads * cfg.headDim * context * batch * KV_BYTES[kv];
}

/**
 * Activations live during one prefill step of C = min(context, PREFILL_CHUNK) positions, float32:
 * the residual, its norm and the attention output (3H), the fused qkv, the attention scores of
 * C queries against the whole context, gate_up and silu(gate)*up (3I), and one row of logits.
 */
export function workspaceBytes(cfg: Phi3Config, context: number, batch: number): number {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: d, vocabSize: V } = cfg;
  const C = Math.min(context, PREFILL_CHUNK);
  return 4 * batch * (C * (3 * H + (nh + 2 * nkv) * d + 3 * I) + nh * C * context + V);
}

export interface CheckpointFigures {
  dir: string;
  /** Stored bytes of the tensors the model uses. */
  storedBytes: number;
  /** `metadata.total_size` of model.safetensors.index.json, when sharded. */
  indexTotalSize?: number;
  dtypes: string[];
}

export interface MemoryReport {
  source: string;
  config: Phi3Config;
  parameters: number;
  tiedHead: boolean;
  checkpoint?: CheckpointFigures;
  contexts: number[];
  batch: number;
  kvDtype: KvDtype;
  kvCache: number[];
  workspace: number[];
  rows: { scheme: Scheme; weights: WeightBytes; total: number[] }[];
}

export interface MemoryOptions {
  contexts: number[];
  batch: number;
  kvDtype: KvDtype;
}

export function memoryReport(cfg: Phi3Config, opts: MemoryOptions, source: string, checkpoint?: CheckpointFigures): MemoryReport {
  for (const c of opts.contexts) {
    if (c > cfg.maxPositions) throw new InputError(`--context: ${c} is more than ${source}'s max_position_embeddings (${cfg.maxPositions})`);
  }
  const tensors = modelTensors(cfg);
  const kvCache = opts.contexts.map((c) => kvCacheBytes(cfg, c, opts.batch, opts.kvDtype));
  const workspace = opts.contexts.map((c) => workspaceBytes(cfg, c, opts.batch));
  const rows = SCHEMES.map((scheme) => {
    const weights = weightBytes(scheme.id, tensors, cfg);
    return { scheme, weights, total: opts.contexts.map((_, i) => weights.bytes + kvCache[i] + workspace[i]) };
  });
  return {
    source, config: cfg, parameters: parameterCount(tensors), tiedHead: cfg.tieWordEmbeddings,
    checkpoint, contexts: opts.contexts, batch: opts.batch, kvDtype: opts.kvDtype, kvCache, workspace, rows,
  };
}

// ---- where the config comes from ----

/** Repo ids this project carries a config for, without any download. */
const BUNDLED_CONFIGS: Record<string, string> = {
  'microsoft/phi-4-mini-instruct': 'configs/phi-4-mini-instruct.json',
};

/** A bundled config.json for a Hugging Face repo id, or undefined (the one place repo ids map to files). */
export function bundledConfigFor(repoId: string): string | undefined {
  const rel = BUNDLED_CONFIGS[repoId.toLowerCase()];
  return rel ? join(GOLDEN_DIR, rel) : undefined;
}

export const DEFAULT_MEMORY_SOURCE = 'microsoft/Phi-4-mini-instruct';

/** The stored figures of a checkpoint's tensors (headers only; nothing is read from the data). */
export function checkpointFigures(dir: string, cfg: Phi3Config): CheckpointFigures {
  const ckpt = Checkpoint.open(dir);
  try {
    checkTensors(ckpt, cfg);
    let storedBytes = 0;
    const dtypes = new Set<string>();
    for (const name of expectedTensors(cfg).keys()) {
      const info = ckpt.info(name);
      storedBytes += info.byteLength;
      dtypes.add(info.dtype);
    }
    return { dir, storedBytes, indexTotalSize: ckpt.indexTotalSize, dtypes: [...dtypes].sort() };
  } finally {
    ckpt.close();
  }
}

/**
 * A checkpoint directory, a config.json, or a repo id: its snapshot in the local Hugging Face
 * cache when there is one (src/checkpoint/hub.ts), else the bundled config of a known repo.
 */
export function resolveMemorySource(arg: string): { config: Phi3Config; source: string; checkpoint?: CheckpointFigures } {
  if (existsSync(arg) && !statSync(arg).isDirectory()) return { config: loadConfig(arg), source: arg };
  let dir: string;
  try {
    dir = resolveCheckpoint(arg);
  } catch (err) {
    const bundled = bundledConfigFor(arg);
    if (bundled) return { config: loadConfig(bundled), source: `${arg} (bundled config.json)` };
    throw new InputError(`memory: "${arg}" is not a checkpoint directory, a config.json or a known repo id (${Object.keys(BUNDLED_CONFIGS).join(', ')}); ${(err as Error).message}`);
  }
  const config = loadConfig(dir);
  const hasWeights = existsSync(join(dir, 'model.safetensors')) || existsSync(join(dir, 'model.safetensors.index.json'));
  return { config, source: dir, checkpoint: hasWeights ? checkpointFigures(dir, config) : undefined };
}

// ---- text ----

const group = (n: number) => n.toLocaleString('en-US');

export function formatMemoryReport(r: MemoryReport): string {
  const cfg = r.config;
  const out: string[] = [];
  out.push(`${r.source}`);
  out.push(`  ${group(r.parameters)} parameters${r.tiedHead ? ' (head tied to the embedding, counted once)' : ''}; bf16 weights ${group(2 * r.parameters)} bytes`);
  if (r.checkpoint) {
    const c = r.checkpoint;
    out.push(`  checkpoint stores ${group(c.storedBytes)} bytes (${c.dtypes.join(', ')})${c.indexTotalSize !== undefined ? `; index total_size ${group(c.indexTotalSize)}` : ''}`);
  }
  out.push(`  ${cfg.numLayers} layers, ${cfg.numKvHeads} kv heads x ${cfg.headDim} dims; batch ${r.batch}, KV cache ${r.kvDtype}`);
  out.push('');
  const head = ['weights', ...r.contexts.map((c) => `ctx ${group(c)}`)];
  const rows: string[][] = [];
  for (const row of r.rows) rows.push([row.scheme.label, formatMemory(row.weights.bytes), ...row.total.map(formatMemory)]);
  rows.push(['+ KV cache', '', ...r.kvCache.map(formatMemory)]);
  rows.push(['+ workspace', '', ...r.workspace.map(formatMemory)]);
  const table = [['', ...head], ...rows];
  const widths = table[0].map((_, j) => Math.max(...table.map((row) => row[j].length)));
  for (const [i, row] of table.entries()) {
    out.push('  ' + row.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join('  '));
    if (i === 0) out.push('  ' + widths.map((w) => '-'.repeat(w)).join('  '));
  }
  out.push('');
  out.push('  each cell = weights + KV cache + workspace; formulas in docs/memory.md');
  return out.join('\n');
}

/** The report as plain JSON (bytes as integers). */
export function memoryJson(r: MemoryReport): unknown {
  return {
    source: r.source,
    parameters: r.parameters,
    bf16Bytes: 2 * r.parameters,
    tiedHead: r.tiedHead,
    checkpoint: r.checkpoint,
    batch: r.batch,
    kvDtype: r.kvDtype,
    contexts: r.contexts,
    kvCacheBytes: r.kvCache,
    workspaceBytes: r.workspace,
    rows: r.rows.map((row) => ({ scheme: row.scheme.id, label: row.scheme.label, weightBytes: row.weights.bytes, byType: row.weights.byType, totalBytes: row.total })),
  };
}
