#!/usr/bin/env node
// The `phi4` command line: parses arguments, picks the backend, calls into src/. Errors are
// one line on stderr and a non-zero exit: 2 for bad input, 1 for a failed check.

import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError, parseArgs, str } from './args.js';
import { initBackend, tfjsVersion } from './backend.js';
import { writeDump } from './dump.js';
import { FORWARD_CASES } from './golden.js';
import { parseIds, readInputs } from './inputs.js';
import { Phi3Model } from './model.js';
import { VERSION } from './version.js';
import { verify } from './verify.js';

const USAGE = `phi4-ts ${VERSION}: a reference implementation of Phi-4-mini (Phi3ForCausalLM) in TypeScript

usage:
  phi4 verify [--case NAME] [--backend NAME]
      run the bundled golden cases and print every block's agreement with transformers
  phi4 dump <checkpoint-dir> (--ids 5,17,42 | --inputs FILE.safetensors) --out FILE.safetensors [--backend NAME]
      one forward pass; write every tap (float32) and the inputs

backends: tensorflow (when @tensorflow/tfjs-node loads), wasm (default), cpu; or set PHI4_BACKEND`;

async function start(backend: string | undefined): Promise<string> {
  const name = await initBackend(backend);
  console.error(`phi4-ts ${VERSION} · backend ${name} · tfjs ${tfjsVersion()}`);
  return name;
}

/** Fails before any work when `--out` cannot be written: no directory for it, or a directory in its place. */
function checkOutPath(out: string): void {
  const dir = dirname(resolve(out));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--out: cannot write ${out}: directory ${dir} does not exist`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`--out: ${out} is a directory`);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === 'verify') {
    const p = parseArgs(rest, ['case', 'backend']);
    if (p.positional.length > 0) throw new UsageError(`verify takes no positional argument (got "${p.positional[0]}")`);
    const only = str(p, 'case');
    const cases = only ? FORWARD_CASES.filter((c) => c.name === only) : FORWARD_CASES;
    if (cases.length === 0) throw new UsageError(`--case: unknown case "${only}" (one of ${FORWARD_CASES.map((c) => c.name).join(', ')})`);
    await start(str(p, 'backend'));
    return verify(cases) ? 0 : 1;
  }
  if (cmd === 'dump') {
    const p = parseArgs(rest, ['ids', 'inputs', 'out', 'backend']);
    if (p.positional.length !== 1) throw new UsageError('dump needs one checkpoint directory');
    const out = str(p, 'out');
    if (!out) throw new UsageError('dump needs --out FILE.safetensors');
    const ids = str(p, 'ids');
    const file = str(p, 'inputs');
    if ((ids === undefined) === (file === undefined)) throw new UsageError('dump needs exactly one of --ids and --inputs');
    checkOutPath(out);
    const inputs = ids !== undefined ? parseIds(ids) : readInputs(file!);
    const backend = await start(str(p, 'backend'));
    const model = Phi3Model.load(p.positional[0]);
    try {
      const n = writeDump(model, inputs, out, { backend, tfjs: tfjsVersion() });
      console.error(`wrote ${out}: ${n} tensors (${inputs.batch} x ${inputs.seq} tokens)`);
    } finally {
      model.dispose();
    }
    return 0;
  }
  throw new UsageError(`unknown command "${cmd}" (try phi4 --help)`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    const known = ['UsageError', 'ConfigError', 'WeightsError', 'InputError', 'BackendError'].includes(err.name);
    console.error(`phi4: ${known ? err.message : err.stack ?? err}`.split('\n')[0]);
    if (!known && process.env.PHI4_DEBUG) console.error(err.stack);
    process.exit(known ? 2 : 1);
  },
);
