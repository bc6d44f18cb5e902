// Taps inside decode steps: two `phi4 generate --out ... --taps` files (src/generate/generate.ts
// records each step's last row of the selected taps, with its position and cache length) compared
// step by step and tap by tap. The verdict names the first step and the first tap that diverge;
// whether the prefill (step 0, the whole prompt in one pass) agrees, which says the candidate's
// math is right and its cache or its positions are not; and, where layer qkv and q_rot are
// recorded, the position each step's token was rotated at (./diagnose/rope-fit.ts), which names
// offsets that jump after the first step or every decoded token at position 0.

import type { SafetensorsFile } from '../../weights/index.js';
import type { RopeConfig } from '../../layers/rotary.js';
import { usesLongFactors } from '../../layers/rotary.js';
import { relL2 } from '../oracle/metrics.js';
import { fitRotary } from './diagnose/rope-fit.js';
import { describePositions } from './diagnose/rope-fingerprint.js';
import { forwardOrder } from './compare.js';
import { fmt } from './format.js';
import { InputError } from '../errors.js';

export interface StepTaps {
  names: string[];
  steps: { step: number; position: number; cache: number }[];
  /** steps.S.NAME, read when the file was opened. */
  data: Map<string, { shape: number[]; data: Float32Array }>;
}

export interface StepTapsReport {
  /** Per compared step: the cache lengths, the first tap over tolerance, the worst tap. */
  steps: { step: number; position: number; cacheReference: number; cacheCandidate: number; firstTap: string | null; worst: { name: string; relL2: number } | null; findings: string[] }[];
  firstStep: number | null;
  firstTap: string | null;
  /** Whether step 0 (the prefill of the prompt) agrees on every recorded tap. */
  prefillAgrees: boolean | null;
  /** The position each of the candidate's steps was rotated at, fitted from its qkv and q_rot (null: not fitted). */
  fittedPositions?: (number | null)[];
  text: string;
}

/** The step taps a generate file records, or undefined when it records none. */
export function readStepTaps(path: string, f: SafetensorsFile): StepTaps | undefined {
  const meta = f.metadata.step_taps;
  if (!meta) return undefined;
  let parsed: { names: string[]; steps: { step: number; position: number; cache: number }[] };
  try {
    parsed = JSON.parse(meta);
    if (!Array.isArray(parsed.names) || !Array.isArray(parsed.steps)) throw new Error('names and steps');
  } catch (e) {
    throw new InputError(`${path}: metadata step_taps is not {names, steps} JSON (${(e as Error).message})`);
  }
  const data = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of f.tensors()) if (t.name.startsWith('steps.')) data.set(t.name, { shape: t.shape, data: f.readFloat32(t.name) });
  return { names: parsed.names, steps: parsed.steps, data };
}

/** The two runs' step taps over their first `steps` steps (those computed on the same tokens). */
export function compareStepTaps(ref: StepTaps, cand: StepTaps, steps: number, tol: number, rope?: RopeConfig): StepTapsReport {
  const names = forwardOrder(ref.names.filter((n) => cand.names.includes(n)));
  const out: StepTapsReport = { steps: [], firstStep: null, firstTap: null, prefillAgrees: null, text: '' };
  for (let s = 0; s < steps; s++) {
    const rs = ref.steps.find((x) => x.step === s);
    const cs = cand.steps.find((x) => x.step === s);
    if (!rs || !cs) break;
    let first: string | null = null;
    let worst: { name: string; relL2: number } | null = null;
    const findings: string[] = [];
    for (const n of names) {
      const a = ref.data.get(`steps.${s}.${n}`);
      const b = cand.data.get(`steps.${s}.${n}`);
      if (!a || !b) continue;
      if (a.shape.join(',') !== b.shape.join(',')) {
        findings.push(`${n} [${a.shape}] vs [${b.shape}]`);
        first ??= n;
        continue;
      }
      const e = relL2(b.data, a.data);
      if (!worst || !(e <= worst.relL2)) worst = { name: n, relL2: e };
      if (!(e <= tol)) first ??= n;
    }
    out.steps.push({ step: s, position: rs.position, cacheReference: rs.cache, cacheCandidate: cs.cache, firstTap: first, worst, findings });
    if (first !== null && out.firstStep === null) {
      out.firstStep = s;
      out.firstTap = first;
    }
  }
  if (out.steps.length) out.prefillAgrees = out.steps[0].firstTap === null;
  const parts: string[] = [];
  if (out.firstStep === null) {
    parts.push(`step taps: all ${names.length} recorded taps agree at every one of ${out.steps.length} steps`);
  } else {
    const st = out.steps[out.firstStep];
    const e = st.worst && st.worst.name === out.firstTap ? ` (rel L2 ${fmt(st.worst.relL2)})` : '';
    parts.push(`step taps: the first divergence is step ${st.step} (position ${st.position}) at ${out.firstTap}${e}${st.findings.length ? `; shapes differ: ${st.findings.slice(0, 2).join(', ')}` : ''}`);
    if (st.cacheReference !== st.cacheCandidate) parts.push(`the candidate's cache held ${st.cacheCandidate} positions at that step, the reference's ${st.cacheReference}`);
    if (out.prefillAgrees && out.firstStep > 0) parts.push(`step 0, the prefill of the same prompt, agrees on every tap: the candidate's math is right, its cache or its positions are not`);
  }
  // the rotary fit over the steps' rows: the position each decoded token was rotated at
  const layer = rope ? [...new Set(names.map((n) => /^layers\.(\d+)\.q_rot$/.exec(n)?.[1]).filter((x) => x !== undefined))].find((l) => names.includes(`layers.${l}.qkv`)) : undefined;
  if (rope && layer !== undefined && out.steps.length > 0) {
    const N = out.steps.length;
    const rows = (name: string) => out.steps.map((st) => cand.data.get(`steps.${st.step}.${name}`)!);
    const qkv = rows(`layers.${layer}.qkv`);
    const q = rows(`layers.${layer}.q_rot`);
    if (qkv.every((x) => x && x.shape.length === 3) && q.every((x) => x && x.shape.length === 4)) {
      const W = qkv[0].shape[2];
      const [, nh, , d] = q[0].shape;
      const qkvAll = new Float32Array(N * W);
      qkv.forEach((x, i) => qkvAll.set(x.data, i * W));
      const qAll = new Float32Array(nh * N * d); // [1, nh, N, d]
      q.forEach((x, i) => { for (let h = 0; h < nh; h++) qAll.set(x.data.subarray(h * d, (h + 1) * d), (h * N + i) * d); });
      const want = out.steps.map((st) => st.position);
      const set = usesLongFactors(rope, want[want.length - 1]) ? 'long' : 'short';
      const fit = fitRotary(rope, { shape: [1, N, W], data: qkvAll }, { shape: [1, nh, N, d], data: qAll }, rope.type === 'longrope' ? set : 'none');
      if (fit && fit.relL2 <= 1e-3) {
        out.fittedPositions = fit.positions;
        const pos = describePositions(fit.positions, want, 1, N);
        if (pos) parts.push(`rotary fit over the steps (layer ${layer}): ${pos.replace(/token/g, 'step')}`);
      }
    }
  }
  out.text = parts.join('; ');
  return out;
}
