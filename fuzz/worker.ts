// Runs fuzz cases [from, to) of one seed in this process and reports each outcome to the parent
// (fuzz/fuzz.ts), which watches for crashes, hangs and memory blow-ups from outside.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareFiles } from '../src/compare/files.js';
import { CONFIG_LIMITS, loadConfig } from '../src/model/config.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { checkInputs } from '../src/model/model.js';
import { checkDumpMemory } from '../src/safety/precheck.js';
import { expectedTensors } from '../src/model/weights.js';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../weights/index.js';
import { type Case, type CompareCase, type InputsCase, type Kind, ROOT, makeCase } from './cases.js';
import { judge } from './validator.js';

/** Errors that are refusals (exit 2 in the CLI); anything else thrown is a crash. */
const REFUSALS = new Set(['WeightsError', 'ConfigError', 'InputError', 'UsageError']);
const TINY = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const MAX_MESSAGE = 6000;

export interface Outcome {
  i: number;
  kind: Case['kind'];
  /** ok | crash | disagree | message (a refusal that is not one bounded line) | compare-pass (a wrong candidate passed) */
  status: 'ok' | 'crash' | 'disagree' | 'message' | 'compare-pass';
  accepted: boolean;
  detail?: string;
  what: string;
  hwm: number;
}

function refusal(err: unknown): { ok: boolean; detail: string } {
  const e = err as Error;
  if (!REFUSALS.has(e?.name)) return { ok: false, detail: `${e?.name}: ${String(e?.message).slice(0, 300)}` };
  if (e.message.includes('\n') || e.message.length > MAX_MESSAGE) return { ok: false, detail: `unbounded message (${e.message.length} chars)` };
  return { ok: true, detail: e.message.slice(0, 200) };
}

function runHeader(c: Extract<Case, { kind: 'header' }>, file: string): Omit<Outcome, 'i' | 'kind' | 'what' | 'hwm'> {
  fs.writeFileSync(file, c.bytes);
  fs.truncateSync(file, c.bytes.length + c.sparse);
  const verdict = judge(c.bytes, c.bytes.length + c.sparse);
  let sf: SafetensorsFile;
  try {
    sf = SafetensorsFile.open(file);
  } catch (err) {
    const r = refusal(err);
    if (!r.ok) return { status: r.detail.startsWith('unbounded') ? 'message' : 'crash', accepted: false, detail: r.detail };
    if (verdict.accept) return { status: 'disagree', accepted: false, detail: `validator accepts, reader refuses: ${r.detail}` };
    return { status: 'ok', accepted: false };
  }
  try {
    if (!verdict.accept) return { status: 'disagree', accepted: true, detail: `validator refuses (${verdict.why}), reader accepts` };
    const names = sf.names().sort();
    if (JSON.stringify(names) !== JSON.stringify(verdict.names)) return { status: 'disagree', accepted: true, detail: 'tensor names differ' };
    for (const t of sf.tensors()) {
      if (t.byteLength > 1 << 20) continue;
      try {
        sf.readFloat32(t.name);
      } catch (err) {
        const r = refusal(err);
        if (!r.ok) return { status: 'crash', accepted: true, detail: `reading ${t.name}: ${r.detail}` };
      }
    }
    return { status: 'ok', accepted: true };
  } finally {
    sf.close();
  }
}

function runConfig(c: Extract<Case, { kind: 'config' }>, dir: string): Omit<Outcome, 'i' | 'kind' | 'what' | 'hwm'> {
  fs.writeFileSync(path.join(dir, 'config.json'), c.text);
  try {
    const cfg = loadConfig(dir);
    const raw = JSON.parse(c.text) as Record<string, unknown>;
    const rs = raw.rope_scaling;
    if (rs !== undefined && rs !== null && (typeof rs !== 'object' || Array.isArray(rs)) && raw.rope_parameters == null) {
      return { status: 'disagree', accepted: true, detail: 'rope_scaling that is not an object was accepted' };
    }
    const ar = raw.architectures;
    if (ar !== undefined && ar !== null && !(Array.isArray(ar) && ar.every((a) => typeof a === 'string'))) {
      return { status: 'disagree', accepted: true, detail: 'architectures that is not a list of strings was accepted' };
    }
    const sizes: Record<string, number> = { num_hidden_layers: cfg.numLayers, hidden_size: cfg.hiddenSize, vocab_size: cfg.vocabSize,
      intermediate_size: cfg.intermediateSize, num_attention_heads: cfg.numHeads, max_position_embeddings: cfg.maxPositions };
    for (const [k, v] of Object.entries(sizes)) if (v > CONFIG_LIMITS[k]!) return { status: 'disagree', accepted: true, detail: `${k} ${v} past its limit` };
    expectedTensors(cfg); // what a load builds first: bounded by the limits
    return { status: 'ok', accepted: true };
  } catch (err) {
    const r = refusal(err);
    return r.ok ? { status: 'ok', accepted: false } : { status: 'crash', accepted: false, detail: r.detail };
  }
}

function runInputs(c: InputsCase, file: string): Omit<Outcome, 'i' | 'kind' | 'what' | 'hwm'> {
  const tensors: TensorToWrite[] = [];
  for (const t of c.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const data = t.dtype === 'I64' || t.dtype === 'U64' ? new BigInt64Array(n).fill(BigInt(Math.trunc(t.fill)))
      : t.dtype === 'F32' ? new Float32Array(n).fill(t.fill) : t.dtype === 'F64' ? new Float64Array(n).fill(t.fill)
        : t.dtype === 'U8' ? new Uint8Array(n).fill(t.fill & 0xff) : new Int32Array(n).fill(t.fill);
    tensors.push({ name: t.name, dtype: t.dtype as TensorToWrite['dtype'], shape: t.shape, data });
  }
  try {
    writeSafetensors(file, tensors);
  } catch {
    return { status: 'ok', accepted: false, detail: 'not writable (case skipped)' };
  }
  const cfg = loadConfig(TINY);
  try {
    const inputs = readInputs(file, (b, t) => checkDumpMemory(cfg, b, t, 2, `${file}: input_ids`));
    checkInputs(cfg, inputs);
    return { status: 'ok', accepted: true };
  } catch (err) {
    const r = refusal(err);
    return r.ok ? { status: 'ok', accepted: false } : { status: r.detail.startsWith('unbounded') ? 'message' : 'crash', accepted: false, detail: r.detail };
  }
}

function runCompare(c: CompareCase, file: string): Omit<Outcome, 'i' | 'kind' | 'what' | 'hwm'> {
  const refPath = path.join(ROOT, c.reference);
  const ref = SafetensorsFile.open(refPath);
  const tensors: TensorToWrite[] = [];
  let wrong = true;
  try {
    for (const t of ref.tensors()) {
      const data = t.dtype.startsWith('F') ? ref.readFloat32(t.name) : ref.readInt32(t.name);
      let out: TensorToWrite = { name: t.name, dtype: t.dtype.startsWith('F') ? 'F32' : 'I32', shape: t.shape, data };
      if (t.name === c.target) {
        const x = data as Float32Array;
        if (c.change === 'int32-zeros') out = { ...out, dtype: 'I32', data: new Int32Array(x.length) };
        else if (c.change === 'f64-huge') out = { ...out, dtype: 'F64', data: Float64Array.from(x, (v, i) => (i === 0 ? 1e200 : v)) };
        else if (c.change === 'f32-max') out = { ...out, data: Float32Array.from(x, (v, i) => (i === 0 ? 3e38 : v + 1e3)) };
        else if (c.change === 'nan') out = { ...out, data: Float32Array.from(x, (v, i) => (i === 0 ? NaN : v)) };
        else if (c.change === 'offset') out = { ...out, data: Float32Array.from(x, (v) => v + 1e3) };
        else if (c.change === 'shape') out = { ...out, shape: [x.length] };
        else if (c.change === 'drop') {
          wrong = false;
          continue;
        } else wrong = false;
      }
      tensors.push(out);
    }
  } finally {
    ref.close();
  }
  if (c.change === 'huge-layer-name') tensors.push({ name: 'layers.20000000.out', dtype: 'F32', shape: [1], data: new Float32Array(1) });
  writeSafetensors(file, tensors);
  try {
    const { report } = compareFiles(refPath, file, {});
    if (wrong && report.ok) return { status: 'compare-pass', accepted: true, detail: `${c.change} on ${c.target} passed` };
    return { status: 'ok', accepted: true };
  } catch (err) {
    const r = refusal(err);
    return r.ok ? { status: 'ok', accepted: false } : { status: 'crash', accepted: false, detail: r.detail };
  }
}

function hwm(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
  } catch {
    return process.memoryUsage().rss;
  }
}

/**
 * PHI4_FUZZ_INJECT="hang:3,crash:5,blowup:7" misbehaves on purpose at those cases, so that the
 * tests can check the runner catches each kind of failure (test/fuzz.test.ts).
 */
function inject(i: number): void {
  const spec = process.env.PHI4_FUZZ_INJECT;
  if (!spec) return;
  for (const part of spec.split(',')) {
    const [what, at] = part.split(':');
    if (Number(at) !== i) continue;
    if (what === 'hang') for (;;);
    if (what === 'crash') process.exit(70);
    if (what === 'blowup') {
      const hold = Buffer.alloc(Number(process.env.PHI4_FUZZ_INJECT_BYTES ?? 1.25 * 2 ** 30), 1); // touched, so resident
      const until = Date.now() + 10_000;
      while (Date.now() < until) if (hold[0] !== 1) break;
    }
    if (what === 'throw') throw new TypeError('injected');
  }
}

async function main(): Promise<void> {
  const [seed, from, to, tmp] = [Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4]), process.argv[5]!];
  const kinds = process.argv[6]!.split(',') as Kind[];
  const dir = fs.mkdtempSync(path.join(tmp, 'w-'));
  process.send!({ ready: true });
  for (let i = from; i < to; i++) {
    try {
      inject(i);
    } catch (err) {
      process.send!({ i, kind: 'header', what: 'injected', hwm: hwm(), status: 'crash', accepted: false, detail: String(err) } satisfies Outcome);
      await new Promise((res) => setImmediate(res));
      continue;
    }
    const c = makeCase(seed, i, kinds);
    if (!c) {
      process.send!({ i, skipped: true });
      continue;
    }
    const file = path.join(dir, `case.safetensors`);
    let r: Omit<Outcome, 'i' | 'kind' | 'what' | 'hwm'>;
    try {
      r = c.kind === 'header' ? runHeader(c, file) : c.kind === 'config' ? runConfig(c, dir) : c.kind === 'inputs' ? runInputs(c, file) : runCompare(c, path.join(dir, 'cand.safetensors'));
    } catch (err) {
      r = { status: 'crash', accepted: false, detail: `harness: ${(err as Error)?.stack?.split('\n').slice(0, 3).join(' | ')}` };
    }
    process.send!({ i, kind: c.kind, what: c.what.slice(0, 300), hwm: hwm(), ...r } satisfies Outcome);
    await new Promise((res) => setImmediate(res)); // let the report go out
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.disconnect();
}

main();
