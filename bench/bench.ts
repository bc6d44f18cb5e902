// npm run bench -- <checkpoint> [--prompt-tokens 64] [--new-tokens 8] [--backend NAME]
//                  [--weights MODE] [--onnx FILE] [--tiny DIR] [--json]
//
// The arguments, the checkpoint's config and headers and the run's length are checked first (bad
// input: one line, exit 2, before any measuring). One run then measures, in this order: the
// machine's limits (memory bandwidth by a large copy, and read bandwidth by a streaming sum over
// a large buffer on every core, which is what one decode step does to the weights; the backend's
// matmul peak on a 2048 x 2048 product), then the checkpoint: load seconds, prefill of
// --prompt-tokens random ids, --new-tokens decode steps with the KV cache, peak resident memory;
// then the ratios against the limits; then the tiny golden checkpoint against ONNX Runtime on the
// exported tiny model. The keys of the JSON output are documented in docs/performance.md.

import { readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { KvCache } from '../layers/attention.js';
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { UsageError, intFlag, parseArgs, str } from '../src/cli/args.js';
import { loadConfig } from '../src/model/config.js';
import { checkLength } from '../src/generate/generate.js';
import { resolveCheckpoint } from '../src/checkpoint/hub.js';
import { initBackend } from '../src/backend.js';
import { GOLDEN_DIR, modelDir } from '../src/oracle/golden.js';
import { Phi3Model } from '../src/model/model.js';
import { ProgressBar } from '../src/progress.js';
import { Rng } from '../src/checkpoint/synth.js';
import { floatTensor } from '../src/model/widen.js';
import { type WeightMode, weightMode } from '../src/model/weights.js';
import { Checkpoint } from '../weights/index.js';

const now = () => performance.now() / 1000;

/** Peak resident set size of this process (VmHWM), bytes. */
function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

/** Resets VmHWM to the current RSS (Linux: clear_refs 5), so the peak is the model's alone. */
function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** Copy bandwidth, STREAM's convention: bytes read plus bytes written per second, best of 5. */
function bandwidth(bytes = 512 * 2 ** 20): number {
  const a = new Uint8Array(bytes).fill(1);
  const b = new Uint8Array(bytes);
  b.set(a); // fault the pages in
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = now();
    b.set(a);
    best = Math.min(best, now() - t0);
  }
  return (2 * bytes) / best;
}

/** Each worker sums its share of a shared Float64Array once per message, four accumulators wide. */
const SUM_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const a = new Float64Array(workerData.buffer, workerData.from * 8, workerData.count);
parentPort.on('message', () => {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const n = a.length - (a.length % 4);
  for (let i = 0; i < n; i += 4) { s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3]; }
  parentPort.postMessage(s0 + s1 + s2 + s3);
});`;

/**
 * Read bandwidth: bytes read per second by a streaming sum over a 1 GiB buffer, split across one
 * worker per core (a decode step reads every weight once, on every core), best of 5.
 */
async function readBandwidth(bytes = 2 ** 30, threads = os.cpus().length): Promise<number> {
  const buffer = new SharedArrayBuffer(bytes);
  new Float64Array(buffer).fill(1);
  const n = bytes / 8;
  const workers = Array.from({ length: threads }, (_, i) => {
    const from = Math.floor((i * n) / threads);
    return new Worker(SUM_WORKER, { eval: true, workerData: { buffer, from, count: Math.floor(((i + 1) * n) / threads) - from } });
  });
  const pass = () => Promise.all(workers.map((w) => new Promise<number>((done) => { w.once('message', done); w.postMessage(0); })));
  try {
    const warm = await pass(); // compile the loop, fault nothing new (the fill did)
    if (warm.reduce((x, y) => x + y, 0) !== n) throw new Error('read bandwidth: the workers summed the wrong number of elements');
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = now();
      await pass();
      best = Math.min(best, now() - t0);
    }
    return bytes / best;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** Targets apply to checkpoints at least this big: smaller weights sit in cache, and the overheads of one op dominate. */
const TARGET_MIN_WEIGHT_BYTES = 2 ** 30;

/** Bytes per second written into freshly allocated memory (page faults included), then again. */
function firstTouch(bytes = 256 * 2 ** 20): { fresh: number; again: number } {
  const a = new Uint8Array(bytes);
  let t0 = now();
  a.fill(1);
  const fresh = bytes / (now() - t0);
  t0 = now();
  a.fill(2);
  return { fresh, again: bytes / (now() - t0) };
}

/** FLOP/s of an n x n float32 product on the current backend, best of 5 after a warm-up. */
function matmulPeak(n = 2048): number {
  const [a, b] = [tf.randomNormal([n, n]), tf.randomNormal([n, n])];
  tf.matMul(a, b).dispose();
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = now();
    const c = tf.matMul(a, b);
    c.dataSync();
    best = Math.min(best, now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / best;
}

/** Bytes of bf16 per second widened into float32 tensors (src/model/widen.ts), best of 3. */
function widenRate(elements = 32 * 2 ** 20): number {
  const src = new Uint8Array(2 * elements).fill(0x3f);
  let best = Infinity;
  for (let r = 0; r < 4; r++) {
    const t0 = now();
    const t = floatTensor(src, 'BF16', [elements]);
    if (r > 0) best = Math.min(best, now() - t0);
    t.dispose();
  }
  return src.byteLength / best;
}

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed, 'bench');
  return Int32Array.from({ length: n }, () => rng.u32() % vocab);
}

const disposeCache = (c: KvCache[] | undefined) => tf.dispose((c ?? []).flatMap((x) => [x.k, x.v]));

/** Multiply-adds x 2 of one forward pass over `t` new tokens after `past` cached ones. */
function forwardFlops(m: Phi3Model, t: number, past: number): { flops: number; matrixParams: number } {
  const c = m.config;
  const H = c.hiddenSize;
  const layerParams = ((c.numHeads + 2 * c.numKvHeads) * c.headDim + c.numHeads * c.headDim + 3 * c.intermediateSize) * H;
  const matrixParams = c.numLayers * layerParams + c.vocabSize * H; // the head is a product even when tied
  let keys = 0; // sum over the new positions of the keys each attends to (causal)
  for (let i = 0; i < t; i++) keys += past + i + 1;
  const attention = c.numLayers * 2 * 2 * c.numHeads * c.headDim * keys; // q k^T and probs v
  return { flops: 2 * matrixParams * t + attention, matrixParams };
}

interface ModelRun {
  load_s: number;
  prefill_cold_s: number;
  prefill_s: number;
  prefill_tokens_per_s: number;
  prefill_flops: number;
  decode_s_per_token: number[];
  decode_s_per_token_median: number;
}

function runModel(m: Phi3Model, prompt: number, steps: number, seed: number): Omit<ModelRun, 'load_s'> {
  const ids = randomIds(prompt + steps, m.config.vocabSize, seed);
  // The first pass after loading runs cold (on a virtual machine the first reads of the freshly
  // loaded bytes can be slow); it is timed on its own, then the same prefill again, warm.
  let t0 = now();
  const cold = m.forward({ inputIds: ids.subarray(0, prompt), batch: 1, seq: prompt });
  cold.logits.dataSync();
  const prefillCold = now() - t0;
  tf.dispose(cold.logits);
  disposeCache(cold.cache);
  t0 = now();
  const r = m.forward({ inputIds: ids.subarray(0, prompt), batch: 1, seq: prompt });
  r.logits.dataSync();
  const prefill = now() - t0;
  r.logits.dispose();
  let past = r.cache;
  const decode: number[] = [];
  for (let s = 0; s < steps; s++) {
    t0 = now();
    const d = m.forward({ inputIds: ids.subarray(prompt + s, prompt + s + 1), batch: 1, seq: 1 }, { past });
    d.logits.dataSync();
    decode.push(now() - t0);
    d.logits.dispose();
    disposeCache(past);
    past = d.cache;
  }
  disposeCache(past);
  const sorted = [...decode].sort((a, b) => a - b);
  return {
    prefill_cold_s: prefillCold,
    prefill_s: prefill,
    prefill_tokens_per_s: prompt / prefill,
    prefill_flops: forwardFlops(m, prompt, 0).flops,
    decode_s_per_token: decode,
    decode_s_per_token_median: sorted.length ? (sorted[(sorted.length - 1) >> 1]! + sorted[sorted.length >> 1]!) / 2 : NaN,
  };
}

/** Tiny checkpoint vs ONNX Runtime on the exported model (no KV cache in the export). */
async function tinyVsOrt(onnxPath: string, tinyDir: string, tokens: number, steps: number) {
  const ort = await import('onnxruntime-node');
  const m = Phi3Model.load(tinyDir, { weights: 'float32' });
  const V = m.config.vocabSize;
  const ids = randomIds(tokens + steps, V, 11);
  const opts = { ropeLong: true }; // the long-rope export traced LongRoPE's long factors
  const reps = 20;
  const time = (f: () => void) => {
    f();
    const t0 = now();
    for (let r = 0; r < reps; r++) f();
    return (now() - t0) / reps;
  };
  // Ours: a full pass over `tokens`, and one cached decode step after them.
  const full = () => {
    const r = m.forward({ inputIds: ids.subarray(0, tokens), batch: 1, seq: tokens }, opts);
    r.logits.dataSync();
    r.logits.dispose();
    disposeCache(r.cache);
  };
  const oursFull = time(full);
  const pre = m.forward({ inputIds: ids.subarray(0, tokens), batch: 1, seq: tokens }, opts);
  const oursLogits = pre.logits.dataSync() as Float32Array;
  pre.logits.dispose();
  const step = () => {
    const d = m.forward({ inputIds: ids.subarray(tokens, tokens + 1), batch: 1, seq: 1 }, { ...opts, past: pre.cache });
    d.logits.dataSync();
    d.logits.dispose();
    disposeCache(d.cache);
  };
  const oursStep = time(step);
  disposeCache(pre.cache);
  m.dispose();

  const result: Record<string, unknown> = { onnx: onnxPath, tokens, ours_forward_ms: 1000 * oursFull, ours_decode_ms_per_token: 1000 * oursStep };
  for (const threads of [1, os.cpus().length]) {
    const sess = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: threads, interOpNumThreads: 1 });
    const feeds = (n: number) => ({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.subarray(0, n), BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    });
    const run = async (n: number) => (await sess.run(feeds(n), ['logits'])).logits!;
    const timeAsync = async (n: number) => {
      await run(n);
      const t0 = now();
      for (let r = 0; r < reps; r++) await run(n);
      return (now() - t0) / reps;
    };
    const ortFull = await timeAsync(tokens);
    const ortStep = await timeAsync(tokens + 1); // no cache: a new token recomputes the sequence
    const ortLogits = (await run(tokens)).data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < oursLogits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(oursLogits[i]! - ortLogits[i]!));
    result[`ort_threads_${threads}`] = { forward_ms: 1000 * ortFull, decode_ms_per_token: 1000 * ortStep, logits_max_abs_diff_vs_ours: maxDiff };
    await sess.release();
  }
  return result;
}

async function main(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['prompt-tokens', 'new-tokens', 'backend', 'weights', 'onnx', 'tiny'], ['json']);
  if (p.positional.length !== 1) throw new UsageError('bench needs one checkpoint directory: npm run bench -- <checkpoint>');
  const prompt = intFlag(p, 'prompt-tokens', 1) ?? 64;
  const steps = intFlag(p, 'new-tokens', 1) ?? 8;
  const mode: WeightMode = weightMode(str(p, 'weights'));
  const onnx = str(p, 'onnx') ?? join(GOLDEN_DIR, 'onnx', 'phi4-mini-tiny.long-rope.onnx');
  const tiny = str(p, 'tiny') ?? modelDir('phi4-mini-tiny');
  // every check before any measuring
  const dir = resolveCheckpoint(p.positional[0]!);
  const config = loadConfig(dir);
  checkLength(config, prompt, steps);
  Checkpoint.open(dir).close(); // headers and index
  if (!existsSync(onnx)) throw new UsageError(`--onnx: ${onnx} does not exist`);
  resolveCheckpoint(tiny);
  const backend = await initBackend(str(p, 'backend'));
  const log = (s: string) => process.stderr.write(s + '\n');

  const machine = {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? '',
    total_memory_bytes: os.totalmem(),
    loadavg_start: os.loadavg(),
    node: process.version,
    backend,
    tfjs: tf.version_core,
    bandwidth_bytes_per_s: bandwidth(),
    read_bandwidth_bytes_per_s: await readBandwidth(),
    first_touch_bytes_per_s: 0,
    rewrite_bytes_per_s: 0,
    matmul_peak_flops: matmulPeak(),
    widen_bf16_bytes_per_s: widenRate(),
  };
  const touch = firstTouch();
  machine.first_touch_bytes_per_s = touch.fresh;
  machine.rewrite_bytes_per_s = touch.again;
  log(`machine: ${machine.cpus} cpus, load ${machine.loadavg_start.map((x) => x.toFixed(2)).join(' ')}, copy ${(machine.bandwidth_bytes_per_s / 1e9).toFixed(1)} GB/s, read ${(machine.read_bandwidth_bytes_per_s / 1e9).toFixed(1)} GB/s, ` +
    `${backend} matmul ${(machine.matmul_peak_flops / 1e9).toFixed(1)} GFLOP/s, widen ${(machine.widen_bf16_bytes_per_s / 1e9).toFixed(2)} GB/s of bf16`);

  const peakReset = resetPeakRss();
  const ckpt = Checkpoint.open(dir);
  const weightBytes = ckpt.totalBytes;
  ckpt.close();
  let t0 = now();
  const m = Phi3Model.load(dir, { weights: mode, progress: (total) => new ProgressBar('load', total) });
  const load = now() - t0;
  log(`loaded ${dir} in ${load.toFixed(1)} s (weights ${m.weights.mode}, ${m.config.numLayers} layers)`);
  const run = runModel(m, prompt, steps, 5);
  const peak = peakRss();
  const { matrixParams } = forwardFlops(m, 1, 0);
  const weightsMode = m.weights.mode;
  m.dispose();

  const prefillFlopsPerS = run.prefill_flops / run.prefill_s;
  const floor = weightBytes / machine.read_bandwidth_bytes_per_s;
  const targetsApply = weightBytes >= TARGET_MIN_WEIGHT_BYTES;
  const target = (met: boolean) => (targetsApply ? met : null);
  const result = {
    machine,
    checkpoint: { dir, weight_bytes: weightBytes, matrix_params: matrixParams, layers: m.config.numLayers, weights_mode: weightsMode },
    run: { prompt_tokens: prompt, new_tokens: steps, load_s: load, ...run, peak_rss_bytes: peak, peak_rss_reset_before_load: peakReset },
    ratios: {
      prefill_flops_per_s: prefillFlopsPerS,
      prefill_over_matmul_peak: prefillFlopsPerS / machine.matmul_peak_flops,
      decode_floor_s: floor,
      decode_over_floor: run.decode_s_per_token_median / floor,
      peak_rss_over_weight_bytes: peak / weightBytes,
    },
    // null where a target does not apply (a checkpoint under TARGET_MIN_WEIGHT_BYTES)
    targets: {
      weights_mode: weightsMode,
      peak_rss_at_most_1_25x_weights: target(peak <= 1.25 * weightBytes),
      prefill_at_least_half_matmul_peak: target(prefillFlopsPerS >= 0.5 * machine.matmul_peak_flops),
      decode_at_most_4x_floor: target(run.decode_s_per_token_median <= 4 * floor),
    },
    tiny_vs_onnxruntime: await tinyVsOrt(onnx, tiny, 16, 1),
    loadavg_end: os.loadavg(),
  };
  if (p.flags.has('json')) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const g = (x: number) => (x / 1e9).toFixed(2);
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  const t = result.tiny_vs_onnxruntime as Record<string, any>;
  const verdict = (rule: string, met: boolean | null) => (met === null ? '' : ` (target ${rule}, weights ${weightsMode}: ${met ? 'met' : 'MISSED'})`);
  console.log([
    `checkpoint   ${dir}: ${result.checkpoint.layers} layers, ${g(weightBytes)} GB of weights, held as ${weightsMode}, backend ${backend}`,
    `machine      ${machine.cpus} cpus (${machine.cpu_model}), load average ${machine.loadavg_start.map((x) => x.toFixed(2)).join(' ')} -> ${result.loadavg_end.map((x) => x.toFixed(2)).join(' ')}`,
    `limits       copy bandwidth ${g(machine.bandwidth_bytes_per_s)} GB/s (read + write), read bandwidth ${g(machine.read_bandwidth_bytes_per_s)} GB/s (sum on ${machine.cpus} threads), matmul peak ${g(machine.matmul_peak_flops)} GFLOP/s, bf16 widening ${g(machine.widen_bf16_bytes_per_s)} GB/s`,
    `memory       filling fresh pages ${g(machine.first_touch_bytes_per_s)} GB/s, the same pages again ${g(machine.rewrite_bytes_per_s)} GB/s`,
    `load         ${load.toFixed(1)} s`,
    `peak RSS     ${g(peak)} GB = ${result.ratios.peak_rss_over_weight_bytes.toFixed(2)}x the weights${verdict('<= 1.25x', result.targets.peak_rss_at_most_1_25x_weights)}`,
    `prefill      first pass after loading ${run.prefill_cold_s.toFixed(2)} s; then ${prompt} tokens in ${run.prefill_s.toFixed(2)} s = ${run.prefill_tokens_per_s.toFixed(2)} tokens/s, ${g(prefillFlopsPerS)} GFLOP/s = ${pct(result.ratios.prefill_over_matmul_peak)} of the matmul peak${verdict('>= 50%', result.targets.prefill_at_least_half_matmul_peak)}`,
    `decode       ${run.decode_s_per_token_median.toFixed(3)} s/token (median of ${steps}), floor ${floor.toFixed(3)} s = weights / read bandwidth: ${result.ratios.decode_over_floor.toFixed(1)}x${verdict('<= 4x', result.targets.decode_at_most_4x_floor)}`,
    `tiny vs ORT  ${t.tokens} tokens: ours ${t.ours_forward_ms.toFixed(2)} ms/forward, ${t.ours_decode_ms_per_token.toFixed(2)} ms/token cached; ` +
      Object.entries(t).filter(([k]) => k.startsWith('ort_')).map(([k, v]: [string, any]) =>
        `${k.replace('ort_threads_', 'ORT ')} thread(s) ${v.forward_ms.toFixed(2)} ms/forward, ${v.decode_ms_per_token.toFixed(2)} ms/token (recompute, max |d logits| ${v.logits_max_abs_diff_vs_ours.toExponential(1)})`).join('; '),
    ...(targetsApply ? [] : [`targets      not applied: ${g(weightBytes)} GB of weights is under ${g(TARGET_MIN_WEIGHT_BYTES)} GB (they are for the full-size model)`]),
  ].join('\n'));
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: Error) => {
    const known = ['UsageError', 'WeightsError', 'ConfigError', 'BackendError', 'InputError'].includes(err.name);
    console.error(`bench: ${known ? err.message.split('\n')[0] : err.stack}`);
    process.exit(known ? 2 : 1);
  },
);
