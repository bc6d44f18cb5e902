// Phi3ForCausalLM assembled from the blocks in layers/:
//
//   x      = embed_tokens[input_ids]                         [B, T, H]
//   x      = decoderLayer_i(x)   for i in 0 .. L-1            [B, T, H]
//   logits = rmsNorm(x) W_head^T   (W_head = embed_tokens when tied)   [B, T, V]
//
// Weights keep the checkpoint's tensor names (see ./weights.ts).

import * as tf from '@tensorflow/tfjs-core';
import type { KvCache } from '../../layers/attention.js';
import { decoderLayer } from '../../layers/decoder.js';
import { rmsNorm } from '../../layers/rmsnorm.js';
import { rotaryTables } from '../../layers/rotary.js';
import { type Tap, noTap, prefixTap } from '../../layers/tap.js';
import { type Phi3Config, loadConfig } from './config.js';
import { type Hooks, checkTapNames, hookTap } from './hooks.js';
import { type TapName, seqAxis, tapNames } from '../../layers/taps.js';
import { captureQueryChunk } from '../capture/memory.js';
import { type Selection, type SelectionSpec, resolveSelection } from '../capture/selection.js';
import type { ProgressSink } from '../progress.js';
import { type ModelWeights, type WeightMode, loadWeights } from './weights.js';
import { InputError } from '../errors.js';

export type { Hook, Hooks } from './hooks.js';

export interface ForwardInputs {
  /** [batch * seq] token ids, row-major. */
  inputIds: Int32Array;
  batch: number;
  seq: number;
  /** [batch * (past + seq)], 1 = token, 0 = padding. Default: all ones. */
  attentionMask?: Int32Array;
  /** [batch * seq]. Default: past, past + 1, ... for every row. */
  positionIds?: Int32Array;
}

export interface ForwardOptions {
  /** `{ [tapName]: (t) => t | void }`: observe a tap, or return a same-shaped tensor to replace it. */
  hooks?: Hooks;
  /** Low level: called with every intermediate (after its hook) under its tap name; its return value is used. */
  tap?: Tap;
  /** Per-layer keys and values of earlier positions (all with the same past length). */
  past?: KvCache[];
  /** Force LongRoPE's factor set (true long, false short); default: chosen from the positions. */
  ropeLong?: boolean;
  /**
   * Attention queries per chunk (Infinity: one chunk). Default: one chunk unless the scores would
   * pass SCORE_BUDGET_BYTES; a chunked layer emits `attn_probs` only for `probsRows`.
   */
  attentionChunk?: number;
  /**
   * attn_probs of query rows [start, end) only ([B, nh, end - start, S]), also when the queries run
   * in chunks; such a tap is observed, not replaced. Default: whole, and only from an unchunked layer.
   */
  probsRows?: [number, number];
  /** Run layers 0 .. lastLayer only (default: all); the head runs only after the last layer. */
  lastLayer?: number;
  /** The head (final_norm, logits) only for query rows [start, end) (default: all rows). */
  headRows?: [number, number];
  /**
   * Free each layer's keys, values and input as soon as the layer has run (the result's cache is
   * empty): for a caller whose taps copy what they keep, so memory does not grow with the layers.
   */
  dropCache?: boolean;
  /** Called after each layer with (layers done, layers to run). */
  onLayer?: (done: number, total: number) => void;
}

/** The default score budget: 256 MiB, a chunk of 682 queries at 4096 keys for Phi-4-mini's 24 heads. */
export const SCORE_BUDGET_BYTES = 256 * 2 ** 20;

export interface RunWithCacheOptions extends ForwardOptions {
  /** The taps to return (all by default); a layer the model lacks, or a name that reaches here untyped, is refused. */
  names?: Iterable<TapName>;
  /**
   * Tap globs, layers and query rows to capture (src/capture/selection.ts); with it, only the
   * selected taps and rows are materialised and the pass stops after the last layer it needs.
   */
  select?: SelectionSpec | Selection;
}

/** Called with each selected tap, its rows already cut to the selection; the tensor is freed after the call. */
export type TapSink = (name: TapName, t: tf.Tensor) => void;

export interface ForwardResult {
  logits: tf.Tensor3D; // [B, T, V]
  /** Per-layer keys and values including this call's positions. */
  cache: KvCache[];
  /** Whether LongRoPE used its long factors. */
  ropeLong: boolean;
}

/**
 * Checks ids and positions on the host against the config, so that bad input fails with a named
 * argument (also before any backend starts: src/safety/precheck.ts). Returns the position ids.
 */
export function checkInputs(cfg: Phi3Config, inp: ForwardInputs, past = 0): Int32Array {
  const { vocabSize, maxPositions } = cfg;
  const { inputIds, batch, seq } = inp;
  if (!(batch >= 1 && seq >= 1) || inputIds.length !== batch * seq) {
    throw new InputError(`input_ids: ${inputIds.length} ids do not make a [${batch}, ${seq}] batch`);
  }
  for (const id of inputIds) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new InputError(`input_ids: token id ${id} is outside the vocabulary [0, ${vocabSize})`);
  }
  if (inp.attentionMask && inp.attentionMask.length !== batch * (past + seq)) {
    throw new InputError(`attention_mask: ${inp.attentionMask.length} entries, expected [${batch}, ${past + seq}]`);
  }
  let pos = inp.positionIds;
  if (pos) {
    if (pos.length !== batch * seq) throw new InputError(`position_ids: ${pos.length} entries, expected [${batch}, ${seq}]`);
  } else {
    pos = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) for (let t = 0; t < seq; t++) pos[b * seq + t] = past + t;
  }
  for (const p of pos) {
    if (p < 0 || p >= maxPositions) throw new InputError(`position_ids: position ${p} is outside [0, max_position_embeddings = ${maxPositions})`);
  }
  return pos;
}

/** Thrown by capture's tap after the last selected tap and caught by capture: the pass ends there. */
const STOP_CAPTURE = Symbol('capture: last selected tap handed on');

export class Phi3Model {
  /** Attention scores above this many bytes are computed a chunk of queries at a time. */
  scoreBudgetBytes = SCORE_BUDGET_BYTES;

  constructor(readonly config: Phi3Config, readonly weights: ModelWeights, readonly source = '') {}

  /**
   * Loads config.json and the safetensors weights of a checkpoint directory; `weights` says how
   * they are held (src/model/weights.ts: auto, float32, bf16, stream; default $PHI4_WEIGHTS, else auto).
   */
  static load(dir: string, opts: { weights?: WeightMode; progress?: (totalBytes: number) => ProgressSink } = {}): Phi3Model {
    const config = loadConfig(dir);
    return new Phi3Model(config, loadWeights(dir, config, { mode: opts.weights, progress: opts.progress }), dir);
  }

  /** Checks ids and positions on the host, so that bad input fails with a named argument. */
  private validate(inp: ForwardInputs, past: number): Int32Array {
    return checkInputs(this.config, inp, past);
  }

  /**
   * Query rows per attention chunk: all of them unless the scores [B, nh, T, S] would pass
   * scoreBudgetBytes, or when attn_probs is wanted whole (a hook or runWithCache names it).
   */
  private queryChunk(B: number, S: number, opts: ForwardOptions): number {
    if (opts.attentionChunk !== undefined) return opts.attentionChunk;
    if (opts.hooks && Object.keys(opts.hooks).some((n) => n.endsWith('.attn_probs'))) return Infinity;
    return Math.max(1, Math.floor(this.scoreBudgetBytes / (4 * B * this.config.numHeads * S)));
  }

  /** One forward pass. The caller owns (and disposes) the returned tensors. */
  forward(inp: ForwardInputs, opts: ForwardOptions = {}): ForwardResult {
    const cfg = this.config;
    const w = this.weights;
    const tap = hookTap(opts.hooks, cfg.numLayers, opts.tap ?? noTap);
    const pastLen = opts.past?.[0]?.k.shape[2] ?? 0;
    const positionIds = this.validate(inp, pastLen);
    const { batch: B, seq: T } = inp;

    return tf.tidy(() => {
      let x = tap('embed', w.embed(inp.inputIds, B, T)); // [B, T, H]

      const rope = rotaryTables(cfg.rope, positionIds, B, T, opts.ropeLong);
      const cos = tap('rope.cos', rope.cos); // [B, T, r]
      const sin = tap('rope.sin', rope.sin);
      const mask = { // which of the past + T keys each query sees (layers/mask.ts)
        batch: B, queryLen: T, keyLen: pastLen + T, slidingWindow: cfg.slidingWindow,
        attentionMask: inp.attentionMask ?? null,
      };
      const queryChunk = this.queryChunk(B, pastLen + T, opts);

      const cache: KvCache[] = [];
      const last = Math.min(cfg.numLayers - 1, opts.lastLayer ?? cfg.numLayers - 1);
      for (let i = 0; i <= last; i++) {
        const lw = w.layer(i); // widened for this layer only, unless resident
        let r;
        try {
          r = decoderLayer(x, lw.weights, cfg, { cos, sin, mask, past: opts.past?.[i], queryChunk, probsRows: opts.probsRows }, prefixTap(tap, `layers.${i}.`));
        } finally {
          lw.release();
        }
        if (opts.dropCache && i > 0 && !opts.hooks) x.dispose(); // a hook's tensor is its owner's
        x = r.out;
        if (opts.dropCache) tf.dispose([r.cache.k, r.cache.v]);
        else cache.push(r.cache);
        opts.onLayer?.(i + 1, last + 1);
      }
      if (last < cfg.numLayers - 1) { // stopped early: no head, no logits rows
        return { logits: tf.zeros([B, 0, cfg.vocabSize]) as tf.Tensor3D, cache, ropeLong: rope.long };
      }

      const [h0, h1] = opts.headRows ?? [0, T];
      const xh = h0 === 0 && h1 === T ? x : tf.slice(x, [0, h0, 0], [B, h1 - h0, cfg.hiddenSize]); // [B, T', H]
      const normed = tap('final_norm', rmsNorm(xh, w.norm, cfg.rmsNormEps)); // [B, T', H]
      const logits = tap('logits', w.head(normed)); // [B, T', V]
      return { logits, cache, ropeLong: rope.long };
    });
  }

  /**
   * Runs a forward pass and returns the named taps (all of them by default) as kept tensors,
   * in the manner of TransformerLens' run_with_cache. With hooks, a cached tap holds the value
   * that flowed on (the replacement where a hook replaced it). The caller disposes them.
   */
  runWithCache(inp: ForwardInputs, opts: RunWithCacheOptions = {}): { logits: tf.Tensor3D; taps: Map<string, tf.Tensor> } {
    if (opts.select) {
      const { select, names, ...fwd } = opts;
      if (names) throw new InputError('runWithCache: give names or select, not both');
      const taps = new Map<string, tf.Tensor>();
      try {
        const logits = this.capture(inp, select, (name, t) => taps.set(name, tf.keep(t.clone())), fwd);
        return { logits, taps };
      } catch (err) {
        tf.dispose([...taps.values()]);
        throw err;
      }
    }
    const { names, ...fwd } = opts;
    const want = names ? new Set(names) : null;
    if (want) checkTapNames(want, this.config.numLayers, 'names');
    const taps = new Map<string, tf.Tensor>();
    const outer = fwd.tap ?? noTap;
    const tap: Tap = (name, t) => {
      const u = outer(name, t);
      if (!want || want.has(name)) taps.set(name, tf.keep(u.clone()));
      return u;
    };
    try {
      const wholeProbs = !want || [...want].some((n) => n.endsWith('.attn_probs'));
      const r = this.forward(inp, { ...fwd, tap, attentionChunk: fwd.attentionChunk ?? (wholeProbs ? Infinity : undefined) });
      for (const c of r.cache) tf.dispose([c.k, c.v]);
      return { logits: r.logits, taps };
    } catch (err) {
      tf.dispose([...taps.values()]);
      throw err;
    }
  }

  /** `spec` resolved against this model and `inp` (refusals name the flags of `phi4 dump`). */
  select(inp: ForwardInputs, spec: SelectionSpec | Selection): Selection {
    return 'names' in spec && Array.isArray(spec.names) ? spec as Selection : resolveSelection(spec as SelectionSpec, this.config.numLayers, inp.seq);
  }

  /**
   * One pass that hands each selected tap, cut to the selected rows, to `sink` as soon as it is
   * computed (then frees it); nothing unselected is copied, the head runs only on the selected
   * rows, and the pass stops after the last layer holding a selected tap. Returns the logits of
   * the selected rows ([B, 0, V] when the pass stopped before the head); the caller disposes them.
   */
  capture(inp: ForwardInputs, spec: SelectionSpec | Selection, sink: TapSink, fwd: ForwardOptions = {}): tf.Tensor3D {
    const sel = this.select(inp, spec);
    const want = new Set(sel.names);
    const { start, end } = sel;
    const whole = start === 0 && end === inp.seq;
    const outer = fwd.tap ?? noTap;
    // The pass ends at the last selected tap (nothing after it is computed), unless that is the logits.
    const lastName = tapNames(this.config.numLayers).filter((n) => want.has(n)).pop();
    const tap: Tap = (name, t) => {
      const u = outer(name, t);
      if (!want.has(name)) return u;
      if (name === lastName && name !== 'logits') {
        sinkCut(name, u);
        throw STOP_CAPTURE;
      }
      sinkCut(name, u);
      return u;
    };
    // attn_probs only for the selected rows, attention in blocks; unless a hook wants the whole
    // matrix (to replace it), which then flows on and is cut here like any tap.
    const hookedProbs = Object.keys(fwd.hooks ?? {}).some((n) => n.endsWith('.attn_probs'));
    const probsCut = !hookedProbs && sel.names.some((n) => n.endsWith('.attn_probs'));
    const sinkCut = (name: TapName, u: tf.Tensor): void => {
      // The head already ran on the selected rows only, and attention kept only their probabilities.
      if (whole || name === 'final_norm' || name === 'logits' || (probsCut && name.endsWith('.attn_probs'))) {
        sink(name, u);
      } else {
        const ax = seqAxis(name);
        const begin = u.shape.map((_, i) => (i === ax ? start : 0));
        const size = u.shape.map((n, i) => (i === ax ? end - start : n));
        const part = tf.slice(u, begin, size);
        try {
          sink(name, part);
        } finally {
          part.dispose();
        }
      }
    };
    try {
      const r = this.forward(inp, {
        ...fwd, tap, lastLayer: sel.lastLayer, headRows: [start, end], dropCache: true, probsRows: probsCut ? [start, end] : undefined,
        attentionChunk: fwd.attentionChunk ?? (hookedProbs ? Infinity : captureQueryChunk(this.config, inp.batch, inp.seq + (fwd.past?.[0]?.k.shape[2] ?? 0))),
      });
      return r.logits;
    } catch (err) {
      if (err !== STOP_CAPTURE) throw err;
      return tf.zeros([inp.batch, 0, this.config.vocabSize]) as tf.Tensor3D; // ended before the head
    }
  }

  dispose(): void {
    this.weights.dispose();
  }
}
