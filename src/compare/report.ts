// What `phi4 compare` reports, as types: the presets, one result per tap, the report with its
// verdict, and the options a comparison takes. No logic: compare.ts fills these, diagnosis.ts
// words them, render.ts prints them, plot.ts draws them.

import { F32_TOLERANCE } from '../oracle/tolerance.js';
import type { RopeConfig } from '../../layers/rotary.js';
import type { RopeFingerprint } from './diagnose/rope-fingerprint.js';
import type { WindowFingerprint } from './diagnose/sliding-window.js';
import type { BlameReport } from './diagnose/blame.js';
import type { RowErrors } from './rows.js';

/**
 * Relative-L2 tolerances per tap, from measurement (docs/compare.md, docs/fidelity.md):
 *  fp32  1e-5: the default backend is within 4.8e-7 of float64 on every tap of the full-size
 *        32-layer model (21x margin), an honest float32 with blocked sums within 2.6e-6 (3.8x).
 *  bf16  6e-2: the float64 reference storing its activations in bf16 reaches 3.0e-2 on the
 *        full-size 32-layer model with 32 ids and 3.28e-2 with 512 (attn_probs, the one tap that
 *        grows with length): 1.83x margin; a real bf16 runtime (transformers on CUDA) runs 1.17x
 *        to 1.28x the emulation's error.
 *  fp16  8e-3: the same emulation in float16 reaches 3.7e-3 (32 ids) and 4.13e-3 (512): 1.94x.
 */
export const PRESETS = { fp32: F32_TOLERANCE, bf16: 6e-2, fp16: 8e-3 } as const;
export type Preset = keyof typeof PRESETS;

/**
 * The version of `phi4 compare --json`'s schema (docs/compare.md, "compare in CI"), its first
 * field. It goes up when a field is removed, renamed or changes meaning; new fields do not change it.
 */
export const COMPARE_SCHEMA_VERSION = 1;

export const INPUT_NAMES = ['input_ids', 'attention_mask', 'position_ids'];

export interface LogitStats {
  /** Positions whose argmax agrees, of `positions`. */
  top1: number;
  positions: number;
  /** KL(softmax(reference) || softmax(candidate)) per position, in nats: mean and max. */
  klMean: number;
  klMax: number;
}

export interface TapResult {
  name: string;
  shape: number[];
  relL2: number;
  maxAbs: number;
  cosine: number;
  ok: boolean;
  logits?: LogitStats;
  /**
   * Why the tap could not be compared numerically (shapes or dtypes differ). Such a tap is listed,
   * named in the verdict and never passes; its numbers are NaN.
   */
  finding?: string;
  /** rel L2 per query position (over the batch), for taps with a position axis. */
  positions?: number[];
  /** Root mean square of `positions`: a tap passes only when this is within tolerance too. */
  positionRms?: number;
  /** rel L2 per head, for taps with a head axis (q_rot, k_rot, attn_probs; attn_out split by heads). */
  heads?: number[];
  /** rel L2 per batch row (real and padded positions apart), for batched or padded dumps. */
  rows?: RowErrors;
  /** With --budget: this tap's tolerance (K x the emulation's own error; the preset's where the emulation has no such tap), which `ok` is judged by. */
  budget?: number;
  /** With --budget: whether the tap is within the constant preset's tolerance (`tolerance`), the verdict without the budget. */
  presetOk?: boolean;
}

/** --budget bf16|f16 (./budget.ts): each tap's tolerance from the float64 reference with that storage emulated. */
export interface BudgetReport {
  rounding: 'bf16' | 'f16';
  /** A tap's budget is k x the emulation's own error on it, at least `floor`. */
  k: number;
  floor: number;
  /** The checkpoint the emulation ran on (the reference dump's inputs). */
  checkpoint: string;
  /** Per tap: the emulation's own error (rel L2 or per-position RMS, the larger) and the budget. */
  taps: { name: string; shape: number[]; emulated: number; budget: number }[];
}

/** The provenance our dumps record (src/oracle/dump.ts); another runtime's dump may have none. */
export interface DumpMeta {
  checkpoint?: string;
  config_hash?: string;
  /** The context a runtime allocated, where its dump records one (tools/llamacpp/phi4-tapdump). */
  n_ctx?: string;
}

export interface CompareReport {
  tolerance: number;
  preset: Preset | 'custom';
  /** Number of (batch, position) pairs compared, when an attention_mask restricted them. */
  maskedPositions?: { kept: number; total: number };
  taps: TapResult[];
  onlyReference: string[];
  onlyCandidate: string[];
  /** onlyCandidate with layer numbers folded: "blk.N.attn_norm" and how many names it stands for. */
  onlyCandidateSummary: { pattern: string; count: number }[];
  /** Taps that could not be compared numerically (shape, dtype), in forward order. */
  findings: string[];
  /** Both dumps' provenance, and whether they come from the same config / checkpoint. */
  metadata?: { reference: DumpMeta; candidate: DumpMeta; sameConfig: boolean | null; sameCheckpoint: boolean | null };
  firstDivergent: string | null;
  diagnosis: string;
  ok: boolean;
  /** Which LongRoPE factor set the candidate used, when a rotary tap diverges (and the config is known). */
  ropeFingerprint?: RopeFingerprint;
  /** Whether the candidate kept the sliding window, when a layer diverges and the config has one. */
  windowFingerprint?: WindowFingerprint;
  /** Per-step local errors (--blame): src/compare/diagnose/blame.ts. */
  blame?: BlameReport;
  /** With a reference run on the candidate's quantized weights (--weights-reference): see compareQuantized. */
  quantization?: QuantizationReport;
  /** With --budget: the emulated budget per tap; each tap's `budget` and `presetOk` come from it. */
  budget?: BudgetReport;
}

/** Per tap: the candidate's distance from the float reference and from the quantized-weights one. */
export interface QuantizedTap {
  name: string;
  /** rel L2 of the candidate against the float reference. */
  fromFloat: number;
  /** rel L2 of the candidate against the reference run on the same quantized weights. */
  fromQuantized: number;
  /** rel L2 of the quantized-weights reference against the float one: the quantization's own error. */
  quantizationError: number;
  /** What explains the candidate's error from the float reference at this tap. */
  explainedBy: 'nothing to explain' | 'weight quantization' | 'the candidate';
}

export interface QuantizationReport {
  taps: QuantizedTap[];
  /** The verdict's basis: the candidate against the quantized-weights reference. */
  worstFromFloat: { name: string; relL2: number } | null;
}

export interface CompareOptions {
  tolerance?: number;
  preset?: Preset;
  /** The reference model's rotary config, for the LongRoPE fingerprint (compareFiles reads it from the reference's checkpoint). */
  rope?: RopeConfig;
  /** The reference model's sliding window, for the sliding-window fingerprint (compareFiles reads it too). */
  slidingWindow?: number | null;
  /** The rows of the sequence the reference dump kept (`phi4 dump --positions`; compareFiles reads its `selection`): where the rotary fit's positions start. */
  rows?: { first: number; seqLen: number };
  /** Each dump's recorded provenance (compareFiles reads it from the files' metadata). */
  metadata?: { reference: DumpMeta; candidate: DumpMeta };
  /** Per-tap tolerances from an emulation (./budget.ts emulatedBudget); the preset's stays the bound of taps it lacks. */
  budget?: BudgetReport;
}
