// `npm run fuzz -- [--cases N] [--seed S] [--kinds header,config,inputs,compare] [--strict-compare] [--json]`: mutated safetensors
// headers, configs, --inputs files and compare candidates from the bundled checkpoints, each
// judged from outside. The cases run in a worker process (fuzz/worker.ts); this process watches
// it and fails the run on any
//   crash     an exception that is not a one-line refusal (WeightsError, ConfigError, InputError)
//   hang      a case that uses 5 s of CPU time without a result (the worker's user + system time,
//             from /proc, so a loaded machine does not turn a slow case into a hang; wall-clock time
//             where there is no /proc), or that waits 2 minutes without a result (a worker blocked,
//             not computing); the worker is killed and restarted after it
//   blow-up   the worker's resident memory passing 1 GiB (killed and restarted)
//   disagree  the reader accepting what the independent validator (fuzz/validator.ts) refuses, or the reverse
//   message   a refusal that is not one bounded line
// A compare candidate carrying a real error that compare passes is counted as compare-pass; it
// fails the run with --strict-compare.

import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KINDS, type Kind } from './cases.js';
import type { Outcome } from './worker.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');
export const HANG_MS = 5000;
/** A worker with no result in this long is a hang even if it used no CPU (blocked, not computing). */
export const BLOCKED_MS = 120_000;
export const MEMORY_LIMIT = 2 ** 30;

export interface Failure {
  i: number;
  status: string;
  kind?: string;
  detail?: string;
  what?: string;
}

export interface FuzzSummary {
  seed: number;
  cases: number;
  seconds: number;
  perKind: Record<string, { cases: number; accepted: number; refused: number }>;
  crashes: number;
  hangs: number;
  blowups: number;
  disagreements: number;
  badMessages: number;
  comparePasses: number;
  peakWorkerBytes: number;
  /** The most CPU time (ms) the worker used between two results: what the hang limit is measured against. */
  slowestCaseCpuMs: number;
  failures: Failure[];
  ok: boolean;
}

/**
 * CPU milliseconds (user + system, all threads) process `pid` has used, from /proc/PID/stat
 * (fields 14 and 15, in USER_HZ = 100 ticks per second); undefined where there is no /proc.
 */
export function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (the name may hold spaces)
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return undefined;
  }
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs cases [0, cases) of `seed`; resolves with the summary. */
export async function runFuzz(opts: {
  cases: number; seed: number; kinds?: readonly Kind[]; strictCompare?: boolean; progress?: (done: number) => void;
  /** Resident bytes that count as a blow-up (default MEMORY_LIMIT, 1 GiB). */
  memoryLimit?: number;
  /** A case that uses this much CPU time (ms; wall-clock time without /proc) with no result is a hang (default HANG_MS). */
  hangMs?: number;
}): Promise<FuzzSummary> {
  const memoryLimit = opts.memoryLimit ?? MEMORY_LIMIT;
  const hangMs = opts.hangMs ?? HANG_MS;
  const t0 = performance.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-fuzz-'));
  const s: FuzzSummary = {
    seed: opts.seed, cases: 0, seconds: 0, perKind: {}, crashes: 0, hangs: 0, blowups: 0, disagreements: 0,
    badMessages: 0, comparePasses: 0, peakWorkerBytes: 0, slowestCaseCpuMs: 0, failures: [], ok: true,
  };
  const fail = (f: Failure) => {
    if (s.failures.length < 50) s.failures.push(f);
  };
  let next = 0;
  try {
    while (next < opts.cases) {
      // one worker for [next, cases); returns the index to resume at
      next = await new Promise<number>((resolve) => {
        const child = fork(WORKER, [String(opts.seed), String(next), String(opts.cases), tmp, (opts.kinds ?? KINDS).join(',')], {
          execArgv: ['--max-old-space-size=1536', '--stack-size=984'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        });
        let stderr = '';
        child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
        let lastDone = next - 1;
        let ready = false;
        let lastEvent = performance.now();
        // the work since the last event: the worker's CPU time where /proc has it, else wall-clock time
        const onCpu = child.pid !== undefined && cpuMsOf(child.pid) !== undefined;
        const clock = () => (onCpu ? cpuMsOf(child.pid!) ?? lastWork : performance.now());
        let lastWork = 0;
        lastWork = clock();
        let settled = false;
        const finish = (resume: number) => {
          if (settled) return;
          settled = true;
          clearInterval(watch);
          child.kill('SIGKILL');
          resolve(resume);
        };
        const watch = setInterval(() => {
          const rss = child.pid ? rssOf(child.pid) : 0;
          s.peakWorkerBytes = Math.max(s.peakWorkerBytes, rss);
          if (rss > memoryLimit) {
            s.blowups++;
            fail({ i: lastDone + 1, status: 'blow-up', detail: `worker resident memory ${rss} bytes` });
            s.cases++;
            finish(lastDone + 2);
          } else if (ready && (clock() - lastWork > hangMs || performance.now() - lastEvent > Math.max(hangMs, BLOCKED_MS))) {
            s.hangs++;
            const busy = clock() - lastWork > hangMs;
            fail({ i: lastDone + 1, status: 'hang', detail: busy ? `no result after ${hangMs} ms of ${onCpu ? 'CPU' : 'wall-clock'} time` : `no result in ${BLOCKED_MS} ms (blocked)` });
            s.cases++;
            finish(lastDone + 2);
          } else if (!ready && performance.now() - lastEvent > 60_000) {
            fail({ i: lastDone + 1, status: 'crash', detail: `worker did not start: ${stderr}` });
            s.crashes++;
            finish(opts.cases);
          }
        }, 100);
        child.on('message', (m: Outcome | { ready: true } | { i: number; skipped: true }) => {
          lastEvent = performance.now();
          const work = clock();
          if (ready) s.slowestCaseCpuMs = Math.max(s.slowestCaseCpuMs, work - lastWork);
          lastWork = work;
          if ('ready' in m) {
            ready = true;
            return;
          }
          if ('skipped' in m) {
            lastDone = m.i;
            return;
          }
          lastDone = m.i;
          s.cases++;
          opts.progress?.(s.cases);
          const k = (s.perKind[m.kind] ??= { cases: 0, accepted: 0, refused: 0 });
          k.cases++;
          if (m.accepted) k.accepted++;
          else k.refused++;
          s.peakWorkerBytes = Math.max(s.peakWorkerBytes, m.hwm);
          if (m.status === 'crash') s.crashes++;
          else if (m.status === 'disagree') s.disagreements++;
          else if (m.status === 'message') s.badMessages++;
          else if (m.status === 'compare-pass') s.comparePasses++;
          if (m.status !== 'ok') fail({ i: m.i, status: m.status, kind: m.kind, detail: m.detail, what: m.what });
          if (m.hwm > memoryLimit) {
            s.blowups++;
            fail({ i: m.i, status: 'blow-up', kind: m.kind, detail: `peak resident memory ${m.hwm} bytes`, what: m.what });
            finish(m.i + 1); // a fresh worker resets the peak
          }
        });
        child.on('exit', (code, signal) => {
          if (settled) return;
          if (lastDone + 1 < opts.cases) {
            s.crashes++;
            s.cases++;
            fail({ i: lastDone + 1, status: 'crash', detail: `worker died (${signal ?? code}): ${stderr.split('\n').filter(Boolean).slice(-3).join(' | ')}` });
            finish(lastDone + 2);
          } else finish(opts.cases);
        });
      });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  s.seconds = (performance.now() - t0) / 1000;
  s.ok = s.crashes + s.hangs + s.blowups + s.disagreements + s.badMessages + (opts.strictCompare ? s.comparePasses : 0) === 0;
  return s;
}

export function formatSummary(s: FuzzSummary): string {
  const kinds = Object.entries(s.perKind).map(([k, v]) => `${k} ${v.cases} (${v.accepted} accepted, ${v.refused} refused)`).join('; ');
  const lines = [
    `fuzz seed ${s.seed}: ${s.cases} cases in ${s.seconds.toFixed(1)} s (${(s.cases / s.seconds).toFixed(0)} cases/s): ${kinds}`,
    `crashes ${s.crashes}, hangs ${s.hangs}, blow-ups ${s.blowups}, validator disagreements ${s.disagreements}, unbounded messages ${s.badMessages}, ` +
      `wrong compare candidates passed ${s.comparePasses}; worker peak memory ${(s.peakWorkerBytes / 2 ** 20).toFixed(0)} MiB; ` +
      `slowest case ${s.slowestCaseCpuMs.toFixed(0)} ms of CPU (a hang: ${HANG_MS})`,
    ...s.failures.slice(0, 20).map((f) => `  case ${f.i} ${f.status}${f.kind ? ` (${f.kind})` : ''}: ${f.detail ?? ''}${f.what ? ` [${f.what}]` : ''}`),
    s.ok ? 'OK' : 'FAILED',
  ];
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  let cases = 2000;
  let seed = 1;
  let strictCompare = false;
  let json = false;
  let kinds: Kind[] = [...KINDS];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    if (a === '--cases' || a === '--seed') {
      const v = argv[++k];
      if (v === undefined || !/^\d+$/.test(v)) {
        console.error(`fuzz: ${a} needs a non-negative integer`);
        return 2;
      }
      if (a === '--cases') cases = Number(v);
      else seed = Number(v);
    } else if (a === '--kinds') {
      kinds = (argv[++k] ?? '').split(',') as Kind[];
      if (!kinds.every((x) => (KINDS as readonly string[]).includes(x))) {
        console.error(`fuzz: --kinds takes a comma-separated list of ${KINDS.join(', ')}`);
        return 2;
      }
    } else if (a === '--strict-compare') strictCompare = true;
    else if (a === '--json') json = true;
    else {
      console.error(`fuzz: unknown option ${a} (--cases N, --seed S, --kinds LIST, --strict-compare, --json)`);
      return 2;
    }
  }
  const tty = process.stderr.isTTY;
  const s = await runFuzz({ cases, seed, kinds, strictCompare, progress: (n) => tty && n % 500 === 0 && process.stderr.write(`\r${n}/${cases}`) });
  if (tty) process.stderr.write('\r');
  console.log(json ? JSON.stringify(s, null, 2) : formatSummary(s));
  return s.ok ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
