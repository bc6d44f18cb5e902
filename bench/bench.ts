// npm run bench -- <checkpoint> [--prompt-tokens 512] [--new-tokens 8] [--backend NAME]
//                  [--weights MODE] [--onnx FILE] [--tiny DIR]
//                  [--llama-bench PATH --gguf FILE] [--no-numpy] [--json]
//
// The arguments, the checkpoint's config and headers and the run's length are checked first (bad
// input: one line, exit 2, before any measuring). One run then measures, in this order: the
// machine's limits (bench/limits.ts, in a child process: the float64 and float32 SIMD rooflines
// and the SIMD read bandwidth of a buffer as big as the weights, one thread and every thread;
// the copy bandwidth, the backend's float32 matmul; the bf16 widening rate), the exact kernel
// alone on full-size shapes (bench/kernel.ts); llama.cpp's llama-bench on the GGUF when asked
// (bench/llama-bench.ts); the numpy float64 forward over --prompt-tokens ids of the same checkpoint
// when python3 with numpy is there (bench/numpy-anchor.ts; --no-numpy skips it); then the checkpoint: load seconds, a first pass, a prefill of
// --prompt-tokens random ids, --new-tokens decode steps with the KV cache, peak resident memory;
// llama-bench again; then the ratios: prefill against the float64 roofline and numpy's tokens per
// second, decode against the read floor, both against llama.cpp; then the tiny golden checkpoint against ONNX Runtime on the
// exported tiny model. The keys of the JSON output are documented in docs/performance.md.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type { KvCache } from '../layers/attention.js';
import { kernelThreads } from '../layers/kernels/dots.js';
import { type Limits, formatLimits } from './limits.js';
import { measureKernel } from './kernel.js';
import { type NumpyAnchor, numpyAnchor } from './numpy-anchor.js';
import { type LlamaBenchRun, checkLlamaBench, runLlamaBench } from './llama-bench.js';
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

/**
 * The machine's limits (bench/limits.ts) in a child process, so that the read buffer, as big as
 * the weights, is returned to the system before the checkpoint loads.
 */
function measureLimitsApart(readBytes: number, threads: number): Limits {
  const script = fileURLToPath(new URL('./limits.js', import.meta.url));
  const out = execFileSync(process.execPath, [script, '--read-bytes', String(readBytes), '--threads', String(threads), '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out) as Limits;
}

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

/** Tokens of the first pass after loading: any pass reads every weight once, which is what makes it slow. */
const FIRST_PASS_TOKENS = 16;

interface ModelRun {
  load_s: number;
  first_pass_tokens: number;
  first_pass_s: number;
  prefill_s: number;
  prefill_tokens_per_s: number;
  prefill_flops: number;
  decode_s_per_token: number[];
  decode_s_per_token_median: number;
}

function runModel(m: Phi3Model, prompt: number, steps: number, seed: number): Omit<ModelRun, 'load_s'> {
  const ids = randomIds(prompt + steps, m.config.vocabSize, seed);
  // The first pass after loading runs cold (on a virtual machine the first reads of the freshly
  // loaded bytes can be slow, and the engine compiles the kernels' hot code again, optimised): a
  // short one, timed on its own, before the prefill that is measured.
  const first = Math.min(prompt, FIRST_PASS_TOKENS);
  let t0 = now();
  const cold = m.forward({ inputIds: ids.subarray(0, first), batch: 1, seq: first });
  cold.logits.dataSync();
  const firstPass = now() - t0;
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
    first_pass_tokens: first,
    first_pass_s: firstPass,
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
  const p = parseArgs(argv, ['prompt-tokens', 'new-tokens', 'backend', 'weights', 'onnx', 'tiny', 'llama-bench', 'gguf'], ['json', 'no-numpy']);
  if (p.positional.length !== 1) throw new UsageError('bench needs one checkpoint directory: npm run bench -- <checkpoint>');
  const prompt = intFlag(p, 'prompt-tokens', 1) ?? 512;
  const steps = intFlag(p, 'new-tokens', 1) ?? 8;
  const mode: WeightMode = weightMode(str(p, 'weights'));
  const onnx = str(p, 'onnx') ?? join(GOLDEN_DIR, 'onnx', 'phi4-mini-tiny.long-rope.onnx');
  const tiny = str(p, 'tiny') ?? modelDir('phi4-mini-tiny');
  const [llamaExe, gguf] = [str(p, 'llama-bench'), str(p, 'gguf')];
  // every check before any measuring
  if ((llamaExe === undefined) !== (gguf === undefined)) throw new UsageError('--llama-bench and --gguf go together: llama-bench runs on the GGUF of the same weights');
  if (llamaExe !== undefined) checkLlamaBench(llamaExe, gguf!);
  const dir = resolveCheckpoint(p.positional[0]!);
  const config = loadConfig(dir);
  checkLength(config, prompt, steps);
  const ckpt = Checkpoint.open(dir); // headers and index
  const weightBytes = ckpt.totalBytes;
  ckpt.close();
  if (!existsSync(onnx)) throw new UsageError(`--onnx: ${onnx} does not exist`);
  resolveCheckpoint(tiny);
  const backend = await initBackend(str(p, 'backend'));
  const log = (s: string) => process.stderr.write(s + '\n');
  const threads = kernelThreads();
  const g = (x: number) => (x / 1e9).toFixed(2);

  const loadavgStart = os.loadavg();
  const limits = measureLimitsApart(weightBytes, threads);
  log(formatLimits(limits));
  const machine = {
    cpus: os.cpus().length,
    available_parallelism: os.availableParallelism(),
    kernel_threads: threads,
    cpu_model: os.cpus()[0]?.model ?? '',
    total_memory_bytes: os.totalmem(),
    loadavg_start: loadavgStart,
    node: process.version,
    backend,
    tfjs: tf.version_core,
    ...limits,
    bandwidth_bytes_per_s: bandwidth(),
    first_touch_bytes_per_s: 0,
    rewrite_bytes_per_s: 0,
    matmul_peak_flops: matmulPeak(),
    widen_bf16_bytes_per_s: widenRate(),
  };
  const touch = firstTouch();
  machine.first_touch_bytes_per_s = touch.fresh;
  machine.rewrite_bytes_per_s = touch.again;
  const kernel = backend === 'cpu' ? null : measureKernel(prompt); // the cpu backend does not use the kernel
  if (kernel) log(`kernel       prefill ${g(kernel.prefill_flops_per_s_one_thread)} GFLOP/s on one thread, ${g(kernel.prefill_flops_per_s)} on ${threads}; decode ${g(kernel.decode_bytes_per_s_one_thread)} GB/s, ${g(kernel.decode_bytes_per_s)}`);

  const llama: LlamaBenchRun[] = [];
  const runLlama = () => {
    if (llamaExe === undefined) return;
    llama.push(runLlamaBench(llamaExe, gguf!, prompt, steps, threads, 2));
    const l = llama[llama.length - 1]!;
    log(`llama-bench  ${l.prompt_tokens_per_s.toFixed(2)} tokens/s prefill (${prompt}), ${l.decode_s_per_token.toFixed(3)} s/token decode (${l.threads} threads)`);
  };
  runLlama(); // before phi4-ts's own runs, and again after them
  // numpy before the model is loaded: its 2 GB of streamed layers and ours never share the memory
  const numpy: NumpyAnchor = p.flags.has('no-numpy') ? { missing: '--no-numpy' } : numpyAnchor(dir, prompt);
  log(numpy.seconds === undefined ? `numpy        missing: ${numpy.missing}` : `numpy        float64 forward of ${prompt} tokens in ${numpy.seconds.toFixed(1)} s = ${numpy.tokens_per_s!.toFixed(2)} tokens/s (${numpy.threads} threads)`);

  const peakReset = resetPeakRss();
  let t0 = now();
  const m = Phi3Model.load(dir, { weights: mode, progress: (total) => new ProgressBar('load', total) });
  const load = now() - t0;
  log(`loaded ${dir} in ${load.toFixed(1)} s (weights ${m.weights.mode}, ${m.config.numLayers} layers)`);
  const run = runModel(m, prompt, steps, 5);
  const peak = peakRss();
  const { matrixParams } = forwardFlops(m, 1, 0);
  const weightsMode = m.weights.mode;
  m.dispose();
  runLlama();

  const prefillFlopsPerS = run.prefill_flops / run.prefill_s;
  const floor = weightBytes / limits.read_bytes_per_s;
  const mean = (f: (l: LlamaBenchRun) => number) => llama.reduce((s, l) => s + f(l), 0) / llama.length;
  const result = {
    machine,
    kernel,
    checkpoint: { dir, weight_bytes: weightBytes, matrix_params: matrixParams, layers: m.config.numLayers, weights_mode: weightsMode },
    run: { prompt_tokens: prompt, new_tokens: steps, load_s: load, ...run, peak_rss_bytes: peak, peak_rss_reset_before_load: peakReset },
    llama_bench: llama.length ? { path: llamaExe, gguf, runs: llama } : null,
    numpy_anchor: numpy,
    ratios: {
      prefill_flops_per_s: prefillFlopsPerS,
      prefill_over_f64_roofline: prefillFlopsPerS / limits.f64_roofline_flops,
      prefill_over_matmul_peak: prefillFlopsPerS / machine.matmul_peak_flops,
      // our prefill's tokens per second over the numpy float64 forward's (issue 22 asks >= 1)
      prefill_over_numpy: numpy.tokens_per_s === undefined ? null : run.prefill_tokens_per_s / numpy.tokens_per_s,
      decode_floor_s: floor,
      decode_over_floor: run.decode_s_per_token_median / floor,
      kernel_prefill_over_f64_roofline_one_thread: kernel ? kernel.prefill_flops_per_s_one_thread / limits.f64_roofline_flops_one_thread : null,
      kernel_prefill_over_f64_roofline: kernel ? kernel.prefill_flops_per_s / limits.f64_roofline_flops : null,
      kernel_decode_over_read_bandwidth: kernel ? kernel.decode_bytes_per_s / limits.read_bytes_per_s : null,
      // llama.cpp's rate over ours (how many times faster it is), against the mean of its runs
      llama_prefill_speedup: llama.length ? mean((l) => l.prompt_tokens_per_s) / run.prefill_tokens_per_s : null,
      llama_decode_speedup: llama.length ? run.decode_s_per_token_median / mean((l) => l.decode_s_per_token) : null,
      peak_rss_over_weight_bytes: peak / weightBytes,
    },
    tiny_vs_onnxruntime: await tinyVsOrt(onnx, tiny, 16, 1),
    loadavg_end: os.loadavg(),
  };
  if (p.flags.has('json')) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  const t = result.tiny_vs_onnxruntime as Record<string, any>;
  const r = result.ratios;
  console.log([
    `checkpoint   ${dir}: ${result.checkpoint.layers} layers, ${g(weightBytes)} GB of weights, held as ${weightsMode}, backend ${backend}`,
    `machine      ${machine.cpus} cpus (${machine.cpu_model}), kernel threads ${threads}, load average ${machine.loadavg_start.map((x) => x.toFixed(2)).join(' ')} -> ${result.loadavg_end.map((x) => x.toFixed(2)).join(' ')}`,
    formatLimits(limits),
    `limits       copy bandwidth ${g(machine.bandwidth_bytes_per_s)} GB/s (read + write), ${backend} float32 matmul ${g(machine.matmul_peak_flops)} GFLOP/s, bf16 widening ${g(machine.widen_bf16_bytes_per_s)} GB/s`,
    `memory       filling fresh pages ${g(machine.first_touch_bytes_per_s)} GB/s, the same pages again ${g(machine.rewrite_bytes_per_s)} GB/s`,
    ...(kernel ? [`kernel       [${kernel.prefill_shape}]: ${g(kernel.prefill_flops_per_s_one_thread)} GFLOP/s on one thread = ${pct(r.kernel_prefill_over_f64_roofline_one_thread!)} of its roofline, ` +
      `${g(kernel.prefill_flops_per_s)} on ${threads} = ${pct(r.kernel_prefill_over_f64_roofline!)}; one row [${kernel.decode_shape}]: ${g(kernel.decode_bytes_per_s_one_thread)} GB/s, ${g(kernel.decode_bytes_per_s)} = ${pct(r.kernel_decode_over_read_bandwidth!)} of the read bandwidth`] : []),
    `load         ${load.toFixed(1)} s`,
    `peak RSS     ${g(peak)} GB = ${r.peak_rss_over_weight_bytes.toFixed(2)}x the weights`,
    `prefill      first pass (${run.first_pass_tokens} tokens) ${run.first_pass_s.toFixed(2)} s; then ${prompt} tokens in ${run.prefill_s.toFixed(2)} s = ${run.prefill_tokens_per_s.toFixed(2)} tokens/s, ${g(prefillFlopsPerS)} GFLOP/s = ${pct(r.prefill_over_f64_roofline)} of the float64 roofline on ${threads} threads`,
    `decode       ${run.decode_s_per_token_median.toFixed(3)} s/token (median of ${steps}) = ${r.decode_over_floor.toFixed(2)}x the floor of ${floor.toFixed(3)} s (weights / SIMD read bandwidth)`,
    ...llama.map((l, i) => `llama.cpp    ${i === 0 ? 'before' : 'after'}: prefill ${l.prompt_tokens_per_s.toFixed(2)} tokens/s, decode ${l.decode_s_per_token.toFixed(3)} s/token (llama-bench, ${l.threads} threads, build ${l.build_commit})`),
    numpy.tokens_per_s === undefined ? `numpy        anchor missing (${numpy.missing})` :
      `numpy        float64 forward ${numpy.seconds!.toFixed(1)} s = ${numpy.tokens_per_s.toFixed(2)} tokens/s; our prefill is ${r.prefill_over_numpy!.toFixed(2)}x its tokens/s`,
    ...(llama.length ? [`vs llama.cpp prefill: llama.cpp ${r.llama_prefill_speedup!.toFixed(2)}x faster; decode: ${r.llama_decode_speedup!.toFixed(2)}x faster`] : []),
    `tiny vs ORT  ${t.tokens} tokens: ours ${t.ours_forward_ms.toFixed(2)} ms/forward, ${t.ours_decode_ms_per_token.toFixed(2)} ms/token cached; ` +
      Object.entries(t).filter(([k]) => k.startsWith('ort_')).map(([k, v]: [string, any]) =>
        `${k.replace('ort_threads_', 'ORT ')} thread(s) ${v.forward_ms.toFixed(2)} ms/forward, ${v.decode_ms_per_token.toFixed(2)} ms/token (recompute, max |d logits| ${v.logits_max_abs_diff_vs_ours.toExponential(1)})`).join('; '),
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
