// A byte-counting progress bar on stderr: done / total, rate and time left. It draws only when
// stderr is a terminal (and at most ten times a second), so logs and pipes stay quiet.

export interface ProgressSink {
  /** Counts `bytes` more as done. */
  add(bytes: number): void;
  /** Clears the bar (the line is left with the final state). */
  done(): void;
}

/** Does nothing: for callers that want no progress. */
export const noProgress: ProgressSink = { add() {}, done() {} };

/**
 * Sizes of files and transfers, in decimal units as `ls -h --si`, `du --si` and download tools
 * print them (7.67 GB). Memory, which the machine and the wasm heap count in powers of two, goes
 * through formatMemory.
 */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

/** Memory (estimates, limits, resident sets), in binary units as --max-memory GIB takes them (2.59 GiB). */
export function formatMemory(n: number): string {
  const gib = n / 2 ** 30;
  if (gib >= 1) return `${gib.toFixed(2)} GiB`;
  const mib = n / 2 ** 20;
  if (mib >= 1) return `${mib.toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--';
  if (s < 60) return `${Math.ceil(s)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.ceil(s - 60 * m)).padStart(2, '0')}s`;
}

interface Stream {
  isTTY?: boolean;
  columns?: number;
  write(s: string): boolean;
}

export class ProgressBar implements ProgressSink {
  private doneBytes = 0;
  private readonly start = performance.now();
  private lastDraw = 0;
  private finished = false;

  /** `stream` defaults to stderr; nothing is drawn unless it is a TTY. */
  constructor(readonly label: string, readonly total: number, private readonly stream: Stream = process.stderr) {}

  get active(): boolean {
    return this.stream.isTTY === true;
  }

  add(bytes: number): void {
    this.doneBytes += bytes;
    if (!this.active || this.finished) return;
    const now = performance.now();
    if (now - this.lastDraw < 100 && this.doneBytes < this.total) return;
    this.lastDraw = now;
    this.draw(now);
  }

  done(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.active) return;
    this.draw(performance.now());
    this.stream.write('\n');
  }

  /** The bar's text (without the carriage return): exported for tests. */
  line(now = performance.now()): string {
    const secs = Math.max(1e-3, (now - this.start) / 1000);
    const rate = this.doneBytes / secs;
    const frac = this.total > 0 ? Math.min(1, this.doneBytes / this.total) : 1;
    const left = rate > 0 ? (this.total - this.doneBytes) / rate : Infinity;
    const width = 24;
    const fill = Math.round(frac * width);
    const bar = '='.repeat(fill) + ' '.repeat(width - fill);
    return `${this.label} [${bar}] ${(100 * frac).toFixed(0).padStart(3)}% ${formatBytes(this.doneBytes)} / ${formatBytes(this.total)}` +
      ` ${formatBytes(rate)}/s ${frac >= 1 ? `in ${formatSeconds(secs)}` : `${formatSeconds(left)} left`}`;
  }

  private draw(now: number): void {
    const cols = this.stream.columns || 100; // 0 on a terminal of unknown width
    this.stream.write(`\r${this.line(now).slice(0, Math.max(20, cols - 1))}\x1b[K`);
  }
}

/**
 * A layer counter for a long pass: layers done, tokens per second (tokens x layers done / time,
 * per layer) and the time left; drawn on stderr only when it is a terminal.
 */
export function layerProgress(total: number, tokens: number, stream: Stream = process.stderr): (done: number) => void {
  const start = performance.now();
  return (done: number) => {
    if (!stream.isTTY) return;
    const s = (performance.now() - start) / 1000;
    const tps = (tokens * done) / total / s; // whole-pass tokens per second
    const left = (s / done) * (total - done);
    stream.write(`\r\x1b[Klayers ${done}/${total} · ${tps.toFixed(1)} tok/s · ${formatSeconds(left)} left${done === total ? '\n' : ''}`);
  };
}
