// Builds the browser bundle (`phi4-ts/browser`, docs/browser.md): one ES module, made by esbuild
// from the compiled entry dist/src/browser/index.js, with tfjs-core and its wasm and cpu backends
// inside, and the wasm backend's three .wasm files copied beside it, and the exact kernel's worker
// script dots-worker.js (the Web Workers of a cross-origin-isolated page; docs/browser.md).
//
//   npm run build:browser     (and `prepack`: the package ships the bundle; nothing runs at install)
//   node dist/tools/build-browser.js [OUTDIR]     default dist/browser
//
// Node's modules are not in a page. The code the bundle reaches imports some anyway (the Node-only
// loaders share modules with the rest), so every `node:` import, and @tensorflow/tfjs-node, resolves
// to src/browser/shims/node.cjs (each use a one-line error; the kernel's thread count 1), and the
// Node global `Buffer` to src/browser/shims/buffer.ts. `process.env` reads see an empty object.
// The exact kernel's threads module, layers/kernels/threads.ts (worker_threads), is replaced by
// layers/kernels/threads-browser.ts (Web Workers), in the bundles and in the worker script alike.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

/** The package root (this file is dist/tools/build-browser.js). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUNDLE_NAME = 'phi4-ts.js';
/** The live walkthrough page's script (src/teach/html/live.ts), inlined by `phi4 walkthrough --html`. */
export const LIVE_NAME = 'walkthrough-live.js';
/** The exact kernel's worker script (layers/kernels/dots-worker.ts), which the bundle starts from beside itself. */
export const WORKER_NAME = 'dots-worker.js';
export const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'];

const nodeShim: esbuild.Plugin = {
  name: 'node-shim',
  setup(build) {
    const shim = path.join(ROOT, 'src', 'browser', 'shims', 'node.cjs');
    build.onResolve({ filter: /^node:|^@tensorflow\/tfjs-node$/ }, () => ({ path: shim }));
  },
};

const kernelThreads: esbuild.Plugin = {
  name: 'kernel-threads',
  setup(build) {
    const kernels = path.join(ROOT, 'dist', 'layers', 'kernels');
    build.onResolve({ filter: /^\.\/threads\.js$/ }, (args) =>
      (path.resolve(args.resolveDir) === kernels ? { path: path.join(kernels, 'threads-browser.js') } : undefined));
  },
};

/** What every browser script of the package is built with. */
const COMMON: esbuild.BuildOptions = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: false, // a reference implementation: the bundle stays readable
  legalComments: 'eof',
  logLevel: 'warning',
  plugins: [nodeShim, kernelThreads],
  inject: [path.join(ROOT, 'dist', 'src', 'browser', 'shims', 'buffer.js')],
  define: { 'process.env': '{}' },
};

/** Writes OUTDIR/phi4-ts.js and the .wasm files; returns the bundle's path. */
export async function buildBrowser(outDir = path.join(ROOT, 'dist', 'browser')): Promise<string> {
  const outfile = path.join(outDir, BUNDLE_NAME);
  const entry = path.join(ROOT, 'dist', 'src', 'browser', 'index.js');
  if (!fs.existsSync(entry)) throw new Error(`${path.relative(ROOT, entry)} is missing: run tsc -p tsconfig.json first`);
  await esbuild.build({ ...COMMON, entryPoints: [entry], outfile });
  // The live walkthrough's script: the same library, no exports, inlined by src/teach/html/page.ts.
  // It never calls ready('webgpu'): tfjs's webgpu backend (0.6 MB) stays out of the page, and the
  // import() that would load it is left as it is, never run.
  await esbuild.build({ ...COMMON, entryPoints: [path.join(ROOT, 'dist', 'src', 'teach', 'html', 'live.js')], outfile: path.join(outDir, LIVE_NAME),
    external: ['@tensorflow/tfjs-backend-webgpu'] });
  // The kernel's worker: a module worker, started by the bundle (threads-browser.ts) from beside it.
  await esbuild.build({ ...COMMON, entryPoints: [path.join(ROOT, 'dist', 'layers', 'kernels', 'dots-worker.js')], outfile: path.join(outDir, WORKER_NAME) });
  const wasmDir = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
  for (const f of WASM_FILES) fs.copyFileSync(path.join(wasmDir, f), path.join(outDir, f));
  return outfile;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildBrowser(process.argv[2]).then(
    (out) => console.log(`wrote ${path.relative(process.cwd(), out)} (${(fs.statSync(out).size / 1e6).toFixed(2)} MB)`),
    (err) => {
      console.error(`build-browser: ${(err as Error).message.split('\n')[0]}`);
      process.exit(1);
    });
}
