// A random checkpoint in the published layout of a config: bf16 tensors by the checkpoint's names
// (src/weights.ts), two shards split as Phi-4-mini's repository is (the first shard holds the
// tensors that fit in 64% of the bytes: 4.9 of 7.7 GB at full size), model.safetensors.index.json
// and config.json. The head is tied when the config says so (no lm_head.weight).
//
// Values, as golden/generator/gen_hf_golden.py draws them:
//   RMSNorm weights  U(0.5, 1.5)     not all ones, so a missing scale shows
//   embed_tokens     N(0, 1)
//   linear weights   N(0, 1 / in)    unit-variance outputs, so every layer moves the residual
// from a seeded generator per tensor (seed and tensor name), so a 2-layer checkpoint holds the
// same first layers as the full one. Tensors are generated and written in 4 Mi-element pieces:
// the model is never in memory.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INDEX_FILE_NAME, SafetensorsWriter, SmallFileError, type TensorSpec, readSmallFile } from '../weights/index.js';
import { UsageError } from './args.js';
import { ConfigError, MAX_CONFIG_BYTES, parseConfig } from './config.js';
import { type ProgressSink, noProgress } from './progress.js';
import { markSynthDone, markSynthStarted, reclaimKilledSynth, startReaper } from './safety/outputs.js';
import { expectedTensors } from './weights.js';

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

/** Share of the bytes in the first shard: Phi-4-mini's 4.9 GB of 7.67 GB. */
export const FIRST_SHARD_SHARE = 0.64;

const PIECE = 4 * 1024 * 1024;

/** xoshiro128** seeded through splitmix32 from (seed, name): fast, 32-bit, reproducible. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, name = '') {
    let h = (seed ^ 0x9e3779b9) >>> 0;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
    const next = () => {
      h = (h + 0x9e3779b9) >>> 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  /** Uniform 32-bit integer. */
  u32(): number {
    const r = Math.imul(((Math.imul(this.b, 5) << 7) | (Math.imul(this.b, 5) >>> 25)), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = (this.d << 11) | (this.d >>> 21);
    return r;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.u32() + 0.5) / 4294967296;
  }
}

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

/** Splits tensors (in order) into two shards: the first takes those that fit in `share` of the bytes. */
export function splitShards(specs: TensorSpec[], bytesOf: (s: TensorSpec) => number, share = FIRST_SHARD_SHARE): [TensorSpec[], TensorSpec[]] {
  const total = specs.reduce((n, s) => n + bytesOf(s), 0);
  let acc = 0;
  let cut = 0;
  while (cut < specs.length - 1 && (cut === 0 || acc + bytesOf(specs[cut]!) <= share * total)) acc += bytesOf(specs[cut++]!);
  return [specs.slice(0, cut), specs.slice(cut)];
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
    if (!statSync(outDir).isDirectory()) throw new UsageError(`--out: ${outDir} exists and is not a directory`);
    reclaimKilledSynth(outDir); // a directory a killed synth left is taken over (src/safety/outputs.ts)
    if (readdirSync(outDir).length > 0) throw new UsageError(`--out: ${outDir} is not empty; give a new or empty directory`);
  }
  const created = !existsSync(outDir);
  mkdirSync(outDir, { recursive: true });
  markSynthStarted(outDir);
  startReaper([outDir]);

  const specs: TensorSpec[] = [...expectedTensors(cfg)].map(([name, shape]) => ({ name, dtype: 'BF16', shape }));
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
    shards.forEach((part, i) => part.forEach((s) => (weightMap[s.name] = names[i]!)));
    writeAtomic(join(outDir, INDEX_FILE_NAME), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2) + '\n');
    written.push(join(outDir, INDEX_FILE_NAME));
    writeAtomic(join(outDir, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
    written.push(join(outDir, 'config.json'));
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
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
