// The float64 reference forward pass of Phi3ForCausalLM: plain TypeScript over Float64Array
// (./ops.ts), no tensor library, every sum exact to float64. Its products (the linear layers and
// attention's two per head) run on every core in its own WebAssembly (./products.ts, ./gemm.wat),
// none of it shared with the model's kernels, which it judges. It is the yardstick the tfjs model
// (src/model/model.ts) is measured against at full size, where transformers' float64 dumps do not reach.
//
//   x      = embed_tokens[input_ids]                                      [R, H]   R = B * T
//   for each layer:  h = x + attention(rmsNorm(x));  x = h + mlp(rmsNorm(h))
//   logits = rmsNorm(x) W_head^T                                          [R, V]
//
// The weights are streamed: one matrix at a time, as it lies in the checkpoint (bf16 is widened
// inside the product), the embedding and a tied head a block of rows at a time, so the full 3.8 B
// model runs in about 1 GB beyond the page cache.
//
// Every tap of the tap table (layers/taps.ts) is emitted in the tfjs model's layout, and after each
// tap the value that flows on can be rounded to a storage format (./rounding.ts): `f32` is an
// ideal float32 runtime (exact sums, float32 storage between operations), `bf16` / `f16` one
// that stores its activations in those formats.
//
// Two things follow transformers rather than pure float64, because they are the model's
// definition there: the rotary cos/sin tables are built in float32 (layers/rope-tables.ts), and a
// masked score gets float32's lowest value added, as transformers' eager attention does.

import { freemem } from 'node:os';
import { rotaryTableData } from '../../../layers/rope-tables.js';
import type { Checkpoint } from '../../../weights/index.js';
import type { Phi3Config } from '../../model/config.js';
import type { ForwardInputs } from '../../model/model.js';
import { rmsNorm, rotate, silu } from './ops.js';
import { Products } from './products.js';
import { Scratch } from './scratch.js';
import { type Rounding, roundInPlace } from './rounding.js';
import { ReferenceInputError } from '../../errors.js';

/** Called with every tap (after rounding); `data` is the reference's own buffer, reused by later layers (./scratch.ts): copy it to keep it past the call. */
export type ReferenceTap = (name: string, data: Float64Array, shape: number[]) => void;

export interface ReferenceOptions {
  /** Storage format of the activations between operations (default 'none': float64 throughout). */
  rounding?: Rounding;
  onTap?: ReferenceTap;
  /** Force LongRoPE's factor set (true long, false short); default: chosen from the positions. */
  ropeLong?: boolean;
  /** Bytes the run may use; default: the memory the system has available now. */
  memoryBudget?: number;
  /** Stop after this layer (no head; returns an empty array): a selection that needs no later tap. */
  lastLayer?: number;
  /** Threads for the products (default os.availableParallelism()); the result is the same for any count. */
  threads?: number;
}

const MASKED = -3.4028234663852886e38; // float32's lowest, as transformers adds for a masked key
const HEAD_BLOCK_BYTES = 64 * 2 ** 20; // head rows widened to float64 at a time

/** Bytes the reference holds at its peak for `rows` = batch x positions (float64 everywhere). */
export function referenceBytes(cfg: Phi3Config, batch: number, seq: number): number {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: d, vocabSize: V } = cfg;
  const R = batch * seq;
  const layerWeights = ((nh + 2 * nkv) * d * H + H * nh * d + 3 * I * H) * 8; // one layer's matrices at once
  const activations = R * (6 * H + 2 * (nh + 2 * nkv) * d + 4 * I) * 8 + batch * (nh + 1) * seq * seq * 8; // + the mask [B, T, T]
  return layerWeights + activations + R * V * 8 + HEAD_BLOCK_BYTES;
}

function checkInputs(cfg: Phi3Config, inp: ForwardInputs): Int32Array {
  const { batch: B, seq: T, inputIds } = inp;
  if (!(B >= 1 && T >= 1) || inputIds.length !== B * T) throw new ReferenceInputError(`input_ids: ${inputIds.length} ids do not make a [${B}, ${T}] batch`);
  for (const id of inputIds) {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new ReferenceInputError(`input_ids: token id ${id} is outside the vocabulary [0, ${cfg.vocabSize})`);
  }
  if (inp.attentionMask && inp.attentionMask.length !== B * T) throw new ReferenceInputError(`attention_mask: ${inp.attentionMask.length} entries, expected [${B}, ${T}]`);
  const pos = inp.positionIds ?? Int32Array.from({ length: B * T }, (_, i) => i % T);
  if (pos.length !== B * T) throw new ReferenceInputError(`position_ids: ${pos.length} entries, expected [${B}, ${T}]`);
  for (const p of pos) {
    if (!(p >= 0 && p < cfg.maxPositions)) throw new ReferenceInputError(`position_ids: position ${p} is outside [0, max_position_embeddings = ${cfg.maxPositions})`);
  }
  return pos;
}

/**
 * Reads a checkpoint tensor as float64 into `into` (one buffer reused for every matrix: fresh
 * memory is slow to fault in), checking its shape against the config. Valid until the next read.
 */
function tensor(ckpt: Checkpoint, name: string, shape: number[], into: { buf: Float64Array }): Float64Array {
  if (!ckpt.has(name)) throw new ReferenceInputError(`${ckpt.dir}: tensor "${name}" is missing`);
  const got = ckpt.info(name).shape;
  if (got.join(',') !== shape.join(',')) throw new ReferenceInputError(`${ckpt.dir}: tensor "${name}" has shape [${got}], expected [${shape}]`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (into.buf.length < n) into.buf = new Float64Array(n);
  return ckpt.readFloat64Range(name, 0, n, into.buf).subarray(0, n);
}

/** Checks a checkpoint matrix's shape against the config; returns its name. */
function matrix(ckpt: Checkpoint, name: string, shape: number[]): string {
  if (!ckpt.has(name)) throw new ReferenceInputError(`${ckpt.dir}: tensor "${name}" is missing`);
  const got = ckpt.info(name).shape;
  if (got.join(',') !== shape.join(',')) throw new ReferenceInputError(`${ckpt.dir}: tensor "${name}" has shape [${got}], expected [${shape}]`);
  return name;
}

/**
 * One forward pass in float64 (or with activations rounded to `rounding` after every tap).
 * Returns the logits [batch * seq, V], row-major.
 */
export function referenceForward(ckpt: Checkpoint, cfg: Phi3Config, inp: ForwardInputs, opts: ReferenceOptions = {}): Float64Array {
  const { hiddenSize: H, vocabSize: V } = cfg;
  const { batch: B, seq: T } = inp;
  const positions = checkInputs(cfg, inp);
  const need = referenceBytes(cfg, B, T);
  const budget = opts.memoryBudget ?? freemem();
  if (need > budget) {
    throw new ReferenceInputError(`the float64 reference needs about ${(need / 2 ** 30).toFixed(1)} GiB for ${B} x ${T} positions; ` +
      `${(budget / 2 ** 30).toFixed(1)} GiB is available: pass fewer ids`);
  }
  const rounding = opts.rounding ?? 'none';
  const tap = (name: string, a: Float64Array, shape: number[]): Float64Array => {
    roundInPlace(a, rounding);
    opts.onTap?.(name, a, shape);
    return a;
  };
  const headName = cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  for (const name of ['model.embed_tokens.weight', headName]) {
    const got = ckpt.has(name) ? ckpt.info(name).shape.join(',') : 'missing';
    if (got !== `${V},${H}`) throw new ReferenceInputError(`${ckpt.dir}: tensor "${name}" is ${got === 'missing' ? got : `[${got}]`}, expected [${V}, ${H}]`);
  }

  const mm = new Products(ckpt, opts.threads);
  try {
    return forwardLayers(ckpt, cfg, inp, opts, positions, tap, headName, mm);
  } finally {
    mm.close();
  }
}

function forwardLayers(ckpt: Checkpoint, cfg: Phi3Config, inp: ForwardInputs, opts: ReferenceOptions, positions: Int32Array,
  tap: (name: string, a: Float64Array, shape: number[]) => Float64Array, headName: string, mm: Products): Float64Array {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: d, vocabSize: V, rmsNormEps: eps } = cfg;
  const { batch: B, seq: T } = inp;
  const R = B * T;
  const buf = new Scratch(); // every activation's buffer, reused by each layer
  // Embedding: the rows of the ids.
  const x = buf.get('x', R * H); // [R, H], the residual stream, updated in place by each layer
  for (let r = 0; r < R; r++) x.set(ckpt.readFloat64Range('model.embed_tokens.weight', inp.inputIds[r] * H, H), r * H);
  tap('embed', x, [B, T, H]);

  // Rotary tables, float32 as transformers builds them.
  const rot = cfg.rope.rotaryDim;
  const { cos, sin } = rotaryTableData(cfg.rope, positions, opts.ropeLong);
  tap('rope.cos', Float64Array.from(cos), [B, T, rot]);
  tap('rope.sin', Float64Array.from(sin), [B, T, rot]);

  const qkvDim = (nh + 2 * nkv) * d;
  const g = nh / nkv; // query heads per key/value head
  const allowed = (b: number, q: number, k: number): boolean => // layers/mask.ts's rule
    k <= q && (cfg.slidingWindow === null || q - k < cfg.slidingWindow) && (!inp.attentionMask || inp.attentionMask[b * T + k] !== 0);
  const mask = new Float64Array(B * T * T); // [B, T, T]: what each score gets added, the same for every head and layer
  for (let b = 0; b < B; b++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) mask[(b * T + i) * T + j] = allowed(b, i, j) ? 0 : MASKED;

  const wbuf = { buf: new Float64Array(0) }; // the weight buffer every matrix is read into in turn
  const last = Math.min(cfg.numLayers - 1, opts.lastLayer ?? cfg.numLayers - 1);
  for (let l = 0; l <= last; l++) {
    const p = `model.layers.${l}.`;
    const at = (name: string): string => `layers.${l}.${name}`;

    // Attention.
    const n1 = tap(at('input_norm'), rmsNorm(x, R, H, tensor(ckpt, `${p}input_layernorm.weight`, [H], wbuf), eps, buf.get('norm', R * H)), [B, T, H]);
    const qkv = tap(at('qkv'), mm.linear(n1, R, matrix(ckpt, `${p}self_attn.qkv_proj.weight`, [qkvDim, H]), qkvDim, H, 0, buf.get('qkv', R * qkvDim)), [B, T, qkvDim]);
    const q = buf.get('q', B * nh * T * d); // [B, nh, T, d]: every value written below
    const k = buf.get('k', B * nkv * T * d); // [B, nkv, T, d]
    const v = buf.get('v', B * nkv * T * d); // [B, nkv, T, d]
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const row = (b * T + t) * qkvDim;
        for (let h = 0; h < nh; h++) {
          const dst = ((b * nh + h) * T + t) * d;
          q.set(qkv.subarray(row + h * d, row + (h + 1) * d), dst);
          rotate(q, dst, cos, sin, (b * T + t) * rot, rot);
        }
        for (let h = 0; h < nkv; h++) {
          const dst = ((b * nkv + h) * T + t) * d;
          k.set(qkv.subarray(row + (nh + h) * d, row + (nh + h + 1) * d), dst);
          rotate(k, dst, cos, sin, (b * T + t) * rot, rot);
          v.set(qkv.subarray(row + (nh + nkv + h) * d, row + (nh + nkv + h + 1) * d), dst);
        }
      }
    }
    tap(at('q_rot'), q, [B, nh, T, d]);
    tap(at('k_rot'), k, [B, nkv, T, d]);

    // softmax(q k^T / sqrt(d) + mask) v, per head, on every core
    const { probs, out: attnOut } = mm.attention(q, k, v, B, T, nh, nkv, d, 1 / Math.sqrt(d), mask,
      { probs: buf.get('probs', B * nh * T * T), out: buf.get('attn', R * nh * d), vt: buf.get('vt', v.length) });
    tap(at('attn_probs'), probs, [B, nh, T, T]);
    tap(at('attn_out'), attnOut, [B, T, nh * d]);
    const o = tap(at('o_proj'), mm.linear(attnOut, R, matrix(ckpt, `${p}self_attn.o_proj.weight`, [H, nh * d]), H, nh * d, 0, buf.get('o', R * H)), [B, T, H]);
    const h1 = buf.get('h1', R * H);
    for (let i = 0; i < h1.length; i++) h1[i] = x[i] + o[i];
    tap(at('post_attn_residual'), h1, [B, T, H]);

    // MLP.
    const n2 = tap(at('post_attn_norm'), rmsNorm(h1, R, H, tensor(ckpt, `${p}post_attention_layernorm.weight`, [H], wbuf), eps, buf.get('norm', R * H)), [B, T, H]);
    const gateUp = tap(at('gate_up'), mm.linear(n2, R, matrix(ckpt, `${p}mlp.gate_up_proj.weight`, [2 * I, H]), 2 * I, H, 0, buf.get('gate_up', R * 2 * I)), [B, T, 2 * I]);
    const act = buf.get('act', R * I); // silu(gate) * up
    for (let r = 0; r < R; r++) {
      for (let i = 0; i < I; i++) act[r * I + i] = silu(gateUp[r * 2 * I + i]) * gateUp[r * 2 * I + I + i];
    }
    tap(at('mlp_act'), act, [B, T, I]);
    const m = tap(at('mlp_out'), mm.linear(act, R, matrix(ckpt, `${p}mlp.down_proj.weight`, [H, I]), H, I, 0, buf.get('o', R * H)), [B, T, H]);
    for (let i = 0; i < x.length; i++) x[i] = h1[i] + m[i]; // the layer's input is no longer needed

    tap(at('out'), x, [B, T, H]);
  }
  if (last < cfg.numLayers - 1) return new Float64Array(0);

  // Head: the final norm, then the (tied) head a block of vocabulary rows at a time.
  const fn = tap('final_norm', rmsNorm(x, R, H, tensor(ckpt, 'model.norm.weight', [H], wbuf), eps, buf.get('norm', R * H)), [B, T, H]);
  const logits = new Float64Array(R * V); // [R, V]
  const block = Math.max(1, Math.floor(HEAD_BLOCK_BYTES / (8 * H)));
  for (let v0 = 0; v0 < V; v0 += block) {
    const n = Math.min(block, V - v0);
    const part = mm.linear(fn, R, headName, n, H, v0, buf.get('head', R * block)); // [R, n]
    for (let r = 0; r < R; r++) logits.set(part.subarray(r * n, (r + 1) * n), r * V + v0);
  }
  return tap('logits', logits, [B, T, V]);
}
