// The memory a selected, streamed pass needs (`phi4 dump --taps/--layers/--positions`): one
// layer's intermediates at a time on the backend, attention scores a block of queries at a time,
// the head only on the selected rows, and on the host one selected tap at a time while it is
// written. On wasm every tensor lives in one heap that stops at 4 GiB, whatever the machine has.

import type { Phi3Config } from '../model/config.js';
import { formatMemory } from '../progress.js';
import { InputError } from '../errors.js';
import type { Selection } from './selection.js';
import { tapShape } from './shapes.js';

/** The wasm backend's heap: 32-bit addresses. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;
/** Attention scores per block of queries in a selected pass. */
export const CAPTURE_SCORE_BYTES = 64 * 2 ** 20;

export interface CaptureEstimate {
  /** Peak bytes of tensors on the backend (the wasm heap on wasm). */
  backend: number;
  /** Peak bytes of host copies (the tap being written). */
  host: number;
  /** What the estimate assumed, in words. */
  assumed: string;
}

/** Query rows per attention block so that one block's scores stay within CAPTURE_SCORE_BYTES. */
export function captureQueryChunk(cfg: Phi3Config, B: number, S: number): number {
  return Math.max(1, Math.floor(CAPTURE_SCORE_BYTES / (4 * B * cfg.numHeads * S)));
}

export function estimateCapture(cfg: Phi3Config, B: number, T: number, sel: Selection): CaptureEstimate {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: d, vocabSize: V } = cfg;
  const qkv = (nh + 2 * nkv) * d;
  // One layer's tensors, all alive until the layer ends (float32 per token): the residual stream
  // and its norms (8H), qkv and its split and transposed copies (3 qkv), the queries through
  // rotary and the attention context in its layouts (10 nh d), gate_up and its halves (4I), the
  // activation and its factors (4I).
  const perToken = 8 * H + 3 * qkv + 10 * nh * d + 8 * I;
  const rows = sel.end - sel.start;
  const scores = Math.min(4 * B * nh * T * T, CAPTURE_SCORE_BYTES);
  // attn_probs of the selected rows: the blocks' parts and their concatenation.
  const probs = sel.names.some((n) => n.endsWith('.attn_probs')) ? 2 * 4 * B * nh * rows * T : 0;
  const widened = 4 * Math.max(2 * I * H, qkv * H); // the largest matrix widened for its product
  const head = sel.head ? 4 * B * rows * (2 * H + V) : 0;
  const backend = 4 * B * T * perToken + 4 * scores + probs + widened + head;
  let host = 0;
  for (const n of sel.names) host = Math.max(host, 4 * tapShape(cfg, n, B, T, rows).reduce((a, b) => a * b, 1));
  const assumed = `one layer's intermediates at ${B} x ${T} tokens, attention scores in blocks of ${formatMemory(CAPTURE_SCORE_BYTES)}${probs ? `, attn_probs of the ${rows} selected rows` : ''}` +
    `, the head on ${rows} rows${sel.head ? '' : ' (not run)'}, the largest weight matrix widened to float32, one tap on the host at a time; weights not counted`;
  return { backend, host, assumed };
}

/** Refuses a selected pass whose estimate passes `maxGiB`, or the wasm heap on wasm; says what it assumed. */
export function checkSelectedMemory(cfg: Phi3Config, B: number, T: number, sel: Selection, maxGiB: number, source: string,
  wasm = true): CaptureEstimate {
  const e = estimateCapture(cfg, B, T, sel);
  const total = e.backend + e.host;
  if (wasm && e.backend > WASM_HEAP_BYTES) {
    throw new CaptureMemoryError(`${source}: a [${B}, ${T}] selected pass needs about ${formatMemory(e.backend)} of tensors, more than the wasm backend's 4 GiB heap (${e.assumed}); select fewer rows or fewer tokens`);
  }
  if (total > maxGiB * 2 ** 30) {
    throw new CaptureMemoryError(`${source}: a [${B}, ${T}] selected pass needs about ${formatMemory(total)}, more than the ${maxGiB} GiB limit (${e.assumed}); raise it with --max-memory GIB`);
  }
  return e;
}

export class CaptureMemoryError extends InputError {}
