/// <reference types="long" preserve="true" />
// The library's whole API: `import { Phi3Model, tf, ... } from 'phi4-ts'`.
//
// `import 'phi4-ts'` loads ./esm.ts, which re-exports this module and first picks the tfjs backend
// the way the CLI does (src/backend.ts: $PHI4_BACKEND, else tensorflow when @tensorflow/tfjs-node
// loads, else wasm, else cpu), so the first `Phi3Model.load` runs without any set-up.
// `require('phi4-ts')` (Node's require of an ES module, which refuses a top-level await) loads
// this module itself: a CommonJS app awaits `ready()` before its first model call.
// `await initBackend('cpu')` switches later. tfjs-core is re-exported as `tf`, so an app uses the
// very copy the model runs on and never installs a second, mismatched one. Use its functional ops
// (`tf.sum(t)`): tfjs-core registers chained ops (`t.sum()`) only from ES modules that Node cannot load.
// The reference above: tfjs-core's declarations name the global `Long` of @types/long (a
// dependency of tfjs-core), which an app whose tsconfig sets `types: []` would otherwise lack.

import * as tf from '@tensorflow/tfjs-core';
export { Refusal, ConfigError, InputError, BackendError, HookError, ReferenceInputError, WeightsError, exitCodeOf } from './errors.js';

export { tf };

// The model, its inputs and its hooks (docs/hooks.md)
export {
  Phi3Model, SCORE_BUDGET_BYTES,
  type ForwardInputs, type ForwardOptions, type ForwardResult, type RunWithCacheOptions, type TapSink,
} from './model/model.js';
export { checkTapNames, type Hook, type Hooks } from './model/hooks.js';
export {
  tapNames, tapInfo, isTapName, MODEL_TAPS, LAYER_TAPS, HEAD_TAPS,
  type TapInfo, type TapName, type ModelTapName, type LayerTapName, type HeadTapName,
} from '../layers/taps.js';
export type { SelectionSpec, Selection } from './capture/selection.js';
export type { KvCache } from '../layers/attention.js';

// Configuration and weights
export { parseConfig, loadConfig, configHash, type Phi3Config, type RopeConfig } from './model/config.js';
export { loadWeights, weightMode, WEIGHT_MODES, type WeightMode, type ModelWeights, type LoadWeightsOptions } from './model/weights.js';
export { Checkpoint, SafetensorsFile, writeSafetensors, type TensorInfo, type DType } from '../weights/index.js';
export { resolveCheckpoint, hubCacheDir } from './checkpoint/hub.js';
export { bundledModel, bundledNames } from './checkpoint/bundled.js';
export { parseIds, readInputs } from './checkpoint/inputs.js';

// The float64 reference and fidelity against it (docs/fidelity.md)
export { referenceForward, referenceBytes, type ReferenceOptions, type ReferenceTap } from './oracle/reference/forward.js';
export { ROUNDINGS, roundInPlace, type Rounding } from './oracle/reference/rounding.js';
export { referenceTaps, referenceErrors, modelErrors, type TapValues } from './oracle/reference/fidelity.js';

// Dump, compare, verify
export { writeDump, writeReferenceDump, type DumpInfo } from './oracle/dump.js';
export { compare } from './compare/compare.js';
export { compareFiles, fileEntries, type FileComparison } from './compare/files.js';
export {
  compareTensors, tensorEntries,
  type Comparison, type InMemoryTensor, type TensorCompareOptions, type TensorData, type TensorInput, type TensorLike, type TensorMap,
} from './compare/tensors.js';
export { BUDGET_K, BUDGET_FLOOR, BUDGET_PRESETS, type BudgetRounding, budgetFor, emulatedBudget } from './compare/budget.js';
export { formatReport } from './compare/render.js';
export { PRESETS, type BudgetReport, type CompareOptions, type CompareReport, type TapResult, type Preset } from './compare/report.js';
export type { Entries } from './compare/entries.js';
export {
  compareGenerations, addPolicyFit, formatGeneration, readGeneration, isGeneration,
  type Generation, type GenerationReport, type GenerationStep,
} from './compare/generation.js';
export { fitPolicies, chunkCandidates, type PolicyFit, type PolicyMatch } from './generate/rope-policy.js';
export { verify } from './oracle/verify.js';
export { FORWARD_CASES, F32_TOLERANCE, type GoldenCase } from './oracle/golden.js';

// Generation, sampling, tokenizer and chat template
export {
  generate, checkpointEosIds, checkLength, checkPolicy, writeGeneration, lastLogits, ROPE_POLICIES,
  type GenerateOptions, type GenerateResult, type RopePolicy,
} from './generate/generate.js';
export { SplitMix64, argmax, chooseToken, type SamplingOptions } from './generate/sampling.js';
export {
  Phi4Tokenizer, loadTokenizer, TextStreamer,
  type ChatMessage, type ChatOptions, type ToolCall,
} from './text/tokenizer.js';

// Memory calculator (docs/memory.md)
export {
  memoryReport, formatMemoryReport, memoryJson, resolveMemorySource, modelTensors, weightBytes, kvCacheBytes,
  SCHEMES, type MemoryReport, type MemoryOptions, type SchemeId, type KvDtype,
} from './model/memory.js';

// Backend selection
export { initBackend, ready, tfjsVersion, BACKENDS, type BackendName } from './backend.js';
export { VERSION } from './version.js';
