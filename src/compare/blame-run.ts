// compare blames by default: when the checkpoint the dumps were made from can be read (given with
// --checkpoint, else the path the reference dump records), every step is re-run on the
// candidate's own input to it (./diagnose/blame.ts), and the verdict opens with the step that is
// wrong on its own input. `--no-blame` skips it; where no checkpoint is known, a verdict that finds
// nothing, or names a tap after the first one whose error rises, says how to get the blame.

import { existsSync } from 'node:fs';
import { SafetensorsFile } from '../../weights/index.js';
import { readInputs } from '../checkpoint/inputs.js';
import { configHash, loadConfig } from '../model/config.js';
import { Phi3Model } from '../model/model.js';
import { checkDumpMemory, defaultMaxMemoryGiB, precheckInputs } from '../safety/precheck.js';
import { InputError } from '../errors.js';
import { blame } from './diagnose/blame.js';
import { fileEntries } from './files.js';
import { type MapSpec, applyMap } from './map.js';
import type { CompareReport } from './report.js';
import { fmt } from './format.js';
import { hint } from './diagnosis.js';

/** Where the blame's checkpoint comes from: given (an error in it is the user's), or recorded (an error in it is a note). */
export type BlameSource = { checkpoint: string; given: boolean } | null;

/** The checkpoint to blame with: the one given, else the reference dump's recorded one while it exists; null when none. */
export function blameCheckpoint(refPath: string, given: string | undefined): BlameSource {
  if (given !== undefined) return { checkpoint: given, given: true };
  const f = SafetensorsFile.open(refPath);
  try {
    const c = f.metadata.checkpoint;
    return f.metadata.format === 'phi4-ts.dump' && c && existsSync(c) ? { checkpoint: c, given: false } : null;
  } finally {
    f.close();
  }
}

/**
 * Refuses a checkpoint that is not the one the reference dump was made from: its config hash differs
 * from the one the dump records, or (a dump that records none) its vocabulary does not hold the ids.
 * Returns why, or null when it fits.
 */
export function checkpointMismatch(refPath: string, checkpoint: string): string | null {
  const cfg = loadConfig(checkpoint);
  const f = SafetensorsFile.open(refPath);
  let recorded: string | undefined;
  let from: string | undefined;
  try {
    recorded = f.metadata.config_hash;
    from = f.metadata.checkpoint;
  } finally {
    f.close();
  }
  const hash = configHash(cfg);
  if (recorded && recorded !== hash) {
    return `${checkpoint}: this checkpoint is not the one the dumps were made from (config ${hash}; ${refPath} records config ${recorded}${from ? ` from ${from}` : ''})`;
  }
  try {
    precheckInputs(cfg, readInputs(refPath));
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    return `${checkpoint}: this checkpoint is not the one the dumps were made from (${e.message})`;
  }
  return null;
}

/**
 * The local error over which a step is blamed. An honest runtime's step, re-run on its own input,
 * differs by its own rounding only; a bug by more. Measured (docs/compare.md, "blame"):
 *  fp32  tol / 10 = 1e-6: our float32 steps re-run on float32 inputs agree to ~1e-7; an RMSNorm eps
 *        of 1e-6 for 1e-5 makes its norm's local error 2e-6 and more.
 *  bf16  3e-2: llama.cpp's Q4_K_M matmuls, which quantize their activations to Q8_K, reach 1.5e-2
 *        (layers.1.mlp_out of golden/llamacpp/phi4-mini-q256, re-run on the same GGUF); transformers
 *        on CUDA in bf16 (golden/dumps/*.cuda-bf16) 5.9e-3 at layers.0.out, the float64 reference
 *        with bf16 rounding 2.1e-3; 2x margin over the largest.
 *  fp16  1.6e-3: the float64 reference with f16 rounding reaches 2.7e-4; a real fp16 runtime is
 *        taken to be 2.9x that, as bf16's was (no fp16 runtime's dump measured yet); 2x margin.
 *  --rtol: a tenth of it.
 */
export function blameThreshold(r: CompareReport): number {
  if (r.preset === 'bf16') return 3e-2;
  if (r.preset === 'fp16') return 1.6e-3;
  return r.tolerance / 10;
}

/** The first tap whose error rises over the blame threshold (where a blame would look), or null. */
function firstRise(r: CompareReport): string | null {
  return r.taps.find((t) => !t.finding && !(t.relL2 <= blameThreshold(r)))?.name ?? null;
}

/** Why no blame ran, said in the verdict where it matters: nothing found, or the divergence named late. */
export function noteNoBlame(r: CompareReport, why: string): void {
  const rise = firstRise(r);
  if (r.firstDivergent === null || (rise !== null && rise !== r.firstDivergent)) {
    const late = r.firstDivergent !== null && rise ? `; the error first rises at ${rise}, before ${r.firstDivergent}` : '';
    r.diagnosis += `${late}; no per-step blame (${why}): give the checkpoint the dumps were made from with --checkpoint DIR to re-run each step on the candidate's own input`;
  }
}

/**
 * Runs the blame and rewrites the verdict: a blamed step comes first (its local error, what that
 * step usually gets wrong), then the numbers. `map`: the one compare applied to the candidate.
 */
export async function addBlame(report: CompareReport, refPath: string, candPath: string, map: MapSpec | null, source: NonNullable<BlameSource>,
  ready: () => Promise<void>): Promise<void> {
  const mismatch = checkpointMismatch(refPath, source.checkpoint);
  if (mismatch) {
    if (source.given) throw new InputError(mismatch);
    noteNoBlame(report, `the recorded checkpoint has changed: ${mismatch}`);
    return;
  }
  const inputs = readInputs(refPath);
  try {
    checkDumpMemory(loadConfig(source.checkpoint), inputs.batch, inputs.seq, defaultMaxMemoryGiB(), source.checkpoint);
  } catch (e) {
    if (source.given || !(e instanceof InputError)) throw e;
    noteNoBlame(report, `re-running ${source.checkpoint} would not fit in memory`);
    return;
  }
  await ready();
  const model = Phi3Model.load(source.checkpoint);
  const f = SafetensorsFile.open(candPath);
  try {
    let entries = fileEntries(f);
    if (map && map.applyTo !== 'reference') entries = applyMap(entries, map, 'candidate');
    const acc = new Map(report.taps.map((t) => [t.name, t.relL2]));
    report.blame = blame(model, inputs, entries, acc, blameThreshold(report));
    report.blame.checkpoint = source.checkpoint;
    const b = report.blame;
    if (b.blamed) {
      report.ok = false; // a step that is wrong on its own input is a bug, even under tolerance
      const under = report.firstDivergent === null ? `, though every tap is within rel L2 ${fmt(report.tolerance)}` : '';
      // the rotary fit, where it named a cause, is the why of a rotary step; otherwise the step's checklist
      const fitted = report.ropeFingerprint?.causes.length && /(^rope\.|\.q_rot$|\.k_rot$)/.test(b.blamed);
      report.diagnosis = fitted ? `${b.text}${under}; ${report.diagnosis}` : `${b.text}${under}: ${hint(b.blamed)}; the numbers: ${report.diagnosis}`;
    } else {
      report.diagnosis += `; ${b.text}`;
    }
  } finally {
    f.close();
    model.dispose();
  }
}
