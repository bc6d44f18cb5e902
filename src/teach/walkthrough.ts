// The walkthrough as data: one prompt followed through the model, step by step, each step with
// its tensor's shape for this checkpoint and for the real Phi-4-mini, small statistics of the
// values this checkpoint produced, and the source lines that compute it. `phi4 walkthrough`
// prints it (formatWalkthrough) and tools/gen-docs.ts writes docs/walkthrough.md from it.
// The steps themselves are computed by src/teach/steps.ts (no Node module, so the live page runs
// it too); this file adds what needs Node: the default ids and prompt, the real config, and the
// source lines each step's references resolve to.

import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Phi3Config, loadConfig } from '../model/config.js';
import { GOLDEN_DIR, dumpPath, modelDir } from '../oracle/golden.js';
import { readInputs } from '../checkpoint/inputs.js';
import type { ForwardInputs, Phi3Model } from '../model/model.js';
import { loadTokenizer } from '../text/tokenizer.js';
import { InputError } from '../errors.js';
import { type CodeRef, type Walkthrough, num, shapeText, statsText, walkSteps } from './steps.js';

export {
  type CodeRef, type Stats, type Step, type Walkthrough, STEP_IDS, checkWalkthroughLayer, num, phi4Shaped, shapeText, stats, statsText, stepCode, walkSteps,
} from './steps.js';

/** The repository root (this file runs from dist/src). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DEFAULT_WALKTHROUGH_CHECKPOINT = modelDir('phi4-mini-tiny');
export const REAL_CONFIG_PATH = join(GOLDEN_DIR, 'configs', 'phi-4-mini-instruct.json');

/** The ids of the golden case phi4-mini-tiny.short, so that every number can be set beside transformers' dump. */
export function defaultIds(vocabSize = Infinity): ForwardInputs {
  const inputs = readInputs(dumpPath('phi4-mini-tiny.short'));
  const top = Math.max(...inputs.inputIds);
  if (top >= vocabSize) throw new InputError(`walkthrough: the default ids reach ${top}, beyond this checkpoint's vocabulary of ${vocabSize}; pass --ids`);
  return inputs;
}

/** `prompt` as ids through the checkpoint's own tokenizer.json (src/text/tokenizer.ts); one row. */
export function promptToInputs(checkpoint: string, prompt: string): ForwardInputs {
  const tokenizer = loadTokenizer(checkpoint);
  if (!tokenizer) throw new InputError(`--prompt: ${checkpoint} has no tokenizer.json`);
  const ids = tokenizer.encode(prompt);
  if (ids.length === 0) throw new InputError('--prompt: the prompt encodes to no tokens');
  return { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length };
}

/** Runs the model on `inputs` and builds every step for decoder layer `layer` (src/teach/steps.ts). */
export function runWalkthrough(model: Phi3Model, inputs: ForwardInputs, layer: number, real: Phi3Config): Walkthrough {
  return walkSteps(model, inputs, layer, real, displayPath(model.source));
}

// ---- where each step is computed (src/teach/steps.ts holds the references) ----

export interface CodeLines {
  file: string;
  start: number;
  end: number;
}

/** Finds a reference's lines (1-based) in the source tree under `root`; throws naming what is missing. */
export function locate(ref: CodeRef, root = PROJECT_ROOT): CodeLines {
  const path = join(root, ref.file);
  if (!existsSync(path)) throw new Error(`${ref.file}: not found (walkthrough code reference)`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes(ref.from));
  if (start < 0) throw new Error(`${ref.file}: no line contains ${JSON.stringify(ref.from)} (walkthrough code reference)`);
  if (lines.findIndex((l, i) => i > start && l.includes(ref.from)) >= 0 && ref.to === undefined) {
    throw new Error(`${ref.file}: ${JSON.stringify(ref.from)} is on more than one line; make the reference unique`);
  }
  let end = start;
  if (ref.to !== undefined) {
    end = lines.findIndex((l, i) => i >= start && l.includes(ref.to!));
    if (end < 0) throw new Error(`${ref.file}: no line after ${start + 1} contains ${JSON.stringify(ref.to)} (walkthrough code reference)`);
  }
  return { file: ref.file, start: start + 1, end: end + 1 };
}

/** A path inside the project as a relative one (so that output does not depend on the clone's location). */
export function displayPath(p: string): string {
  const rel = relative(PROJECT_ROOT, p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p;
}

export function loadRealConfig(): Phi3Config {
  return loadConfig(REAL_CONFIG_PATH);
}

// ---- text ----

export function codeText(ref: CodeRef, root = PROJECT_ROOT): string {
  try {
    const l = locate(ref, root);
    return l.start === l.end ? `${l.file}:${l.start}` : `${l.file}:${l.start}-${l.end}`;
  } catch {
    return ref.file;
  }
}

/** What `phi4 walkthrough` prints. */
export function formatWalkthrough(w: Walkthrough, root = PROJECT_ROOT): string {
  const out: string[] = [];
  const c = w.config;
  out.push(`checkpoint ${w.checkpoint}: hidden ${c.hiddenSize}, ${c.numLayers} layers, ${c.numHeads}/${c.numKvHeads} heads of ${c.headDim}, rotary ${c.rope.rotaryDim}, intermediate ${c.intermediateSize}, vocab ${c.vocabSize}`);
  out.push(`input_ids (${w.inputIds.length}): ${w.inputIds.join(' ')}`);
  out.push(w.phi4Shaped
    ? `layer ${w.layer} of ${c.numLayers}; shapes: this checkpoint | Phi-4-mini (${w.real.hiddenSize} hidden, same ${w.inputIds.length} tokens)`
    : `layer ${w.layer} of ${c.numLayers}; shapes of this checkpoint (its block is not Phi-4-mini's, so no Phi-4-mini column)`);
  w.steps.forEach((s, i) => {
    out.push('');
    out.push(`${String(i + 1).padStart(2)}. ${s.tap ?? s.id}: ${s.title}    ${s.rule}`);
    out.push(`    ${s.layout}  ${shapeText(s.shape)}${w.phi4Shaped ? ` | ${shapeText(s.realShape)}` : ''}`);
    if (s.stats) out.push(`    ${statsText(s.stats)}`);
    if (s.note) out.push(`    ${s.note}`);
    out.push(`    ${s.code.map((r) => codeText(r, root)).join(', ')}`);
  });
  out.push('');
  out.push(`top 5 next tokens (softmax p): ${w.top.map((t) => `${t.id} (${num(t.p)})`).join(', ')}`);
  return out.join('\n');
}
