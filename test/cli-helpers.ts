// Running the built CLI from tests, and the shape every bad-input run must have.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const HERE = path.dirname(fileURLToPath(import.meta.url)); // dist/test
export const ROOT = path.resolve(HERE, '..', '..');
export const CLI = path.resolve(HERE, '..', 'src', 'cli', 'cli.js');

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli/cli.js ...args` from the project root, PHI4_BACKEND and PHI4_DEBUG unset unless given. */
export function phi4(args: string[], env: Record<string, string> = {}): Run {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv.PHI4_BACKEND;
  delete childEnv.PHI4_DEBUG;
  Object.assign(childEnv, env);
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv, encoding: 'utf8', timeout: 90_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const show = (r: Run) => `exit ${r.status}\n--- stderr:\n${r.stderr}--- stdout:\n${r.stdout.slice(0, 3000)}`;

export const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');
export const STACK_LINE = /^\s+at\s.+/m;
/** The banner every command that starts a backend prints first on stderr. */
export const BANNER = /^phi4-ts \S+ · backend \S+ · tfjs \S+$/;

/**
 * A bad-input run: exit `status`, exactly one line on stderr (refusals come before the backend
 * banner; `afterBanner` allows the banner first, for failures only a backend can find), naming
 * everything in `names`, no stack trace.
 */
export function expectBadInput(r: Run, names: string[], status = 2, afterBanner = false): string {
  expect(r.status, show(r)).to.equal(status);
  expect(r.stdout, 'stack trace on stdout').not.to.match(STACK_LINE);
  expect(r.stderr, 'stack trace on stderr').not.to.match(STACK_LINE);
  const errLines = lines(r.stderr).filter((l) => !(afterBanner && BANNER.test(l)));
  expect(errLines, `stderr should be one error line${afterBanner ? ' besides the banner' : ''}:\n${r.stderr}`).to.have.length(1);
  const last = lines(r.stderr).at(-1)!;
  expect(last).to.equal(errLines[0]);
  expect(last).to.match(/^phi4: \S/);
  for (const n of names) expect(last, `error line should name ${n}`).to.include(n);
  return last;
}
