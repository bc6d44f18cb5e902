// node dist/bench/reference-speed.js <checkpoint> [--tokens 512] [--threads N] [--no-numpy]
//                                    [--rounding none|f32|bf16|f16] [--out DUMP] [--json]
//
// The float64 reference (src/oracle/reference/) timed against its anchor in the same run (issue 22,
// item 4): bench/numpy-forward.py, an independent numpy float64 forward over the same checkpoint and
// the same ids ((i * 7919 + 11) % vocab, i < --tokens), run first; then the reference, in this
// process, with --threads threads (default os.availableParallelism(); --out always uses the
// default, as `phi4 dump` does). With --out it streams the reference's full dump (every tap,
// F64, all rows) as `phi4 dump --precision float64 --taps '*'` does, and the time includes the
// writing; --rounding as in `phi4 dump`. Without python3 and numpy the anchor is reported as missing, not guessed.
// Prints the machine (cores, load average before and after), both times, their ratio (the issue
// asks for at most 2x) and the reference's peak RSS.

import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { UsageError, intFlag, parseArgs, str } from '../src/cli/args.js';
import { resolveCheckpoint } from '../src/checkpoint/hub.js';
import { loadConfig } from '../src/model/config.js';
import { resolveSelection } from '../src/capture/selection.js';
import { writeSelectedReferenceDump } from '../src/oracle/dump.js';
import { ROUNDINGS, type Rounding } from '../src/oracle/reference/rounding.js';
import { referenceForward } from '../src/oracle/reference/forward.js';
import { Checkpoint } from '../weights/index.js';
import { type NumpyAnchor, numpyAnchor } from './numpy-anchor.js';

const now = () => performance.now() / 1000;

function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}

function main(argv: string[]): void {
  const p = parseArgs(argv, ['tokens', 'threads', 'out', 'rounding'], ['no-numpy', 'json']);
  if (p.positional.length !== 1) throw new UsageError('reference-speed needs one checkpoint directory');
  const tokens = intFlag(p, 'tokens', 1) ?? 512;
  const threads = intFlag(p, 'threads', 1) ?? availableParallelism();
  const out = str(p, 'out');
  const rounding = (str(p, 'rounding') ?? 'none') as Rounding;
  if (!ROUNDINGS.includes(rounding)) throw new UsageError(`--rounding: "${rounding}" is not one of ${ROUNDINGS.join(', ')}`);
  const dir = resolveCheckpoint(p.positional[0]!);
  const config = loadConfig(dir);
  if (tokens > config.maxPositions) throw new UsageError(`--tokens: ${tokens} is past max_position_embeddings = ${config.maxPositions}`);
  Checkpoint.open(dir).close();
  const ids = Int32Array.from({ length: tokens }, (_, i) => (i * 7919 + 11) % config.vocabSize);
  const inputs = { inputIds: ids, batch: 1, seq: tokens };

  const loadBefore = loadavg();
  const numpy: NumpyAnchor = p.flags.has('no-numpy') ? { missing: '--no-numpy' } : numpyAnchor(dir, tokens);
  const t0 = now();
  if (out) { // every tap, streamed to the file as it is computed
    const sel = resolveSelection({ taps: '*' }, config.numLayers, tokens);
    writeSelectedReferenceDump(dir, config, inputs, sel, out, rounding, 'none (float64 reference)');
  } else {
    const ckpt = Checkpoint.open(dir);
    try {
      referenceForward(ckpt, config, inputs, { threads, rounding });
    } finally {
      ckpt.close();
    }
  }
  const seconds = now() - t0;
  const numpyS = typeof numpy.seconds === 'number' ? numpy.seconds : undefined;
  const result = {
    checkpoint: dir,
    layers: config.numLayers,
    tokens,
    machine: { cores: availableParallelism(), load_average_before: loadBefore[0], load_average_after: loadavg()[0] },
    reference: { seconds, tokens_per_s: tokens / seconds, threads, rounding, wrote_dump: out ?? null, peak_rss_bytes: peakRss() },
    numpy,
    reference_over_numpy: numpyS === undefined ? null : seconds / numpyS,
  };
  if (p.flags.has('json')) {
    console.log(JSON.stringify(result));
    return;
  }
  const anchor = numpyS === undefined ? `numpy anchor missing (${String(numpy.missing)})` : `numpy float64 ${numpyS.toFixed(1)} s`;
  console.log([
    `${dir}: ${config.numLayers} layers, ${tokens} tokens, ${result.machine.cores} cores (load ${loadBefore[0].toFixed(1)} before, ${result.machine.load_average_after.toFixed(1)} after)`,
    `reference    ${seconds.toFixed(1)} s = ${(tokens / seconds).toFixed(2)} tokens/s on ${threads} thread(s)${out ? ', dump written' : ''}; peak RSS ${(result.reference.peak_rss_bytes / 1e9).toFixed(2)} GB`,
    `anchor       ${anchor}${result.reference_over_numpy === null ? '' : `: reference / numpy = ${result.reference_over_numpy.toFixed(2)}x (issue 22 asks <= 2x)`}`,
  ].join('\n'));
}

try {
  main(process.argv.slice(2));
} catch (err) {
  const e = err as Error;
  const known = ['UsageError', 'WeightsError', 'ConfigError', 'ReferenceInputError', 'InputError'].includes(e.name);
  console.error(`reference-speed: ${known ? e.message.split('\n')[0] : e.stack}`);
  process.exit(known ? 2 : 1);
}
