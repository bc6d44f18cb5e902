// npm run fidelity -- <checkpoint> [--tokens 32] [--seed 1] [--backend wasm,cpu] [--emulate bf16,f16] [--emulate-only] [--json]
//
// How exact each forward pass is, tap by tap, against the float64 reference (src/oracle/reference/) on
// the same bf16 weights and random ids: the ideal float32 (the reference with float32 storage
// between operations: exact sums, one rounding per stored value), the tfjs model on each backend
// named (`--backend none` for the reference alone), with its ratio to the ideal float32, and the
// reference emulating a runtime that stores activations in bf16 or f16 (`--emulate`, from which
// phi4 compare's presets are derived, docs/compare.md). `--emulate-only --backend none` keeps the
// float64 run's taps as float32 (half the memory: enough against bf16 / f16 errors) for long inputs.
// docs/fidelity.md holds the full-size table.

import { UsageError, intFlag, parseArgs, str } from '../src/cli/args.js';
import { initBackend } from '../src/backend.js';
import { loadConfig } from '../src/model/config.js';
import { resolveCheckpoint } from '../src/checkpoint/hub.js';
import { Phi3Model } from '../src/model/model.js';
import { modelErrors, referenceErrors, referenceTaps } from '../src/oracle/reference/fidelity.js';
import { ROUNDINGS, type Rounding } from '../src/oracle/reference/rounding.js';
import { Rng } from '../src/checkpoint/synth.js';
import { tapNames } from '../layers/taps.js';

const now = () => performance.now() / 1000;

function list(text: string | undefined, dflt: string[], allowed: readonly string[], flag: string): string[] {
  const items = text === undefined ? dflt : text.split(',').filter((s) => s !== '' && s !== 'none');
  for (const i of items) if (!allowed.includes(i)) throw new UsageError(`${flag}: unknown "${i}" (choose from ${allowed.join(', ')})`);
  return items;
}

async function main(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['tokens', 'seed', 'backend', 'emulate'], ['json', 'emulate-only']);
  if (p.positional.length !== 1) throw new UsageError('fidelity needs one checkpoint');
  const dir = resolveCheckpoint(p.positional[0]);
  const config = loadConfig(dir);
  const tokens = intFlag(p, 'tokens', 1) ?? 32;
  const seed = intFlag(p, 'seed', 0) ?? 1;
  const backends = list(str(p, 'backend'), ['wasm', 'cpu'], ['wasm', 'cpu', 'tensorflow'], '--backend');
  const emulate = list(str(p, 'emulate'), [], ROUNDINGS.filter((r) => r !== 'none' && r !== 'f32'), '--emulate') as Rounding[];
  const json = p.flags.has('json');
  const log = (s: string) => { if (!json) console.error(s); };

  const rng = new Rng(seed, 'fidelity');
  const inputs = { inputIds: Int32Array.from({ length: tokens }, () => rng.u32() % config.vocabSize), batch: 1, seq: tokens };
  const seconds: Record<string, number> = {};
  let t0 = now();
  // Float64 copies where the ideal float32 and the backends (errors near float32's rounding) are measured.
  const keep = backends.length > 0 || !p.flags.has('emulate-only') ? 'f64' : 'f32';
  const exact = referenceTaps(dir, config, inputs, 'none', keep);
  seconds.float64 = now() - t0;
  log(`float64 reference: ${seconds.float64.toFixed(1)} s`);
  const columns = new Map<string, Map<string, number>>();
  for (const r of [...(keep === 'f64' ? ['f32' as Rounding] : []), ...emulate]) {
    t0 = now();
    columns.set(`ideal ${r}`, referenceErrors(dir, config, inputs, r, exact));
    seconds[`ideal ${r}`] = now() - t0;
    log(`reference with ${r} storage: ${seconds[`ideal ${r}`].toFixed(1)} s`);
  }
  for (const b of backends) {
    await initBackend(b);
    const model = Phi3Model.load(dir);
    try {
      t0 = now();
      columns.set(b, modelErrors(model, inputs, exact));
      seconds[b] = now() - t0;
      log(`${b}: ${seconds[b].toFixed(1)} s`);
    } finally {
      model.dispose();
    }
  }

  const ideal = columns.get('ideal f32') ?? new Map<string, number>();
  const names = tapNames(config.numLayers).filter((n) => exact.has(n));
  if (json) {
    const taps = names.map((name) => ({ name, ...Object.fromEntries([...columns].map(([c, m]) => [c, m.get(name) ?? null])) }));
    console.log(JSON.stringify({ checkpoint: dir, tokens, seed, seconds, columns: [...columns.keys()], taps }, null, 1));
    return;
  }
  const cols = [...columns.keys()];
  const fmt = (x: number | undefined) => (x === undefined ? '-' : x.toExponential(2));
  const cell = (c: string, name: string) => {
    const e = columns.get(c)!.get(name);
    const i = ideal.get(name) ?? 0;
    return backends.includes(c) && e !== undefined && i > 0 ? `${fmt(e)} ${(e / i).toFixed(1).padStart(5)}x` : fmt(e);
  };
  console.log(`rel L2 against the float64 reference, ${tokens} random ids (seed ${seed}); backends with their ratio to the ideal float32`);
  console.log(['tap'.padEnd(28), ...cols.map((c) => c.padEnd(backends.includes(c) ? 16 : 10))].join(' '));
  for (const name of names) console.log([name.padEnd(28), ...cols.map((c) => cell(c, name).padEnd(backends.includes(c) ? 16 : 10))].join(' '));
  // Per tap kind, the worst ratio over the layers.
  console.log('\nworst over layers, per tap kind:');
  const kinds = new Map<string, string[]>();
  for (const n of names) {
    const kind = n.replace(/^layers\.\d+\./, 'layers.N.');
    kinds.set(kind, [...(kinds.get(kind) ?? []), n]);
  }
  for (const [kind, ns] of kinds) {
    const worst = (c: string) => Math.max(...ns.map((n) => columns.get(c)!.get(n) ?? 0));
    const ratio = (c: string) => Math.max(...ns.map((n) => (columns.get(c)!.get(n) ?? 0) / (ideal.get(n) || Infinity)));
    console.log([kind.padEnd(28), ...cols.map((c) => (backends.includes(c) ? `${fmt(worst(c))} ${ratio(c).toFixed(1).padStart(5)}x` : fmt(worst(c))).padEnd(backends.includes(c) ? 16 : 10))].join(' '));
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`fidelity: ${err.message}`.split('\n')[0]);
  process.exit(['UsageError', 'ConfigError', 'WeightsError', 'InputError', 'BackendError', 'ReferenceInputError'].includes(err.name) ? 2 : 1);
});
