// Soak: one process, the bundled tiny Phi-4-mini on wasm; each round generates 250 tokens (crossing
// the model's 32-position original context, so the default rope policy rebuilds the cache) and
// makes 250 runWithCache calls taking every tap. After every round the tensor count and bytes are
// back where they started, and the JavaScript heap after a full collection does not grow from the
// first round to the last beyond what the measurement below allows.
//
// 4 rounds by default (1,000 tokens, 1,000 calls: about 18 s on a loaded 2-core machine);
// PHI4_SOAK=full runs 8 (2,000 tokens, 2,000 calls), the size issue 21 asked for, which took
// 34 s there (8 x 250 tokens + 8 x 125 calls) and is too long for every CI run.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'chai';
import { bundledModel } from '../src/checkpoint/bundled.js';
import { generate } from '../src/generate/generate.js';
import { Phi3Model } from '../src/model/model.js';
import { useBackend } from './helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void; // a full collection, without starting node with --expose-gc

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

// Heap growth allowed from the first round to the last: measured, the heap after gc per round was
// 14.3 13.8 13.8 13.9 13.9 13.9 13.9 13.9 MB (the first round carries the warm-up), a spread of
// 0.5 MB; 2 MB is 4x that. Tensors live in wasm memory and are counted by numTensors/numBytes.
const HEAP_SLACK_BYTES = 2 * 2 ** 20;
const ROUNDS = process.env.PHI4_SOAK === 'full' ? 8 : 4;
const CALLS_PER_ROUND = 250;

describe(`soak: ${ROUNDS * 250} generated tokens and ${ROUNDS * CALLS_PER_ROUND} runWithCache calls in one process`, function () {
  this.timeout(300_000);
  let model: Phi3Model;
  before(async () => {
    await useBackend('wasm');
    model = Phi3Model.load(bundledModel('phi4-mini-tiny'));
  });
  after(() => model?.dispose());

  it('keeps the tensor count and the heap flat', () => {
    const start = tf.memory().numTensors;
    const startBytes = tf.memory().numBytes;
    const heaps: number[] = [];
    const t0 = Date.now();
    let tokens = 0;
    let calls = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const r = generate(model, [5, 17, 42, 7, 99], { maxNewTokens: 250, eosIds: [], sampling: { temperature: 1 }, seed: BigInt(round) });
      expect(r.ids.length).to.equal(250);
      expect(r.rebuiltAt, 'the cache rebuilt at the 32-position switch').to.not.equal(null);
      tokens += r.ids.length;
      for (let i = 0; i < CALLS_PER_ROUND; i++) {
        const ids = Int32Array.from([(round * CALLS_PER_ROUND + i) % 1024, 17, 42]);
        const { logits, taps } = model.runWithCache({ inputIds: ids, batch: 1, seq: 3 });
        if (i === 0) expect(taps.size).to.equal(57);
        tf.dispose([logits, ...taps.values()]);
        calls++;
      }
      expect(tf.memory().numTensors, `tensors alive after round ${round}`).to.equal(start);
      expect(tf.memory().numBytes, `tensor bytes after round ${round}`).to.equal(startBytes);
      heaps.push(heapAfterGc());
    }
    const seconds = (Date.now() - t0) / 1000;
    const growth = heaps.at(-1)! - heaps[0]!;
    console.log(`      soak: ${tokens} tokens + ${calls} runWithCache calls in ${seconds.toFixed(1)} s; heap after gc per round (MB): ${heaps.map((h) => (h / 2 ** 20).toFixed(1)).join(' ')}`);
    expect(tokens).to.equal(ROUNDS * 250);
    expect(calls).to.equal(ROUNDS * CALLS_PER_ROUND);
    expect(growth, `heap grew ${(growth / 2 ** 20).toFixed(1)} MB from round 1 to round ${ROUNDS}`).to.be.below(HEAP_SLACK_BYTES);
  });
});
