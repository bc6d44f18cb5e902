// Output files: never one of the inputs, never silently over an existing file, and no temporary
// file left behind by a killed run.
//
// Writers put a temporary file beside the target, named `<target>.tmp-<pid>-<12 hex>` whatever the
// extension (tempPathFor; weights/writer.ts uses the same name), and rename it over the target when
// complete. A run that is killed
// (SIGINT, SIGTERM, even SIGKILL) cannot remove its own temporary file while its JavaScript is
// busy, so each writing command starts a small detached reaper process that waits for it to
// end and then deletes any temporary file of its pid in the output directory. A run also removes,
// with a warning, temporary files in its output directory whose process is no longer running.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { SafetensorsWriter } from '../../weights/index.js';

/**
 * A temporary file of this project's writers, whatever the target's extension:
 * `<target>.tmp-<pid>-<12 hex>` (tempPathFor here, and weights/writer.ts); nothing else is touched.
 */
export const TEMP_NAME = /\.tmp-(\d+)-[0-9a-f]{12}$/;

/** The temporary name for `target` in this process: `<target>.tmp-<pid>-<12 hex>` (matches TEMP_NAME). */
export function tempPathFor(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * For the kill tests only: with PHI4_TEST_HOLD_TEMP set, a writer stops (synchronously, as a busy
 * run would) for that many seconds once its temporary file is complete and before the rename, so
 * that a test can find the temporary file and kill the real command at that point.
 */
export function holdForTest(): void {
  const s = Number(process.env.PHI4_TEST_HOLD_TEMP);
  if (s > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, s * 1000);
}
if (process.env.PHI4_TEST_HOLD_TEMP) SafetensorsWriter.beforeRename = holdForTest;

/** Writes `data` to `target` atomically: a temporary file beside it (tempPathFor), fsync, rename. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmp = tempPathFor(target);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    holdForTest();
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Whether process `pid` exists (EPERM: it exists but belongs to someone else). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temporary files in `dir` left by processes that are no longer running; returns their names. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    const pid = m ? Number(m[1]) : 0;
    if (!m || pid === process.pid || isRunning(pid)) continue;
    try {
      rmSync(join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // not ours to remove (permissions): leave it
    }
  }
  return removed;
}

/** removeStaleTemps, with one warning line on stderr naming what was removed. */
export function cleanStaleTemps(dir: string): void {
  const removed = removeStaleTemps(dir);
  if (removed.length > 0) {
    const shown = removed.slice(0, 3).join(', ') + (removed.length > 3 ? ` and ${removed.length - 3} more` : '');
    console.error(`phi4: warning: removed ${removed.length} temporary file(s) left in ${dir} by a run that was killed: ${shown}`);
  }
}

// The reaper: polls for its parent every 200 ms; once the parent is gone, deletes the parent's
// temporary files in the given directories, then exits. Detached, no stdio: it never holds up
// a caller waiting on the parent's output, and a Ctrl-C to the parent's process group misses it.
const REAPER = `
const fs = require('fs'), path = require('path');
const ppid = Number(process.argv[1]), dirs = JSON.parse(process.argv[2]);
const re = new RegExp('\\\\.tmp-' + ppid + '-[0-9a-f]{12}$');
const alive = () => { try { process.kill(ppid, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
const timer = setInterval(() => {
  if (alive()) return;
  clearInterval(timer);
  for (const d of dirs) {
    let names = [];
    try { names = fs.readdirSync(d); } catch {}
    for (const n of names) if (re.test(n)) { try { fs.unlinkSync(path.join(d, n)); } catch {} }
  }
}, 200);
`;

/** Starts the reaper for this process's temporary files in `dirs` (best effort: a failure to start is ignored). */
export function startReaper(dirs: string[]): void {
  if (process.env.PHI4_NO_REAPER) return;
  try {
    const child = spawn(process.execPath, ['-e', REAPER, String(process.pid), JSON.stringify(dirs.map((d) => resolve(d)))], {
      detached: true,
      stdio: 'ignore',
    });
    child.on('error', () => {});
    child.unref();
  } catch {
    // without a reaper, the next run's removeStaleTemps still cleans up
  }
}

/** The same file: equal real paths (both exist) or equal resolved paths. */
function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

export interface OutputCheck {
  /** The option naming the output, for messages. */
  flag?: string;
  /** Files the command reads: the output may not be any of them. */
  inputs?: string[];
  /** Directories whose files the output may not replace (a checkpoint). */
  protectedDirs?: string[];
  /** Replace an existing output (else refused, naming --force). */
  force?: boolean;
}

/**
 * Refuses, before any work, an output that cannot or must not be written: no directory for it, a
 * directory in its place, one of the inputs, a file of a checkpoint being read, or an existing file
 * without `force`. Then removes stale temporary files beside it and starts the reaper for this run's.
 */
export function checkOutput(out: string, opts: OutputCheck = {}): void {
  const flag = opts.flag ?? '--out';
  const dir = dirname(resolve(out));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`${flag}: cannot write ${out}: directory ${dir} does not exist`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new InputError(`${flag}: ${out} is a directory`);
  for (const input of opts.inputs ?? []) {
    if (sameFile(out, input)) throw new InputError(`${flag}: ${out} is also an input (${input}); give a new file`);
  }
  for (const d of opts.protectedDirs ?? []) {
    if (!existsSync(d)) continue;
    const file = statSync(d).isFile(); // a checkpoint given as one .safetensors or index file
    if (file && sameFile(out, d)) throw new InputError(`${flag}: ${out} is the checkpoint being read; give a new file`);
    if (sameFile(dir, file ? dirname(d) : d) && existsSync(out)) {
      throw new InputError(`${flag}: ${out} would replace a file of the checkpoint ${d} (even with --force); write outside the checkpoint directory`);
    }
  }
  if (existsSync(out) && !opts.force) throw new InputError(`${flag}: ${out} exists; give --force to replace it`);
  cleanStaleTemps(dir);
  startReaper([dir]);
}

/**
 * `phi4 synth` writes a marker holding its pid into its output directory first and removes it
 * last, so a directory left by a killed synth can be told from someone's files and taken over.
 */
export const SYNTH_MARKER = '.phi4-synth-incomplete';

/** Files a synth writes (shards, index, config, temporaries, the marker): what a takeover may remove. */
const SYNTH_FILE = /^(model-\d{5}-of-\d{5}\.safetensors|model\.safetensors\.index\.json|config\.json|\.phi4-synth-incomplete)(\.tmp-\d+(-[0-9a-f]+)?)?$/;

/**
 * When `dir` holds the marker of a synth that is no longer running, removes that synth's files
 * (and only those), with a warning, so that a re-run can write there; else leaves it alone.
 */
export function reclaimKilledSynth(dir: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, SYNTH_MARKER), 'utf8').trim());
  } catch {
    return;
  }
  if (Number.isSafeInteger(pid) && pid > 0 && isRunning(pid)) return;
  const removed = readdirSync(dir).filter((n) => SYNTH_FILE.test(n));
  for (const n of removed) rmSync(join(dir, n), { force: true });
  console.error(`phi4: warning: ${dir} was left incomplete by a synth that was killed (pid ${pid}); removed its ${removed.length} file(s)`);
}

export function markSynthStarted(dir: string): void {
  writeFileSync(join(dir, SYNTH_MARKER), `${process.pid}\n`);
}

export function markSynthDone(dir: string): void {
  rmSync(join(dir, SYNTH_MARKER), { force: true });
}
