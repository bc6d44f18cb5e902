/// <reference types="long" preserve="true" />
// The browser build's API: `import { loadModel, ready, tf } from 'phi4-ts/browser'` (an ES module
// bundle, dist/browser/phi4-ts.js, made by tools/build-browser.ts; docs/browser.md).
//
// The same model code as in Node (src/model/, layers/), on tfjs's wasm backend (or cpu). What
// differs is only where the bytes come from: a checkpoint is a `File`/`Blob` the user picked or a
// URL, read a tensor at a time through ranged reads (weights/ranged.ts: Blob.slice, HTTP Range),
// never as one buffer; config.json is an object, a Blob or a URL.
//
// The exact (float64-sum) kernel runs on Web Workers over shared memory when the page is
// cross-origin isolated (navigator.hardwareConcurrency threads, the page's own included; workers
// started from dots-worker.js beside the bundle, layers/kernels/threads-browser.ts), and on the
// page's thread alone otherwise. The sums are the same float64 sums as Node's for any thread
// count, so the results are Node's.
// The reference above: tfjs-core's declarations name the global `Long` of @types/long (see src/index.ts).

import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { type Phi3Config, parseConfig } from '../model/config.js';
import { Phi3Model } from '../model/model.js';
import { ResidentWeights, checkTensors } from '../model/weights.js';
import { expectedTensors } from '../model/parameters.js';
import { numElements } from '../../weights/dtypes.js';
import { BackendError, ConfigError, WeightsError } from '../errors.js';
import { RangedSafetensors, type RangeReader, blobReader, urlReader } from '../../weights/ranged.js';
import { kernelChunks, kernelStarted, kernelThreads, useKernelThreads } from '../../layers/kernels/dots.js';

export { tf, Phi3Model, parseConfig, RangedSafetensors, blobReader, urlReader, type RangeReader, type Phi3Config };
export type { ForwardInputs, ForwardOptions, ForwardResult } from '../model/model.js';
export type { Hook, Hooks } from '../model/hooks.js';
export { tapNames, tapInfo, isTapName, type TapName } from '../../layers/taps.js';
export { Refusal, ConfigError, InputError, BackendError, HookError, WeightsError } from '../errors.js';
// compare on in-memory tensors (docs/browser.md, "compare in the page"): the CLI's report and text
export {
  compareTensors, tensorEntries,
  type Comparison, type InMemoryTensor, type TensorCompareOptions, type TensorData, type TensorInput, type TensorLike, type TensorMap,
} from '../compare/tensors.js';
export { formatReport } from '../compare/render.js';
export { PRESETS, type CompareReport, type TapResult, type Preset } from '../compare/report.js';

/** Where a file comes from in a page: a picked File (or any Blob), a URL, or a ranged reader of your own. */
export type ByteSource = Blob | string | URL | RangeReader;

function isBlob(s: unknown): s is Blob {
  return typeof Blob !== 'undefined' && s instanceof Blob;
}

/** A ranged reader of `source` (a Blob read by slices, a URL by HTTP Range requests). */
export async function rangeReader(source: ByteSource): Promise<RangeReader> {
  if (isBlob(source)) return blobReader(source);
  if (typeof source === 'string' || source instanceof URL) return urlReader(source);
  return source;
}

/**
 * webgpu, where the browser has a GPU adapter (docs/browser.md "webgpu"): tfjs's webgpu backend
 * runs the elementwise, gather and reshaping ops; the products, the softmax and RMSNorm keep their
 * float64 sums on the exact kernel (layers/exact.ts), which reads its inputs back from the GPU. The
 * GPU's exp, sin, cos and division are not correctly rounded as the wasm backend's are, so the
 * results are within the golden tolerance, not Node's bits. The backend is loaded only when asked for.
 */
async function webgpu(): Promise<void> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
  if (!gpu) throw new BackendError('backend: webgpu is not available in this browser (no navigator.gpu); choose wasm or cpu');
  if (!(await gpu.requestAdapter())) throw new BackendError('backend: webgpu: navigator.gpu gave no adapter (no usable GPU); choose wasm or cpu');
  await import('@tensorflow/tfjs-backend-webgpu');
}

/**
 * Sets the tfjs backend: `wasm` (default), `cpu`, or `webgpu` where the browser has it. The wasm
 * backend's .wasm files lie beside the bundle (dist/browser/); `wasmPaths` names another folder (a
 * URL ending in '/'). With wasm and webgpu, which use the exact kernel, its workers are started too
 * (in a cross-origin-isolated page), and awaited.
 */
export async function ready(backend: 'wasm' | 'cpu' | 'webgpu' = 'wasm', wasmPaths?: string): Promise<string> {
  if (backend !== 'wasm' && backend !== 'cpu' && backend !== 'webgpu') throw new BackendError(`backend: "${String(backend)}" is not available in the browser build (choose wasm, cpu or webgpu)`);
  if (backend === 'wasm') setWasmPaths(wasmPaths ?? new URL('./', import.meta.url).href);
  if (backend === 'webgpu') await webgpu();
  if (!(await tf.setBackend(backend))) throw new BackendError(`backend: the ${backend} backend failed to initialise`);
  await tf.ready();
  if (backend !== 'cpu') {
    try {
      await kernelStarted();
    } catch (err) {
      throw new BackendError(`backend: ${(err as Error).message}`, { cause: err });
    }
  }
  return tf.getBackend();
}

/** The exact kernel's threads: how many it runs on (the page's included), and the chunks of rows each has taken so far. */
export function exactKernel(): { threads: number; chunks: number[] } {
  return { threads: kernelThreads(), chunks: kernelChunks() };
}

/**
 * Runs the following products on at most `n` threads (0: all); returns the setting it replaces. The
 * results are the same bits for any count; for measuring the threads (docs/browser.md).
 */
export const useExactKernelThreads = (n: number): number => useKernelThreads(n);

async function readConfig(config: unknown): Promise<Phi3Config> {
  if (isBlob(config)) return parseConfig(parseJson(await config.text(), (config as { name?: string }).name ?? 'config.json'), (config as { name?: string }).name ?? 'config.json');
  if (typeof config === 'string' || config instanceof URL) {
    const res = await fetch(config);
    if (!res.ok) throw new ConfigError(`${String(config)}: HTTP status ${res.status}`);
    return parseConfig(parseJson(await res.text(), String(config)), String(config));
  }
  return parseConfig(config);
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

export interface LoadModelOptions {
  /** config.json: its parsed object, a Blob/File holding it, or its URL. */
  config: unknown;
  /**
   * The .safetensors file (model.safetensors), or every shard of a sharded checkpoint (the files
   * model.safetensors.index.json lists, in any order): each a File/Blob, a URL served with range
   * requests, or a RangeReader. A tensor found in two of them is refused.
   */
  weights: ByteSource | ByteSource[];
  /** Called once with the bytes to read, then with each tensor's bytes as it is read. */
  progress?: (totalBytes: number) => { add(bytes: number): void; done(): void };
}

/**
 * The most float32 weight bytes a page holds (docs/browser.md): tfjs-wasm's heap is at most 4 GiB
 * and the pass's activations need room beside the weights, so about 0.9 billion parameters.
 */
export const PAGE_WEIGHT_BYTES = 3.6e9;

/** Refuses, before any weight is read, a checkpoint whose float32 weights pass PAGE_WEIGHT_BYTES. */
export function checkPageSize(config: Phi3Config, source: string): void {
  let n = 0;
  for (const shape of expectedTensors(config).values()) n += numElements(shape);
  if (4 * n > PAGE_WEIGHT_BYTES) {
    throw new WeightsError(`${source}: ${(n / 1e9).toFixed(2)} billion parameters need ${(4 * n / 1e9).toFixed(1)} GB as float32 weights; `
      + `a page holds at most ${(PAGE_WEIGHT_BYTES / 1e9).toFixed(1)} GB (tfjs-wasm's 4 GiB heap; the bf16 and stream modes are Node-only)`);
  }
}

/** Several safetensors files as one source of tensors, each name in exactly one file. */
class Shards {
  private readonly owner = new Map<string, RangedSafetensors>();

  constructor(readonly files: RangedSafetensors[]) {
    for (const f of files) {
      for (const n of f.names()) {
        const other = this.owner.get(n);
        if (other) throw new WeightsError(`tensor "${n}" is in two files: ${other.dir} and ${f.dir}`);
        this.owner.set(n, f);
      }
    }
  }

  get dir(): string {
    return this.files.map((f) => f.dir).join(', ');
  }

  names(): string[] {
    return this.files.flatMap((f) => f.names());
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private of(name: string): RangedSafetensors {
    const f = this.owner.get(name);
    if (!f) throw new WeightsError(`${this.dir}: no tensor "${name}"`);
    return f;
  }

  info(name: string) {
    return this.of(name).info(name);
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.of(name).readBytes(name);
  }
}

/**
 * Loads a checkpoint in the page: config checked, tensor names and shapes checked against it, every
 * weight a resident float32 tensor (the float32 weights mode: bf16 and stream need the Node
 * reader's synchronous reads), a checkpoint too big for that refused first (checkPageSize). Each
 * tensor is one ranged read of its own bytes.
 */
export async function loadModel(opts: LoadModelOptions): Promise<Phi3Model> {
  if (!tf.getBackend()) await ready();
  const config = await readConfig(opts.config);
  checkPageSize(config, isBlob(opts.config) ? (opts.config as { name?: string }).name ?? 'config.json' : typeof opts.config === 'string' || opts.config instanceof URL ? String(opts.config) : 'config');
  const sources = Array.isArray(opts.weights) ? opts.weights : [opts.weights];
  if (sources.length === 0) throw new WeightsError('weights: no file given');
  const files: RangedSafetensors[] = [];
  try {
    for (const s of sources) files.push(await RangedSafetensors.open(await rangeReader(s)));
    const shards = new Shards(files);
    checkTensors(shards, config);
    const progress = opts.progress ?? (() => ({ add() {}, done() {} }));
    return new Phi3Model(config, await ResidentWeights.readAsync(shards, config, progress), shards.dir);
  } finally {
    for (const f of files) await f.close();
  }
}
