// How a real bf16 runtime's error compares with the bf16 emulation's own, tap by tap: the
// measurement behind compare --budget's K (src/compare/budget.ts, docs/compare.md "budget").
//   node dist/tools/budget-ratio.js
// For each committed transformers CUDA bf16 dump (golden/dumps/phi4-mini-tiny.{short,long}.cuda-bf16)
// on the ids it records: its error against our float64 reference on golden/models/phi4-mini-tiny,
// the float64 reference with bf16 (and f16) storage against the same, and the ratio.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../weights/index.js';
import { readInputs } from '../src/checkpoint/inputs.js';
import { loadConfig } from '../src/model/config.js';
import { referenceTaps } from '../src/oracle/reference/fidelity.js';
import { compare } from '../src/compare/compare.js';
import { fileEntries } from '../src/compare/files.js';
import { tapEntries } from '../src/compare/budget.js';
import { fmt, lpad, pad } from '../src/compare/format.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODEL = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');

const err = (r: ReturnType<typeof compare>) => new Map(r.taps.map((t) => [t.name, Math.max(t.relL2, t.positionRms ?? 0)]));

let worst = 0;
for (const c of ['short', 'long']) {
  const file = path.join(ROOT, 'golden', 'dumps', `phi4-mini-tiny.${c}.cuda-bf16.safetensors`);
  const inputs = readInputs(file);
  const cfg = loadConfig(MODEL);
  const shapes = new Map<string, number[]>();
  const exact = tapEntries(referenceTaps(MODEL, cfg, inputs, 'none', 'f64', shapes), shapes, inputs);
  const bf16 = err(compare(exact, tapEntries(referenceTaps(MODEL, cfg, inputs, 'bf16'), shapes, inputs), { tolerance: Infinity }));
  const f16 = err(compare(exact, tapEntries(referenceTaps(MODEL, cfg, inputs, 'f16'), shapes, inputs), { tolerance: Infinity }));
  const f = SafetensorsFile.open(file);
  let cuda: Map<string, number>;
  try {
    cuda = err(compare(exact, fileEntries(f), { tolerance: Infinity }));
  } finally {
    f.close();
  }
  console.log(`${c} (${inputs.batch} x ${inputs.seq} ids)`);
  console.log(`  ${pad('tap', 16)}${lpad('cuda bf16', 11)}${lpad('emul bf16', 11)}${lpad('ratio', 8)}${lpad('emul f16', 11)}`);
  for (const [name, e] of cuda) {
    const b = bf16.get(name)!;
    const ratio = b > 0 ? e / b : NaN;
    if (b > 0) worst = Math.max(worst, ratio);
    console.log(`  ${pad(name, 16)}${lpad(fmt(e), 11)}${lpad(fmt(b), 11)}${lpad(Number.isFinite(ratio) ? ratio.toFixed(2) : '-', 8)}${lpad(fmt(f16.get(name)!), 11)}`);
  }
}
console.log(`worst ratio (taps whose emulation error is not 0): ${worst.toFixed(2)}`);
