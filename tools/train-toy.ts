// `npm run train-toy`: the command line of the toy induction model's training
// (src/teach/toy/train.ts), kept out of the library so that library code never imports the CLI.

import { pathToFileURL } from 'node:url';
import { initBackend } from '../src/backend.js';
import { UsageError, intFlag, parseArgs, str } from '../src/cli/args.js';
import { DEFAULT_TRAIN, TOY_DIR, type TrainOptions, registerGradients, trainToy } from '../src/teach/toy/train.js';

async function main(argv: string[]): Promise<number> {
  const a = parseArgs(argv, ['out', 'steps', 'seed', 'backend', 'batch', 'lr', 'warmup', 'clip']);
  const num = (name: string, dflt: number) => {
    const v = str(a, name);
    if (v === undefined) return dflt;
    if (!(Number(v) > 0)) throw new UsageError(`--${name}: expected a positive number, got "${v}"`);
    return Number(v);
  };
  const opts: TrainOptions = {
    steps: intFlag(a, 'steps', 1) ?? DEFAULT_TRAIN.steps,
    seed: intFlag(a, 'seed', 0) ?? DEFAULT_TRAIN.seed,
    batch: intFlag(a, 'batch', 1) ?? DEFAULT_TRAIN.batch,
    lr: num('lr', DEFAULT_TRAIN.lr),
    warmup: intFlag(a, 'warmup', 0) ?? DEFAULT_TRAIN.warmup,
    clip: num('clip', DEFAULT_TRAIN.clip),
  };
  await initBackend(str(a, 'backend') ?? 'wasm');
  await registerGradients();
  const out = str(a, 'out') ?? TOY_DIR;
  const r = trainToy(out, opts, (s) => console.error(s), ['npm run train-toy', ...(argv.length ? ['--', ...argv] : [])].join(' '));
  console.error(`trained ${opts.steps} steps in ${r.seconds.toFixed(0)} s; wrote ${out}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e: Error) => {
    if (e instanceof UsageError) {
      console.error(`train-toy: ${e.message}`);
      process.exit(2);
    }
    console.error(e.stack ?? String(e));
    process.exit(1);
  });
}
