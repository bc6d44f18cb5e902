// What every command shares: the backend banner and the --out precheck.

import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../args.js';
import { type BackendName, initBackend, tfjsVersion } from '../../backend.js';
import { VERSION } from '../../version.js';
import { cleanStaleTemps, startReaper } from '../../safety/outputs.js';

/** A subcommand: its usage lines and its body, which returns the exit code. */
export interface Command {
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** Picks the backend and names it, with the versions, on stderr's first line. */
export async function start(backend: string | undefined): Promise<BackendName> {
  const name = await initBackend(backend);
  console.error(`phi4-ts ${VERSION} · backend ${name} · tfjs ${tfjsVersion()}`);
  return name;
}

/**
 * Fails before any work when an output that may be replaced (`--plot`, `--html`) cannot be written:
 * no directory for it, or a directory in its place. Then, as for every writing command, removes
 * stale temporary files beside it and starts the reaper for this run's (src/safety/outputs.ts).
 */
export function checkOutPath(out: string, flag = '--out'): void {
  const dir = dirname(resolve(out));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${flag}: cannot write ${out}: directory ${dir} does not exist`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`${flag}: ${out} is a directory`);
  cleanStaleTemps(dir);
  startReaper([dir]);
}
