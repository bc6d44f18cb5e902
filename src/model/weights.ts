// The model's weights, by the checkpoint's tensor names (the table in ./parameters.ts), checked
// against the config, and held as float32 tensors, bf16 host bytes or read from the files.

import * as tf from '@tensorflow/tfjs-core';
import type { DecoderWeights } from '../../layers/decoder.js';
import { type DotsWeights, WEIGHT_MEMORY_SCRATCH, releaseWeightMemory, usesKernel, weightMemory } from '../../layers/exact.js';
import { type HostMatrix, linear } from '../../layers/linear.js';
import { Checkpoint, type DType, WeightsError, dtypeSize, numElements } from '../../weights/index.js';
import { GgufCheckpoint, isGgufPath } from '../checkpoint/gguf/checkpoint.js';
import type { Phi3Config } from './config.js';
import { MODEL_PARAMETERS, decoderLayer, expectedTensors, layerTensor } from './parameters.js';
import { ProgressBar, type ProgressSink } from '../progress.js';
import { assertBackend } from '../backend.js';
import { type Bf16Kernels, bf16Kernels, floatTensor } from './widen.js';

export { LAYER_PARAMETERS, MODEL_PARAMETERS, decoderLayer, expectedTensors, layerTensor, type LayerParameter } from './parameters.js';

/**
 * Where the weights live between forward passes:
 *   float32  every weight a float32 tensor, resident (in the wasm heap on wasm): fastest, but
 *            4 bytes a parameter, so only for models whose float32 weights fit WASM_WEIGHT_BUDGET;
 *   bf16     the checkpoint's bytes in WebAssembly memories outside the tensor heap (2 bytes a
 *            parameter for bf16): each matrix widened to a float32 tensor for its own product
 *            only, and a single row (decoding) multiplied in place from the bf16 bytes;
 *   stream   only the norms held: each matrix is read from the files (the page cache) for every
 *            product: least memory;
 *   auto     float32 when it fits WASM_WEIGHT_BUDGET, else bf16.
 */
export const WEIGHT_MODES = ['auto', 'float32', 'bf16', 'stream'] as const;
export type WeightMode = (typeof WEIGHT_MODES)[number];

/** One layer's weights as tensors, for the time the layer runs. */
export interface LayerWeights {
  weights: DecoderWeights;
  /** Frees what was widened for this call (nothing for resident weights). */
  release(): void;
}

/** The model's weights, however they are held: what the forward pass asks of them. */
export interface ModelWeights {
  readonly mode: Exclude<WeightMode, 'auto'>;
  /** Bytes held on the host outside tensors (the checkpoint bytes of the bf16 mode). */
  readonly hostBytes: number;
  /** embed_tokens rows of `ids` ([batch * seq], row-major) -> [batch, seq, H]. */
  embed(ids: Int32Array, batch: number, seq: number): tf.Tensor3D;
  layer(i: number): LayerWeights;
  /** model.norm.weight [H], resident. */
  readonly norm: tf.Tensor1D;
  /** x W_head^T: [batch, seq, H] -> [batch, seq, V]. */
  head(x: tf.Tensor3D): tf.Tensor3D;
  dispose(): void;
}

/** The tensors of one resident layer: the leaves of the object decoderLayer built, each once. */
function layerTensors(l: DecoderWeights): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  const walk = (o: object) => {
    for (const v of Object.values(o)) if (v instanceof tf.Tensor) out.push(v); else walk(v as object);
  };
  walk(l);
  return out;
}

/** Buffers old checkpoints carry that transformers ignores on load too. */
const IGNORED = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/** Checks names and shapes; returns nothing, throws a WeightsError naming the first problem. */
export function checkTensors(ckpt: Pick<TensorSource, 'dir' | 'names' | 'has' | 'info'>, cfg: Phi3Config): void {
  const expected = expectedTensors(cfg);
  for (const [name, shape] of expected) {
    if (!ckpt.has(name)) throw new WeightsError(`${ckpt.dir}: tensor "${name}" is missing`);
    const got = ckpt.info(name).shape;
    if (got.join(',') !== shape.join(',')) {
      throw new WeightsError(`${ckpt.info(name).file}: tensor "${name}" has shape [${got}], the config needs [${shape}]`);
    }
  }
  for (const name of ckpt.names()) {
    if (expected.has(name) || IGNORED.test(name)) continue;
    // A tied checkpoint may still carry a copy of the head; transformers ties it to the embedding.
    if (name === MODEL_PARAMETERS.lmHead.tensor && cfg.tieWordEmbeddings) continue;
    throw new WeightsError(`${ckpt.info(name).file}: unexpected tensor "${name}" (not part of Phi3ForCausalLM with this config)`);
  }
}

/** The wasm backend's heap: 4 GiB of 32-bit addresses, less room for activations. */
export const WASM_WEIGHT_BUDGET = 3.5 * 2 ** 30;

/** Bytes the weights take once widened to float32 (the tied head counted once). */
export function float32Bytes(cfg: Phi3Config): number {
  let n = 0;
  for (const shape of expectedTensors(cfg).values()) n += numElements(shape);
  return 4 * n;
}

export interface LoadWeightsOptions {
  /** Default: $PHI4_WEIGHTS, else auto. */
  mode?: WeightMode;
  /** Called once with the bytes to read; default a bar on stderr, drawn only when it is a terminal. */
  progress?: (totalBytes: number) => ProgressSink;
}

/** The mode named by `requested`, else $PHI4_WEIGHTS, else auto; refused (naming the source) when unknown. */
export function weightMode(requested?: string): WeightMode {
  const want = requested ?? (process.env.PHI4_WEIGHTS || undefined) ?? 'auto';
  if (!(WEIGHT_MODES as readonly string[]).includes(want)) {
    const source = requested !== undefined ? '--weights' : 'PHI4_WEIGHTS';
    throw new WeightsError(`${source}: unknown weights mode "${want}" (choose ${WEIGHT_MODES.join(', ')})`);
  }
  return want as WeightMode;
}

/** What reading float32 weights needs of a checkpoint: a safetensors Checkpoint or a GGUF (src/checkpoint/gguf/). */
export type TensorSource = Pick<Checkpoint, 'dir' | 'names' | 'has' | 'info' | 'readBytes' | 'close'>;

/** The same, with asynchronous reads (weights/ranged.ts's RangedSafetensors: a Blob or a URL in the browser). */
export interface AsyncTensorSource extends Pick<TensorSource, 'dir' | 'names' | 'has' | 'info'> {
  readBytes(name: string): Promise<Uint8Array>;
}

/** A .gguf checkpoint: dequantized to float32 (the only mode it loads in). */
function loadGgufWeights(path: string, cfg: Phi3Config, opts: LoadWeightsOptions): ModelWeights {
  const mode = weightMode(opts.mode);
  if (mode !== 'auto' && mode !== 'float32') throw new WeightsError(`${path}: a GGUF checkpoint loads dequantized to float32 only, not as ${mode}`);
  const ckpt = new GgufCheckpoint(path);
  try {
    checkTensors(ckpt, cfg);
    return ResidentWeights.read(ckpt, cfg, opts.progress ?? ((total: number) => new ProgressBar('load', total)));
  } finally {
    ckpt.close();
  }
}

/** Opens the checkpoint, checks its tensors against the config and holds them as `mode` says. */
export function loadWeights(dir: string, cfg: Phi3Config, opts: LoadWeightsOptions = {}): ModelWeights {
  assertBackend();
  if (isGgufPath(dir)) return loadGgufWeights(dir, cfg, opts);
  const ckpt = Checkpoint.open(dir);
  let held: HostWeights | undefined;
  try {
    const need = float32Bytes(cfg);
    let mode = weightMode(opts.mode);
    if (mode === 'auto') mode = need <= WASM_WEIGHT_BUDGET ? 'float32' : 'bf16';
    if (mode === 'float32' && tf.getBackend() === 'wasm' && need > WASM_WEIGHT_BUDGET) {
      throw new WeightsError(`${ckpt.dir}: the weights need ${(need / 2 ** 30).toFixed(1)} GiB as float32, more than the wasm backend's 4 GiB heap can hold; hold them as bf16 instead (weights mode bf16 or stream: PHI4_WEIGHTS)`);
    }
    checkTensors(ckpt, cfg);
    const progress = opts.progress ?? ((total: number) => new ProgressBar('load', total));
    if (mode === 'float32') return ResidentWeights.read(ckpt, cfg, progress);
    held = HostWeights.open(ckpt, cfg, mode, progress); // reads through ckpt from now on, and closes it
    return held;
  } finally {
    if (!held) ckpt.close();
  }
}

/** Every weight a resident float32 tensor (bf16 and f16 widen exactly). */
export class ResidentWeights implements ModelWeights {
  readonly mode = 'float32';
  readonly hostBytes = 0;

  constructor(
    readonly embedTokens: tf.Tensor2D,
    readonly layers: DecoderWeights[],
    readonly norm: tf.Tensor1D,
    /** The same tensor as embedTokens when the head is tied. */
    readonly lmHead: tf.Tensor2D,
  ) {}

  static read(ckpt: TensorSource, cfg: Phi3Config, progress: (total: number) => ProgressSink): ResidentWeights {
    const bar = progress(tensorBytes(ckpt, cfg));
    const made: tf.Tensor[] = [];
    try {
      const t = (n: string) => {
        const info = ckpt.info(n);
        const x = floatTensor(ckpt.readBytes(n), info.dtype, info.shape);
        made.push(x);
        bar.add(info.byteLength);
        return x;
      };
      return ResidentWeights.build(cfg, t);
    } catch (err) {
      tf.dispose(made); // a read failed part way: free what was made
      throw err;
    } finally {
      bar.done();
    }
  }

  /**
   * As `read`, from a source whose reads are asynchronous (weights/ranged.ts: a Blob, a URL):
   * one tensor's bytes at a time, each widened to its float32 tensor before the next is read.
   */
  static async readAsync(src: AsyncTensorSource, cfg: Phi3Config, progress: (total: number) => ProgressSink): Promise<ResidentWeights> {
    const bar = progress(tensorBytes(src, cfg));
    const made = new Map<string, tf.Tensor>();
    try {
      for (const name of expectedTensors(cfg).keys()) {
        const info = src.info(name);
        made.set(name, floatTensor(await src.readBytes(name), info.dtype, info.shape));
        bar.add(info.byteLength);
      }
      return ResidentWeights.build(cfg, (n) => made.get(n)!);
    } catch (err) {
      tf.dispose([...made.values()]);
      throw err;
    } finally {
      bar.done();
    }
  }

  /** The weights from `t`, which gives each tensor by its checkpoint name. */
  private static build(cfg: Phi3Config, t: (name: string) => tf.Tensor): ResidentWeights {
    const t2 = (n: string) => t(n) as tf.Tensor2D;
    const t1 = (n: string) => t(n) as tf.Tensor1D;
    const embedTokens = t2(MODEL_PARAMETERS.embedTokens.tensor);
    const layers: DecoderWeights[] = [];
    for (let i = 0; i < cfg.numLayers; i++) layers.push(decoderLayer(i, t1, t2));
    const norm = t1(MODEL_PARAMETERS.norm.tensor);
    const lmHead = cfg.tieWordEmbeddings ? embedTokens : t2(MODEL_PARAMETERS.lmHead.tensor);
    return new ResidentWeights(embedTokens, layers, norm, lmHead);
  }

  embed(ids: Int32Array, batch: number, seq: number): tf.Tensor3D {
    return tf.tidy(() => tf.gather(this.embedTokens, tf.tensor2d(ids, [batch, seq], 'int32')) as tf.Tensor as tf.Tensor3D);
  }

  layer(i: number): LayerWeights {
    return { weights: this.layers[i]!, release() {} };
  }

  head(x: tf.Tensor3D): tf.Tensor3D {
    return linear(x, this.lmHead);
  }

  dispose(): void {
    const all: tf.Tensor[] = [this.embedTokens, this.norm];
    if (this.lmHead !== this.embedTokens) all.push(this.lmHead);
    for (const l of this.layers) all.push(...layerTensors(l));
    tf.dispose(all);
  }
}

/** Bytes of the tensors the model uses (a tied checkpoint's spare lm_head copy not counted). */
function tensorBytes(ckpt: Pick<TensorSource, 'info'>, cfg: Phi3Config): number {
  let n = 0;
  for (const name of expectedTensors(cfg).keys()) n += ckpt.info(name).byteLength;
  return n;
}

interface Located {
  dtype: DType;
  shape: number[];
  byteLength: number;
}

/**
 * WebAssembly memories holding bf16 matrices (each memory at most 4 GiB), with the SIMD
 * matrix-vector loop of src/model/widen.ts bound to each, and room at the front of each for x and y.
 */
interface Bank {
  memory: WebAssembly.Memory;
  bytes: Uint8Array;
  kernels: Bf16Kernels | null;
  x: number;
  y: number;
}

interface Placed {
  bank: Bank;
  at: number;
}

/** The largest memory a bank is given: 4 GiB less one 64 KiB page. */
const BANK_LIMIT = 2 ** 32 - 2 ** 16;
const align16 = (n: number) => Math.ceil(n / 16) * 16;

/**
 * Weights kept as the checkpoint's bytes: in host memory (bf16 mode, inside WebAssembly memories
 * where a single row can be multiplied in place) or read from the files every time (stream
 * mode). A matrix becomes a float32 tensor only for the product that needs it. The norms are
 * resident float32.
 */
export class HostWeights implements ModelWeights {
  /** float32 bytes of head rows widened at a time: a bounded slice of the heap, whatever the vocabulary. Tunable for tests. */
  static headChunkBytes = 128 * 2 ** 20;

  private scratch = new Uint8Array(0);
  private readonly layerNorms: [tf.Tensor1D, tf.Tensor1D][];
  readonly norm: tf.Tensor1D;

  private constructor(
    /** Every read goes through it (weights/: positioned reads of a tensor's range); closed by dispose. */
    private readonly ckpt: Checkpoint,
    private readonly cfg: Phi3Config,
    readonly mode: 'bf16' | 'stream',
    private readonly located: Map<string, Located>,
    /** Where each tensor's bytes lie in bf16 mode; empty in stream mode. */
    private readonly placed: Map<string, Placed>,
  ) {
    const vec = (name: string) => {
      const l = this.info(name);
      return floatTensor(this.bytes(name, 0, l.byteLength), l.dtype, l.shape) as tf.Tensor1D;
    };
    this.layerNorms = [];
    for (let i = 0; i < cfg.numLayers; i++) {
      this.layerNorms.push([vec(layerTensor(i, 'inputLayernorm')), vec(layerTensor(i, 'postAttentionLayernorm'))]);
    }
    this.norm = vec(MODEL_PARAMETERS.norm.tensor);
  }

  static open(ckpt: Checkpoint, cfg: Phi3Config, mode: 'bf16' | 'stream', progress: (total: number) => ProgressSink): HostWeights {
    const located = new Map<string, Located>();
    for (const name of expectedTensors(cfg).keys()) {
      const { dtype, shape, byteLength } = ckpt.info(name);
      located.set(name, { dtype, shape, byteLength });
    }
    const placed = new Map<string, Placed>();
    const w = new HostWeights(ckpt, cfg, mode, located, placed); // norms read from the files
    if (mode === 'bf16') {
      const bar = progress(tensorBytes(ckpt, cfg));
      try {
        w.place(bar);
      } catch (err) {
        w.dispose();
        throw err;
      } finally {
        bar.done();
      }
    }
    return w;
  }

  /** Plans the banks, creates them at their final size (views never move) and reads every tensor into them. */
  private place(bar: ProgressSink): void {
    const shape2 = [...this.located.values()].filter((l) => l.shape.length === 2);
    const maxRows = Math.max(...shape2.map((l) => l.shape[0]!));
    const maxCols = Math.max(...shape2.map((l) => l.shape[1]!));
    // The front: x and y of the in-place matrix-vector loop, and the exact kernel's scratch (used at other times).
    const front = Math.max(align16(4 * maxCols) + align16(4 * maxRows), WEIGHT_MEMORY_SCRATCH);
    const groups: [string, Located][][] = [[]];
    let used = front;
    for (const entry of this.located) {
      const size = align16(entry[1].byteLength);
      if (used + size > BANK_LIMIT && groups[groups.length - 1]!.length > 0) {
        groups.push([]);
        used = front;
      }
      groups[groups.length - 1]!.push(entry);
      used += size;
    }
    for (const group of groups) {
      const total = group.reduce((n, [, l]) => n + align16(l.byteLength), front);
      const memory = weightMemory(total);
      const bank: Bank = { memory, bytes: new Uint8Array(memory.buffer), kernels: bf16Kernels(memory), x: 0, y: align16(4 * maxCols) };
      let at = front;
      for (const [name, l] of group) {
        this.readInto(name, 0, bank.bytes.subarray(at, at + l.byteLength));
        this.placed.set(name, { bank, at });
        bar.add(l.byteLength);
        at += align16(l.byteLength);
      }
    }
  }

  get hostBytes(): number {
    let n = 0;
    for (const name of this.placed.keys()) n += this.info(name).byteLength;
    return n;
  }

  private info(name: string): Located {
    const l = this.located.get(name);
    if (!l) throw new WeightsError(`no tensor "${name}" in this checkpoint`);
    return l;
  }

  /** Reads bytes [start, start + dst.length) of a tensor from its file into dst. */
  private readInto(name: string, start: number, dst: Uint8Array): void {
    this.info(name);
    this.ckpt.readRange(name, start, dst);
  }

  /**
   * Bytes [start, end) of a tensor: a view of the held copy, or (stream mode) read into a scratch
   * buffer that the next call reuses, so use them before asking again.
   */
  private bytes(name: string, start: number, end: number): Uint8Array {
    const p = this.placed.get(name);
    if (p) return p.bank.bytes.subarray(p.at + start, p.at + end);
    const n = end - start;
    if (this.scratch.byteLength < n) this.scratch = new Uint8Array(n);
    const dst = this.scratch.subarray(0, n);
    this.readInto(name, start, dst);
    return dst;
  }

  private widened(name: string, rowStart = 0, rowEnd?: number): tf.Tensor2D {
    const l = this.info(name);
    const [rows, cols] = l.shape as [number, number];
    const end = rowEnd ?? rows;
    const rowBytes = cols * dtypeSize(l.dtype);
    return floatTensor(this.bytes(name, rowStart * rowBytes, end * rowBytes), l.dtype, [end - rowStart, cols]) as tf.Tensor2D;
  }

  /** W x for one row, read straight from the held bf16 bytes; null where that is not possible. */
  private matVecOf(name: string): ((x: Float32Array) => Float32Array) | undefined {
    const p = this.placed.get(name);
    const l = this.info(name);
    const [rows, cols] = l.shape as [number, number];
    if (!p || !p.bank.kernels || l.dtype !== 'BF16' || cols % 8 !== 0) return undefined;
    const { bank } = p;
    const kernels = bank.kernels!;
    return (x) => {
      new Float32Array(bank.bytes.buffer, bank.x, cols).set(x);
      kernels.gemv(p.at, bank.x, bank.y, rows, cols);
      return new Float32Array(bank.bytes.buffer, bank.y, rows).slice();
    };
  }

  /** Rows [rowStart, rowEnd) as the exact kernel takes them: the bf16 or float32 bytes where they lie (or as read). */
  private dotsWeights(name: string, rowStart = 0, rowEnd?: number): DotsWeights | undefined {
    const l = this.info(name);
    const [rows, cols] = l.shape as [number, number];
    const rowBytes = cols * dtypeSize(l.dtype);
    if (l.dtype !== 'BF16' && l.dtype !== 'F32') return undefined;
    const p = this.placed.get(name);
    if (p) return { resident: { memory: p.bank.memory, at: p.at + rowStart * rowBytes, bf16: l.dtype === 'BF16' } };
    const bytes = this.bytes(name, rowStart * rowBytes, (rowEnd ?? rows) * rowBytes);
    return l.dtype === 'BF16' ? { bf16: bytes } : { f32: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) };
  }

  /** Rows [rowStart, rowEnd) of a matrix, for `linear`: handed to the exact kernel as they lie, or widened. */
  private rows(name: string, rowStart: number, rowEnd: number): HostMatrix {
    return {
      shape: [rowEnd - rowStart, this.info(name).shape[1]!],
      toTensor: () => this.widened(name, rowStart, rowEnd),
      dotsWeights: () => this.dotsWeights(name, rowStart, rowEnd),
    };
  }

  private matrix(name: string): HostMatrix {
    return { ...this.rows(name, 0, this.info(name).shape[0]!), matVec: this.matVecOf(name) };
  }

  embed(ids: Int32Array, batch: number, seq: number): tf.Tensor3D {
    const name = MODEL_PARAMETERS.embedTokens.tensor;
    const l = this.info(name);
    const rowBytes = l.shape[1]! * dtypeSize(l.dtype);
    const out = new Uint8Array(ids.length * rowBytes);
    ids.forEach((id, k) => out.set(this.bytes(name, id * rowBytes, (id + 1) * rowBytes), k * rowBytes));
    return floatTensor(out, l.dtype, [batch, seq, l.shape[1]!]) as tf.Tensor3D;
  }

  /** The layer's matrices stay host bytes: `linear` widens each for its product, or multiplies one row in place. */
  layer(i: number): LayerWeights {
    const [inputLayernorm, postAttentionLayernorm] = this.layerNorms[i]!;
    const norms = new Map([[layerTensor(i, 'inputLayernorm'), inputLayernorm], [layerTensor(i, 'postAttentionLayernorm'), postAttentionLayernorm]]);
    const weights: DecoderWeights = decoderLayer(i, (tensor) => norms.get(tensor)!, (tensor) => this.matrix(tensor));
    return { weights, release() {} };
  }

  /** One row: in place; more: a slice of vocabulary rows at a time, so the heap never holds the head. */
  head(x: tf.Tensor3D): tf.Tensor3D {
    const name = (this.cfg.tieWordEmbeddings ? MODEL_PARAMETERS.embedTokens : MODEL_PARAMETERS.lmHead).tensor;
    const [V, H] = this.info(name).shape as [number, number];
    const whole = this.matrix(name);
    // In one piece where nothing is widened on the heap: read in place by the exact kernel, or one row in place.
    if ((usesKernel() && this.placed.has(name)) || (whole.matVec && x.shape[0] * x.shape[1] === 1)) return linear(x, whole);
    const step = Math.max(1, Math.floor(HostWeights.headChunkBytes / (4 * H)));
    const parts: tf.Tensor3D[] = [];
    try {
      for (let r = 0; r < V; r += step) parts.push(linear(x, this.rows(name, r, Math.min(V, r + step))));
      return parts.length === 1 ? parts[0]! : tf.concat(parts, 2);
    } finally {
      if (parts.length > 1) tf.dispose(parts);
    }
  }

  dispose(): void {
    tf.dispose([this.norm, ...this.layerNorms.flat()]);
    this.ckpt.close();
    for (const bank of new Set([...this.placed.values()].map((p) => p.bank))) releaseWeightMemory(bank.memory);
    this.placed.clear();
    this.scratch = new Uint8Array(0);
  }
}
