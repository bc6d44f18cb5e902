// `phi4 verify`: runs the golden cases and prints, block by block, how far each is from
// transformers (rel L2 against its float32 dump, and against the float64 one with its limit).

import { FORWARD_CASES, F32_TOLERANCE, type TapCheck, checkCase, modelDir } from './golden.js';
import { Phi3Model } from '../model/model.js';

const e = (x: number | undefined) => (x === undefined ? '-' : Number.isNaN(x) ? 'NaN' : x.toExponential(1));

/** Groups a case's taps by block: "embed/rope", "layer N", "head". */
function blocks(checks: TapCheck[]): Map<string, TapCheck[]> {
  const g = new Map<string, TapCheck[]>();
  for (const c of checks) {
    const m = /^layers\.(\d+)\./.exec(c.tap);
    const key = m ? `layer ${m[1]}` : c.tap === 'final_norm' || c.tap === 'logits' ? 'head' : 'embed/rope';
    if (!g.has(key)) g.set(key, []);
    g.get(key)!.push(c);
  }
  return g;
}

/** Prints one table per case; returns whether every tap of every case passed. */
export function verify(cases = FORWARD_CASES, log: (s: string) => void = console.log): boolean {
  let allOk = true;
  const models = new Map<string, Phi3Model>();
  try {
    for (const c of cases) {
      if (!models.has(c.model)) models.set(c.model, Phi3Model.load(modelDir(c.model)));
      const checks = checkCase(models.get(c.model)!, c.name);
      const bad = checks.filter((x) => !x.ok);
      allOk &&= bad.length === 0;
      log(`\n${c.name}: ${checks.length} taps, ${bad.length === 0 ? 'all within tolerance' : `${bad.length} OUT OF TOLERANCE`}`);
      log(`  ${'block'.padEnd(11)}${'taps'.padStart(5)}  ${'worst tap (vs f32)'.padEnd(28)}${'rel L2'.padStart(9)}${'max|d|'.padStart(9)}` +
        `   ${'vs f64'.padStart(8)}${'limit'.padStart(9)}   ok`);
      for (const [block, list] of blocks(checks)) {
        const worst = list.reduce((a, b) => (!(b.rel <= a.rel) ? b : a));
        const w64 = list.filter((x) => x.rel64 !== undefined).reduce<TapCheck | undefined>(
          (a, b) => (!a || b.rel64! / b.limit64! > a.rel64! / a.limit64! ? b : a), undefined);
        const ok = list.every((x) => x.ok);
        log(`  ${block.padEnd(11)}${String(list.length).padStart(5)}  ${worst.tap.padEnd(28)}${e(worst.rel).padStart(9)}${e(worst.maxAbs).padStart(9)}` +
          `   ${e(w64?.rel64).padStart(8)}${e(w64?.limit64).padStart(9)}   ${ok ? 'ok' : 'FAIL'}`);
        for (const x of list.filter((y) => !y.ok)) {
          log(`    FAIL ${x.tap}: ${x.problem ?? `rel ${e(x.rel)} (tol ${e(F32_TOLERANCE)}), vs f64 ${e(x.rel64)} (limit ${e(x.limit64)})`}`);
        }
      }
    }
  } finally {
    for (const m of models.values()) m.dispose();
  }
  log(`\n${allOk ? 'PASS' : 'FAIL'}: ${cases.length} golden cases, every tap against transformers 5.17 (rel L2 vs float32 <= ${e(F32_TOLERANCE)}; vs float64 <= 4x transformers' own float32 error, floor 1e-6)`);
  return allOk;
}
