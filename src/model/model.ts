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
   * pass SCORE_BUDGET_BYTES; a chunked layer does not emit `attn_probs`.
   */
  attentionChunk?: number;
}

/** The default score budget: 256 MiB, a chunk of 682 queries at 4096 keys for Phi-4-mini's 24 heads. */
export const SCORE_BUDGET_BYTES = 256 * 2 ** 20;

export interface RunWithCacheOptions extends ForwardOptions {
  /** The taps to return (all by default); unknown names are refused. */
  names?: Iterable<string>;
}

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
      for (let i = 0; i < cfg.numLayers; i++) {
        const lw = w.layer(i); // widened for this layer only, unless resident
        let r;
        try {
          r = decoderLayer(x, lw.weights, cfg, { cos, sin, mask, past: opts.past?.[i], queryChunk }, prefixTap(tap, `layers.${i}.`));
        } finally {
          lw.release();
        }
        x = r.out;
        cache.push(r.cache);
      }

      const normed = tap('final_norm', rmsNorm(x, w.norm, cfg.rmsNormEps)); // [B, T, H]
      const logits = tap('logits', w.head(normed)); // [B, T, V]
      return { logits, cache, ropeLong: rope.long };
    });
  }

  /**
   * Runs a forward pass and returns the named taps (all of them by default) as kept tensors,
   * in the manner of TransformerLens' run_with_cache. With hooks, a cached tap holds the value
   * that flowed on (the replacement where a hook replaced it). The caller disposes them.
   */
  runWithCache(inp: ForwardInputs, opts: RunWithCacheOptions = {}): { logits: tf.Tensor3D; taps: Map<string, tf.Tensor> } {
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

  dispose(): void {
    this.weights.dispose();
  }
}
