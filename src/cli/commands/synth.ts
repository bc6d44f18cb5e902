import { UsageError, intFlag, parseArgs, str } from '../args.js';
import { ProgressBar, formatBytes } from '../../progress.js';
import { synthesize } from '../../checkpoint/synth.js';
import type { Command } from './common.js';

export const synthCommand: Command = {
  usage: `phi4 synth --config CONFIG.json --out DIR [--seed N] [--layers N]
      write a random bf16 checkpoint with the config's shapes in the published shard layout (and, with Phi-4-mini's vocabulary, its tokenizer files)`,
  async run(argv) {
    const p = parseArgs(argv, ['config', 'out', 'seed', 'layers']);
    if (p.positional.length > 0) throw new UsageError(`synth takes no positional argument (got "${p.positional[0]}")`);
    const config = str(p, 'config');
    const out = str(p, 'out');
    if (!config) throw new UsageError('synth needs --config CONFIG.json');
    if (!out) throw new UsageError('synth needs --out DIR');
    const seed = intFlag(p, 'seed', 0);
    const layers = intFlag(p, 'layers', 1);
    const t0 = performance.now();
    const r = synthesize(config, out, { seed, layers, progress: (total) => new ProgressBar('synth', total) });
    const secs = (performance.now() - t0) / 1000;
    console.error(`wrote ${out}: ${r.numLayers} layers, ${formatBytes(r.totalBytes)} of bf16 in ${r.files.filter((f) => f.endsWith('.safetensors')).length} shards (${secs.toFixed(1)} s)`);
    return 0;
  },
};
