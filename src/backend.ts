// Picks the tfjs backend. Model code uses the tfjs-core API only, so it runs on each of:
//   tensorflow  native TensorFlow through @tensorflow/tfjs-node (optional; used when it loads)
//   wasm        XNNPACK kernels in WebAssembly (@tensorflow/tfjs-backend-wasm): the default here
//   cpu         plain JavaScript kernels (@tensorflow/tfjs-backend-cpu): slow, independent
// `--backend NAME` or PHI4_BACKEND=NAME override the choice.

//
// The cpu and wasm backends register themselves when their packages load; they load inside
// initBackend, not at import, so the package's declarations never name tfjs-backend-wasm's
// (whose own .d.ts needs @types/emscripten in the app) and importing the library starts nothing.

import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from './errors.js';

export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

// tfjs prints a banner recommending tfjs-node on the first cpu op in Node; PROD silences it.
tf.env().set('PROD', true);

async function loadNative(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-node' as string);
    return tf.findBackend('tensorflow') !== null;
  } catch {
    return false;
  }
}

async function registerBackends(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  await import('@tensorflow/tfjs-backend-wasm');
}

/** Sets the backend: `requested`, else $PHI4_BACKEND, else tensorflow > wasm > cpu. */
export async function initBackend(requested?: string): Promise<BackendName> {
  await registerBackends();
  const want = requested ?? process.env.PHI4_BACKEND ?? undefined;
  const source = requested !== undefined ? '--backend' : 'PHI4_BACKEND';
  if (want !== undefined && want !== '') {
    if (!(BACKENDS as readonly string[]).includes(want)) {
      throw new BackendError(`${source}: unknown backend "${want}" (choose ${BACKENDS.join(', ')})`);
    }
    if (want === 'tensorflow' && !(await loadNative())) {
      throw new BackendError(`${source}: tensorflow needs @tensorflow/tfjs-node, which is not installed or failed to load`);
    }
    if (!(await tf.setBackend(want))) throw new BackendError(`${source}: the ${want} backend failed to initialise`);
    await tf.ready();
    return want as BackendName;
  }
  const order: BackendName[] = (await loadNative()) ? ['tensorflow', 'wasm', 'cpu'] : ['wasm', 'cpu'];
  for (const name of order) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // try the next one
    }
  }
  throw new BackendError('no tfjs backend could be initialised');
}

let choosing: Promise<BackendName> | undefined;

/**
 * Resolves, with its name, once a backend is ready: the one the app set itself (tf.setBackend,
 * initBackend), else the one initBackend() picks, chosen once however often this is called.
 * `import 'phi4-ts'` awaits it before the app's code runs; a CommonJS app (`require`, which
 * allows no top-level await) awaits it before its first model call.
 */
export async function ready(): Promise<string> {
  if (choosing) await choosing;
  else if (!tf.getBackend()) await (choosing = initBackend());
  await tf.ready();
  return tf.getBackend();
}

/**
 * Refuses, in one line, to load a model before any backend is set: a CommonJS app (`require`)
 * that skipped `await ready()` would otherwise meet tfjs's "No backend found in registry".
 */
export function assertBackend(): void {
  if (!tf.getBackend()) {
    throw new BackendError("no tfjs backend is set yet: await ready() (or initBackend()) before the first model call; import 'phi4-ts' does it, require('phi4-ts') does not");
  }
}

export function tfjsVersion(): string {
  return tf.version_core;
}
