// The small HTTP server of the browser tests (test/browser-lib.test.ts, browser-threads, browser-webgpu):
// serves fixed files by URL path, honours Range requests (recording each range it sends) unless the
// URL carries `?norange` (a server that ignores Range), and adds the headers `headers` gives for a
// path (the cross-origin-isolation headers, for one).

import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

export interface ServeOptions {
  /** Every range sent, as `FILE START-END` (basename, inclusive end). */
  ranges?: string[];
  /** Extra response headers for a URL path. */
  headers?: (pathname: string) => Record<string, string>;
}

export interface Served {
  server: http.Server;
  /** http://127.0.0.1:PORT */
  base: string;
  close(): Promise<void>;
}

function contentType(file: string): string {
  if (file.endsWith('.js')) return 'text/javascript';
  if (file.endsWith('.wasm')) return 'application/wasm';
  if (file.endsWith('.html')) return 'text/html';
  return file.endsWith('.json') ? 'application/json' : 'application/octet-stream';
}

/** Routes to every file of a built bundle (tools/build-browser.ts) at `${prefix}/NAME`, but those in `leaveOut`. */
export function bundleRoutes(bundleDir: string, prefix = '', leaveOut: string[] = []): [string, string][] {
  return fs.readdirSync(bundleDir).filter((f) => !leaveOut.includes(f)).map((f) => [`${prefix}/${f}`, path.join(bundleDir, f)]);
}

/** A checkpoint's .safetensors files: the index's shards, else model.safetensors. */
export function shardsOf(dir: string): string[] {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (!fs.existsSync(index)) return ['model.safetensors'];
  return [...new Set(Object.values((JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map))];
}

/** Routes to a checkpoint directory's config.json (at URL path `config`) and to each of its `shards` at `${shardsAt}/NAME`. */
export function checkpointRoutes(dir: string, shards: string[], config: string, shardsAt: string): [string, string][] {
  return [[config, path.join(dir, 'config.json')], ...shards.map((s): [string, string] => [`${shardsAt}/${s}`, path.join(dir, s)])];
}

/** Serves `routes` (URL path -> file) on 127.0.0.1 at a free port; other paths are 404. */
export function serve(routes: Map<string, string>, opts: ServeOptions = {}): Promise<Served> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const file = routes.get(url.pathname);
    const extra = opts.headers?.(url.pathname) ?? {};
    if (!file) {
      res.writeHead(404, extra).end();
      return;
    }
    const size = fs.statSync(file).size;
    const type = contentType(file);
    const m = url.searchParams.has('norange') ? null : /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) {
      res.writeHead(200, { ...extra, 'Content-Type': type, 'Content-Length': size });
      fs.createReadStream(file).pipe(res);
      return;
    }
    const [a, b] = [Number(m[1]), Math.min(Number(m[2]), size - 1)];
    opts.ranges?.push(`${path.basename(file)} ${a}-${b}`);
    res.writeHead(206, { ...extra, 'Content-Type': type, 'Content-Length': b - a + 1, 'Content-Range': `bytes ${a}-${b}/${size}` });
    fs.createReadStream(file, { start: a, end: b }).pipe(res);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({
    server,
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((done) => server.close(() => done())),
  })));
}
