// What a command checks before it starts a backend (and prints the banner): the config, every
// shard header against it, the inputs against the config, and the memory a dump of these inputs
// will take. A refusal is then one line on stderr, not the banner and then the error.

import { totalmem } from 'node:os';
import { Checkpoint } from '../../weights/index.js';
import { type Phi3Config, loadConfig } from '../model/config.js';
import { formatMemory } from '../progress.js';
import { type ForwardInputs, checkInputs } from '../model/model.js';
import { checkTensors } from '../model/weights.js';
import { GgufCheckpoint, isGgufPath } from '../checkpoint/gguf/checkpoint.js';
import { InputError } from '../errors.js';

/** Reads the config and validates every shard header (or the GGUF file) and tensor shape against it; reads no weights. */
export function precheckCheckpoint(dir: string): Phi3Config {
  const config = loadConfig(dir);
  const ckpt = isGgufPath(dir) ? new GgufCheckpoint(dir) : Checkpoint.open(dir);
  try {
    checkTensors(ckpt, config);
  } finally {
    ckpt.close();
  }
  return config;
}

/**
 * float32 elements of every tap of one forward pass over [B, T] tokens (no cache, so S = T), as
 * the tap table in README.md lays them out.
 */
export function tapElements(cfg: Phi3Config, B: number, T: number): number {
  const { hiddenSize: H, intermediateSize: I, numHeads: nh, numKvHeads: nkv, headDim: d, vocabSize: V } = cfg;
  const r = cfg.rope.rotaryDim;
  const perLayer =
    6 * H + //              input_norm, o_proj, post_attn_residual, post_attn_norm, mlp_out, out
    (nh + 2 * nkv) * d + // qkv
    nh * d + nkv * d + //   q_rot, k_rot
    nh * T + //             attn_probs (T keys per query)
    nh * d + //             attn_out
    2 * I + I; //           gate_up, mlp_act
  return B * T * (H + 2 * r + cfg.numLayers * perLayer + H + V); // embed, rope.cos/sin, layers, final_norm, logits
}

/**
 * Peak bytes `phi4 dump` needs for the activations: every tap is held as a tensor and, while the
 * file is written, once more as a host array (the weights come on top).
 */
export function dumpBytes(cfg: Phi3Config, B: number, T: number): number {
  return 2 * 4 * tapElements(cfg, B, T);
}

/** The default budget for a dump's activations: half the machine's memory, in whole GiB. */
export function defaultMaxMemoryGiB(): number {
  return Math.max(1, Math.floor(totalmem() / 2 / 2 ** 30));
}

/** Refuses inputs whose dump would pass `maxGiB`, with the estimate and the flag that changes the limit. */
export function checkDumpMemory(cfg: Phi3Config, batch: number, seq: number, maxGiB: number, source: string): void {
  const need = dumpBytes(cfg, batch, seq);
  if (need > maxGiB * 2 ** 30) {
    throw new InputError(`${source}: a [${batch}, ${seq}] batch needs about ${formatMemory(need)} for its taps, ` +
      `more than the ${maxGiB} GiB limit; use fewer tokens, or raise the limit with --max-memory GIB`);
  }
}

/** Inputs checked against the config (ids in the vocabulary, positions in range) before the backend starts. */
export function precheckInputs(cfg: Phi3Config, inputs: ForwardInputs): void {
  checkInputs(cfg, inputs);
}
