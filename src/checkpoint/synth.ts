// A random checkpoint in the published layout of a config: bf16 tensors by the checkpoint's names
// (src/model/weights.ts), sharded as transformers' save_pretrained does (tensors in state-dict order,
// a new shard whenever the next tensor would pass 5 GB: Phi-4-mini's published index exactly,
// layer 18's MLP and norms in shard 2; a checkpoint under 5 GB is still cut in two, at 64% of
// its bytes, so the sharded path is exercised), model.safetensors.index.json and config.json.
// The head is tied when the config says so (no lm_head.weight). With Phi-4-mini's vocabulary
// it also writes the published tokenizer and generation files (golden/phi-4-mini-instruct/,
// tokenizer.json built by src/text/tokenizer-build.ts), when they are at hand.
//
// Values, as golden/generator/gen_hf_golden.py draws them:
//   RMSNorm weights  U(0.5, 1.5)     not all ones, so a missing scale shows
//   embed_tokens     N(0, 1)
//   linear weights   N(0, 1 / in)    unit-variance outputs, so every layer moves the residual
// from a seeded generator per tensor (seed and tensor name), so a 2-layer checkpoint holds the
// same first layers as the full one. Tensors are generated and written in 4 Mi-element pieces:
// the model is never in memory.

import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INDEX_FILE_NAME, SafetensorsWriter, SmallFileError, type TensorSpec, readSmallFile } from '../../weights/index.js';
import { MAX_CONFIG_BYTES, parseConfig } from '../model/config.js';
import { type ProgressSink, noProgress } from '../progress.js';
import { PUBLISHED_DIR, fullTokenizer, haveVocabFiles } from '../text/tokenizer-build.js';
import { markSynthDone, markSynthStarted, reclaimKilledSynth, startReaper, writeFileAtomic } from '../safety/outputs.js';
import { expectedTensors } from '../model/weights.js';
import { ConfigError } from '../errors.js';
import { InputError } from '../errors.js';
import { Rng } from './rng.js';

export { Rng };

/** Phi-4-mini's vocabulary size: a synthetic checkpoint with it gets the published tokenizer. */
const PHI4_VOCAB = 200064;

export interface SynthOptions {
  seed?: number;
  /** Overrides num_hidden_layers. */
  layers?: number;
  progress?: (totalBytes: number) => ProgressSink;
}

export interface SynthResult {
  files: string[];
  totalBytes: number;
  numLayers: number;
}

/** transformers' save_pretrained default, max_shard_size "5GB". */
export const MAX_SHARD_BYTES = 5e9;
/** Where a checkpoint under MAX_SHARD_BYTES is cut: Phi-4-mini's 4.9 GB of 7.67 GB. */
export const FIRST_SHARD_SHARE = 0.64;
/** The published files written beside a synthetic checkpoint of Phi-4-mini's vocabulary. */
export const PUBLISHED_FILES = ['tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'generation_config.json'];

const PIECE = 4 * 1024 * 1024;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits -> bf16 bits, round to nearest even (finite input). */
function bf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Fills `out` with bf16 bits of the tensor's distribution (see the file comment). */
function fill(out: Uint16Array, rng: Rng, kind: 'norm' | 'normal', scale: number): void {
  if (kind === 'norm') {
    for (let i = 0; i < out.length; i++) out[i] = bf16(0.5 + rng.uniform());
    return;
  }
  // Box-Muller, both outputs used.
  for (let i = 0; i < out.length; i += 2) {
    const r = scale * Math.sqrt(-2 * Math.log(rng.uniform()));
    const th = 2 * Math.PI * rng.uniform();
    out[i] = bf16(r * Math.cos(th));
    if (i + 1 < out.length) out[i + 1] = bf16(r * Math.sin(th));
  }
}

/**
 * The tensors in the order of transformers' state dict: Phi3DecoderLayer registers self_attn
 * (o_proj, qkv_proj), mlp (gate_up_proj, down_proj), then input_layernorm and post_attention_layernorm.
 */
export function stateDictOrder(specs: TensorSpec[]): TensorSpec[] {
  const rank = (name: string) => {
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
    if (!m) return name === 'model.embed_tokens.weight' ? [-1, 0] : [Infinity, name === 'model.norm.weight' ? 0 : 1];
    const within = ['self_attn.o_proj.weight', 'self_attn.qkv_proj.weight', 'mlp.gate_up_proj.weight', 'mlp.down_proj.weight',
      'input_layernorm.weight', 'post_attention_layernorm.weight'].indexOf(m[2]!);
    return [Number(m[1]), within];
  };
  return [...specs].sort((a, b) => {
    const [la, wa] = rank(a.name);
    const [lb, wb] = rank(b.name);
    return la! - lb! || wa! - wb!;
  });
}

/**
 * Splits tensors (in order) into shards as transformers does: a new shard when the next tensor
 * would take the current one past `maxBytes` (default: MAX_SHARD_BYTES, or FIRST_SHARD_SHARE of
 * the total for a checkpoint smaller than that).
 */
export function splitShards(specs: TensorSpec[], bytesOf: (s: TensorSpec) => number, maxBytes?: number): TensorSpec[][] {
  const total = specs.reduce((n, s) => n + bytesOf(s), 0);
  const max = maxBytes ?? (total > MAX_SHARD_BYTES ? MAX_SHARD_BYTES : FIRST_SHARD_SHARE * total);
  const shards: TensorSpec[][] = [[]];
  let acc = 0;
  for (const s of specs) {
    const b = bytesOf(s);
    if (acc > 0 && acc + b > max) {
      shards.push([]);
      acc = 0;
    }
    shards.at(-1)!.push(s);
    acc += b;
  }
  return shards;
}

/** Writes the checkpoint into `outDir` (created; refused when it exists and is not empty). */
export function synthesize(configPath: string, outDir: string, opts: SynthOptions = {}): SynthResult {
  const file = existsSync(configPath) && statSync(configPath).isDirectory() ? join(configPath, 'config.json') : configPath;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readSmallFile(file, MAX_CONFIG_BYTES)) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(err instanceof SmallFileError && err.cause === undefined ? err.message : `${file}: cannot read a JSON config (${((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]})`);
  }
  if (opts.layers !== undefined) raw = { ...raw, num_hidden_layers: opts.layers };
  const cfg = parseConfig(raw, file);
  const seed = opts.seed ?? 0;

  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new InputError(`--out: ${outDir} exists and is not a directory`);
    reclaimKilledSynth(outDir); // a directory a killed synth left is taken over (src/safety/outputs.ts)
    if (readdirSync(outDir).length > 0) throw new InputError(`--out: ${outDir} is not empty; give a new or empty directory`);
  }
  const created = !existsSync(outDir);
  mkdirSync(outDir, { recursive: true });
  markSynthStarted(outDir);
  startReaper([outDir]);

  const specs = stateDictOrder([...expectedTensors(cfg)].map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape })));
  const bytesOf = (s: TensorSpec) => 2 * s.shape.reduce((a, b) => a * b, 1);
  const totalBytes = specs.reduce((n, s) => n + bytesOf(s), 0);
  const shards = splitShards(specs, bytesOf);
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const progress = opts.progress?.(totalBytes) ?? noProgress;
  const written: string[] = [];
  try {
    const buf = new Uint16Array(PIECE);
    shards.forEach((part, i) => {
      const target = join(outDir, names[i]!);
      const w = SafetensorsWriter.create(target, part, { format: 'pt' });
      try {
        for (const s of part) {
          const n = s.shape.reduce((a, b) => a * b, 1);
          const rng = new Rng(seed, s.name);
          const kind = s.shape.length === 1 ? 'norm' : 'normal';
          const scale = s.name === 'model.embed_tokens.weight' || s.name === 'lm_head.weight' ? 1 : 1 / Math.sqrt(s.shape[1]!);
          for (let at = 0; at < n; at += PIECE) {
            const piece = buf.subarray(0, Math.min(PIECE, n - at));
            fill(piece, rng, kind, scale);
            w.write(s.name, piece);
            progress.add(2 * piece.length);
          }
        }
        w.finish();
      } catch (err) {
        w.abort();
        throw err;
      }
      written.push(target);
    });
    const weightMap: Record<string, string> = {};
    const placed = new Map<string, string>();
    shards.forEach((part, i) => part.forEach((s) => placed.set(s.name, names[i]!)));
    for (const name of [...placed.keys()].sort()) weightMap[name] = placed.get(name)!; // sorted, as transformers writes it
    writeAtomic(join(outDir, INDEX_FILE_NAME), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + '\n');
    written.push(join(outDir, INDEX_FILE_NAME));
    writeAtomic(join(outDir, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
    written.push(join(outDir, 'config.json'));
    if (cfg.vocabSize === PHI4_VOCAB && haveVocabFiles()) {
      for (const f of PUBLISHED_FILES) {
        writeAtomic(join(outDir, f), readFileSync(join(PUBLISHED_DIR, f), 'utf8'));
        written.push(join(outDir, f));
      }
      writeAtomic(join(outDir, 'tokenizer.json'), JSON.stringify(fullTokenizer()));
      written.push(join(outDir, 'tokenizer.json'));
    }
    markSynthDone(outDir);
  } catch (err) {
    for (const f of written) rmSync(f, { force: true });
    markSynthDone(outDir);
    if (created) rmSync(outDir, { recursive: true, force: true });
    throw err;
  } finally {
    progress.done();
  }
  return { files: written, totalBytes, numLayers: cfg.numLayers };
}

function writeAtomic(path: string, text: string): void {
  writeFileAtomic(path, text);
}
