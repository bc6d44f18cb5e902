// `phi4 compare` on two `phi4 generate --out` files: step logits compared step by step, and, with
// the checkpoint, which LongRoPE policy each run follows (src/generate/rope-policy.ts).
// docs/compare.md, "Generations".

import { SafetensorsFile } from '../../weights/index.js';
import { type Preset, PRESETS } from './report.js';
import { logitStats } from './measures.js';
import { fmt, lpad, pad } from './format.js';
import { configHash } from '../model/config.js';
import { type PolicyMatch, fitPolicies } from '../generate/rope-policy.js';
import { relL2 } from '../oracle/metrics.js';
import { type Phi3Model } from '../model/model.js';
import { InputError } from '../errors.js';
import type { RopeConfig } from '../../layers/rotary.js';
import { type StepTaps, type StepTapsReport, compareStepTaps, readStepTaps } from './step-taps.js';

/** What a generate file holds (src/generate/generate.ts writeGeneration; golden/dumps/*.generate* share it). */
export interface Generation {
  path: string;
  prompt: Int32Array;
  ids: Int32Array;
  /** One row [V] per step. */
  logits: Float32Array[];
  checkpoint?: string;
  configHash?: string;
  /** The prefill chunk the run recorded, if any (a hint for the chunked fit). */
  prefillChunk?: number;
  /** Taps recorded at every step (`generate --taps`), if any. */
  stepTaps?: StepTaps;
}

export interface GenerationStep {
  step: number;
  /** Tokens before this step: the step predicts the token at this position. */
  position: number;
  referenceId: number;
  candidateId: number;
  relL2: number;
  /** The two logits rows choose the same token. */
  top1: boolean;
  kl: number;
  ok: boolean;
}

export interface GenerationReport {
  kind: 'generation';
  tolerance: number;
  preset: Preset | 'custom';
  promptLength: number;
  stepsReference: number;
  stepsCandidate: number;
  /** The steps both runs computed on the same sequence (up to and including the first differing token). */
  steps: GenerationStep[];
  /** First step at which the two runs chose different tokens (null: none). */
  firstDifferentToken: number | null;
  /** First step whose logits differ beyond the tolerance. */
  firstDivergentStep: number | null;
  metadata: { reference: { checkpoint?: string; config_hash?: string }; candidate: { checkpoint?: string; config_hash?: string }; sameConfig: boolean | null };
  /** When both runs recorded taps at every step: those compared step by step (./step-taps.ts). */
  stepTaps?: StepTapsReport;
  /** With the checkpoint: the LongRoPE policy each run's logits follow. */
  policy?: { candidate: PolicyMatch; reference: PolicyMatch; checkpoint: string };
  diagnosis: string;
  ok: boolean;
}

const GENERATION_TENSORS = ['prompt_ids', 'generated_ids', 'step_logits'];

/** Whether an open safetensors file is a generation (prompt_ids, generated_ids, step_logits). */
export function isGeneration(f: SafetensorsFile): boolean {
  const names = new Set(f.tensors().map((t) => t.name));
  return GENERATION_TENSORS.every((n) => names.has(n));
}

/** Reads a generate file, checking the shapes agree (bad files are InputErrors naming the file and tensor). */
export function readGeneration(path: string, f: SafetensorsFile): Generation {
  const shape = (n: string) => f.tensors().find((t) => t.name === n)!.shape;
  const [ps, is, ls] = [shape('prompt_ids'), shape('generated_ids'), shape('step_logits')];
  if (ps.length !== 2 || ps[0] !== 1) throw new InputError(`${path}: prompt_ids must be [1, T], got [${ps}]`);
  if (is.length !== 1) throw new InputError(`${path}: generated_ids must be [N], got [${is}]`);
  if (ls.length !== 2 || ls[0] !== is[0]) throw new InputError(`${path}: step_logits must be [N = ${is[0]}, V], got [${ls}]`);
  const data = f.readFloat32('step_logits');
  const V = ls[1];
  const chunk = Number(f.metadata.prefill_chunk);
  return {
    path, prompt: f.readInt32('prompt_ids'), ids: f.readInt32('generated_ids'),
    logits: Array.from({ length: is[0] }, (_, i) => data.slice(i * V, (i + 1) * V)),
    checkpoint: f.metadata.checkpoint, configHash: f.metadata.config_hash,
    prefillChunk: Number.isInteger(chunk) && chunk > 0 ? chunk : undefined,
    stepTaps: readStepTaps(path, f),
  };
}

/** The two runs step by step, without a model. */
export function compareGenerations(ref: Generation, cand: Generation, opts: { preset?: Preset; tolerance?: number; rope?: RopeConfig } = {}): GenerationReport {
  const preset = opts.preset ?? 'fp32';
  const tol = opts.tolerance ?? PRESETS[preset];
  if (ref.prompt.length !== cand.prompt.length || ref.prompt.some((x, i) => x !== cand.prompt[i])) {
    const i = ref.prompt.findIndex((x, j) => x !== cand.prompt[j]);
    throw new InputError(`prompt_ids: the two runs had different prompts (${ref.prompt.length} and ${cand.prompt.length} tokens${i >= 0 && i < cand.prompt.length ? `, first difference at ${i}: ${ref.prompt[i]} vs ${cand.prompt[i]}` : ''})`);
  }
  const V = ref.logits[0]?.length ?? 0;
  if (cand.logits.length && cand.logits[0].length !== V && ref.logits.length) {
    throw new InputError(`step_logits: the vocabularies differ (reference ${V}, candidate ${cand.logits[0].length})`);
  }
  const n = Math.min(ref.ids.length, cand.ids.length);
  let diff: number | null = null;
  for (let i = 0; i < n; i++) if (ref.ids[i] !== cand.ids[i]) { diff = i; break; }
  const comparable = diff === null ? n : diff + 1; // step s sees the tokens of steps < s
  const steps: GenerationStep[] = [];
  for (let s = 0; s < comparable; s++) {
    const d = relL2(cand.logits[s], ref.logits[s]);
    const st = logitStats(cand.logits[s], ref.logits[s], V);
    steps.push({ step: s, position: ref.prompt.length + s, referenceId: ref.ids[s], candidateId: cand.ids[s], relL2: d, top1: st.top1 === 1, kl: st.klMax, ok: d <= tol });
  }
  const bad = steps.find((s) => !s.ok);
  const same = (x?: string, y?: string) => (x === undefined || y === undefined ? null : x === y);
  const report: GenerationReport = {
    kind: 'generation', tolerance: tol, preset: opts.tolerance !== undefined ? 'custom' : preset, promptLength: ref.prompt.length,
    stepsReference: ref.ids.length, stepsCandidate: cand.ids.length, steps, firstDifferentToken: diff, firstDivergentStep: bad?.step ?? null,
    metadata: { reference: { checkpoint: ref.checkpoint, config_hash: ref.configHash }, candidate: { checkpoint: cand.checkpoint, config_hash: cand.configHash }, sameConfig: same(ref.configHash, cand.configHash) },
    diagnosis: '', ok: false,
  };
  if (ref.stepTaps && cand.stepTaps) report.stepTaps = compareStepTaps(ref.stepTaps, cand.stepTaps, comparable, tol, opts.rope);
  report.ok = !bad && diff === null && report.metadata.sameConfig !== false && report.stepTaps?.firstStep == null;
  report.diagnosis = diagnoseGeneration(report);
  return report;
}

function diagnoseGeneration(r: GenerationReport): string {
  const parts: string[] = [];
  // a divergence inside a step, where taps were recorded, is the most specific thing known: it leads
  if (r.stepTaps && r.stepTaps.firstStep !== null) parts.push(r.stepTaps.text);
  if (r.metadata.sameConfig === false) parts.push(`different checkpoint/config: reference config ${r.metadata.reference.config_hash}, candidate config ${r.metadata.candidate.config_hash}; the runs come from different models`);
  const worst = r.steps.reduce((w, s) => (s.relL2 > w ? s.relL2 : w), 0);
  if (r.firstDivergentStep === null) {
    parts.push(`all ${r.steps.length} compared steps within rel L2 ${fmt(r.tolerance)} (worst ${fmt(worst)})${r.firstDifferentToken === null ? '' : `, but the runs chose different tokens at step ${r.firstDifferentToken}`}`);
  } else {
    const s = r.steps[r.firstDivergentStep];
    parts.push(`the step logits diverge from step ${s.step} (the token at position ${s.position}; rel L2 ${fmt(s.relL2)} > ${fmt(r.tolerance)}; worst ${fmt(worst)})` +
      (r.firstDifferentToken === null ? '' : `; the chosen tokens differ from step ${r.firstDifferentToken}, so later steps are not compared`));
  }
  if (r.stepTaps && r.stepTaps.firstStep === null) parts.push(r.stepTaps.text);
  if (r.policy) {
    parts.push(`candidate: ${r.policy.candidate.text}`);
    const ref = r.policy.reference;
    parts.push(ref.matching[0] === 'default' ? `the reference follows the default (worst step ${fmt(ref.best.worst)})` : `the reference does NOT follow the default: ${ref.text}`);
  } else {
    parts.push('give --checkpoint (or a run that records one) to name the LongRoPE policy the candidate follows');
  }
  return parts.join('; ');
}

/**
 * Adds the LongRoPE policy fit of both runs, recomputed with `model` (which must be the runs'
 * checkpoint: a recorded config hash that differs is refused).
 */
export function addPolicyFit(r: GenerationReport, model: Phi3Model, ref: Generation, cand: Generation, checkpoint: string): void {
  const hash = configHash(model.config);
  for (const g of [ref, cand]) {
    if (g.configHash !== undefined && g.configHash !== hash) throw new InputError(`--checkpoint: ${checkpoint} has config ${hash}, but ${g.path} was generated with config ${g.configHash}`);
    if (g.logits.length && g.logits[0].length !== model.config.vocabSize) throw new InputError(`--checkpoint: ${checkpoint} has ${model.config.vocabSize} tokens, but ${g.path}'s step_logits have ${g.logits[0].length}`);
  }
  const hints = [cand.prefillChunk, ref.prefillChunk].filter((x): x is number => x !== undefined);
  const fit = (g: Generation) => fitPolicies(model, g.prompt, g.ids, g.logits, r.tolerance, hints);
  const candidate = fit(cand);
  const sameRun = ref.ids.length === cand.ids.length && ref.ids.every((x, i) => x === cand.ids[i]);
  const reference = sameRun && ref.logits.every((row, i) => relL2(row, cand.logits[i]) === 0) ? candidate : fit(ref);
  r.policy = { candidate, reference, checkpoint };
  if (candidate.matching.length && candidate.matching[0] !== 'default') r.ok = false; // a wrong policy is a bug even where the steps happen to agree
  r.diagnosis = diagnoseGeneration(r);
}


/** The report as `phi4 compare` prints it. */
export function formatGeneration(r: GenerationReport, labels: { reference: string; candidate: string }): string {
  const out: string[] = [];
  out.push(`reference: ${labels.reference}`);
  out.push(`candidate: ${labels.candidate}`);
  out.push(`generation: prompt ${r.promptLength} tokens, ${r.stepsReference} steps in the reference, ${r.stepsCandidate} in the candidate; tolerance rel L2 <= ${r.tolerance.toExponential(1)} per step (${r.preset === 'custom' ? '--rtol' : `preset ${r.preset}`})`);
  out.push(`  ${lpad('step', 4)}${lpad('pos', 6)}${lpad('ref id', 8)}${lpad('cand id', 8)}${lpad('rel L2', 9)}${lpad('KL', 9)}  ok`);
  for (const s of r.steps) out.push(`  ${lpad(String(s.step), 4)}${lpad(String(s.position), 6)}${lpad(String(s.referenceId), 8)}${lpad(String(s.candidateId), 8)}${lpad(fmt(s.relL2), 9)}${lpad(fmt(s.kl), 9)}  ${s.ok ? 'ok' : 'DIVERGES'}`);
  if (r.policy) {
    const fits = r.policy.candidate.fits;
    out.push(`LongRoPE policies recomputed with ${r.policy.checkpoint} on the candidate's tokens: rel L2 of the candidate's step logits`);
    out.push(`  ${pad('policy', 22)}${lpad('worst', 9)}${lpad('first over', 12)}${lpad('leaves default', 16)}`);
    for (const f of fits) {
      const label = f.policy === 'chunked' ? `chunked (prefill ${f.prefillChunk})` : f.policy;
      out.push(`  ${pad(label, 22)}${lpad(fmt(f.worst), 9)}${lpad(f.firstOver === null ? '-' : `step ${f.firstOver}`, 12)}${lpad(f.leavesDefaultAt === null ? '-' : `step ${f.leavesDefaultAt}`, 16)}${r.policy.candidate.matching.includes(label) ? '  matches' : ''}`);
    }
  }
  out.push(`${r.ok ? 'PASS' : 'FAIL'}: ${r.diagnosis}`);
  return out.join('\n');
}
