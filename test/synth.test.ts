// `phi4 synth` and the three ways of holding weights: a small synthetic checkpoint made by the same
// code as the full-size one, read back tensor by tensor, and run from resident float32, host bf16
// and streamed weights with the same logits.

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { loadConfig } from '../src/model/config.js';
import { F32_TOLERANCE, modelDir } from '../src/oracle/golden.js';
import { relL2 } from '../src/oracle/metrics.js';
import { Phi3Model } from '../src/model/model.js';
import { ProgressBar } from '../src/progress.js';
import { splitShards, stateDictOrder, synthesize } from '../src/checkpoint/synth.js';
import { HostWeights, expectedTensors } from '../src/model/weights.js';
import { floatTensor } from '../src/model/widen.js';
import { Checkpoint } from '../weights/index.js';
import { TEST_BACKENDS, useBackend } from './helpers.js';
import { phi4 } from './cli-helpers.js';
import { loadTokenizer } from '../src/text/tokenizer.js';
import { checkpointEosIds } from '../src/generate/generate.js';

const CONFIG = join(modelDir('phi4-mini-tiny'), 'config.json'); // Phi-4-mini's layout, hidden 96, vocab 1024

function stats(x: Float32Array): { mean: number; std: number; min: number; max: number } {
  let s = 0, s2 = 0, min = Infinity, max = -Infinity;
  for (const v of x) {
    s += v;
    s2 += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean), min, max };
}

describe('phi4 synth: a random checkpoint in the published layout', () => {
  let root: string;
  let dir: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'phi4-synth-'));
    dir = join(root, 'ckpt');
    synthesize(CONFIG, dir, { seed: 7, layers: 2 });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('writes two bf16 shards, the index with total_size, and the config with the layer count overridden', () => {
    expect(readdirSync(dir).sort()).to.deep.equal(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    const cfg = loadConfig(dir);
    expect(cfg.numLayers).to.equal(2);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).rope_scaling).to.deep.equal(JSON.parse(readFileSync(CONFIG, 'utf8')).rope_scaling);
    const ckpt = Checkpoint.open(dir);
    try {
      const expected = expectedTensors(cfg);
      expect(ckpt.names().slice().sort()).to.deep.equal([...expected.keys()].sort()); // tied: no lm_head.weight
      let total = 0;
      for (const [name, shape] of expected) {
        const info = ckpt.info(name);
        expect(info.dtype, name).to.equal('BF16');
        expect(info.shape, name).to.deep.equal(shape);
        total += info.byteLength;
      }
      expect(ckpt.indexTotalSize).to.equal(total);
      expect(ckpt.files).to.have.length(2);
    } finally {
      ckpt.close();
    }
  });

  it("places every tensor in the shard the published index does (layer 18's MLP and norms in shard 2); small checkpoints still get two shards", () => {
    const cfg = loadConfig(join(modelDir('phi4-mini-tiny')));
    const full = loadConfig(join(modelDir('phi4-mini-tiny'), '..', '..', 'configs', 'phi-4-mini-instruct.json'));
    const bytes = (s: { shape: readonly number[] }) => 2 * s.shape.reduce((a, b) => a * b, 1);
    const plan = (c: typeof cfg) => splitShards(stateDictOrder([...expectedTensors(c)].map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape }))), bytes);
    const published = JSON.parse(readFileSync(join(modelDir('phi4-mini-tiny'), '..', '..', 'phi-4-mini-instruct', 'model.safetensors.index.json'), 'utf8'));
    const mine: Record<string, string> = {};
    plan(full).forEach((part, i) => part.forEach((s) => (mine[s.name] = `model-0000${i + 1}-of-00002.safetensors`)));
    expect(mine).to.deep.equal(published.weight_map);
    expect(mine['model.layers.18.input_layernorm.weight']).to.equal('model-00002-of-00002.safetensors');
    expect(mine['model.layers.18.self_attn.qkv_proj.weight']).to.equal('model-00001-of-00002.safetensors');
    expect(plan(full).flat().reduce((n, s) => n + bytes(s), 0)).to.equal(published.metadata.total_size);
    const small = plan(cfg);
    expect(small).to.have.length(2);
    expect(small[0].reduce((n, s) => n + bytes(s), 0) / small.flat().reduce((n, s) => n + bytes(s), 0)).to.be.within(0.5, 0.64);
  });

  it("writes the published tokenizer, chat and generation files for a config with Phi-4-mini's vocabulary", () => {
    const out = mkdtempSync(join(tmpdir(), 'phi4-synth-vocab-'));
    try {
      const raw = JSON.parse(readFileSync(join(modelDir('phi4-mini-tiny'), 'config.json'), 'utf8'));
      writeFileSync(join(out, 'config.json'), JSON.stringify({ ...raw, vocab_size: 200064, hidden_size: 32, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 32, num_hidden_layers: 1 }));
      const ckpt = join(out, 'ckpt');
      const r = synthesize(join(out, 'config.json'), ckpt, { seed: 1 });
      const pub = join(modelDir('phi4-mini-tiny'), '..', '..', 'phi-4-mini-instruct');
      for (const f of ['tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'generation_config.json']) {
        expect(readFileSync(join(ckpt, f), 'utf8'), f).to.equal(readFileSync(join(pub, f), 'utf8'));
      }
      expect(r.files.filter((f) => f.endsWith('.safetensors'))).to.have.length(2);
      const tok = loadTokenizer(ckpt)!;
      expect(tok.encodeChat([{ role: 'user', content: 'Hello' }])).to.deep.equal([200021, 13225, 200020, 200019]);
      expect(checkpointEosIds(ckpt, loadConfig(ckpt)).sort()).to.deep.equal([199999, 200020, 2].sort());
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('draws norms from U(0.5, 1.5), the embedding from N(0, 1), linear weights from N(0, 1/in), reproducibly', () => {
    const ckpt = Checkpoint.open(dir);
    try {
      const norm = stats(ckpt.readFloat32('model.layers.1.input_layernorm.weight'));
      expect(norm.min).to.be.at.least(0.5);
      expect(norm.max).to.be.at.most(1.5);
      expect(norm.mean).to.be.within(0.4 + 0.5, 0.6 + 0.5); // 96 samples: the mean's sd is 0.03
      const emb = stats(ckpt.readFloat32('model.embed_tokens.weight')); // 98304 samples
      expect(emb.mean).to.be.within(-0.02, 0.02);
      expect(emb.std).to.be.within(0.98, 1.02);
      const down = stats(ckpt.readFloat32('model.layers.0.mlp.down_proj.weight')); // in = 256
      expect(down.std * Math.sqrt(256)).to.be.within(0.97, 1.03);
    } finally {
      ckpt.close();
    }
    // The same seed gives the same bytes; a tensor's values depend on the seed and its name only.
    const again = join(root, 'again');
    synthesize(CONFIG, again, { seed: 7, layers: 1 });
    const other = join(root, 'other');
    synthesize(CONFIG, other, { seed: 8, layers: 1 });
    const [x, y, z] = [dir, again, other].map((d) => Checkpoint.open(d));
    try {
      const name = 'model.layers.0.self_attn.qkv_proj.weight';
      expect(Buffer.compare(x.readBytes(name), y.readBytes(name))).to.equal(0);
      expect(Buffer.compare(x.readBytes(name), z.readBytes(name))).to.not.equal(0);
    } finally {
      [x, y, z].forEach((c) => c.close());
    }
  });

  it('refuses a non-empty --out and leaves nothing behind when the config is bad', () => {
    expect(() => synthesize(CONFIG, dir)).to.throw(/--out: .* is not empty/);
    const bad = join(root, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...JSON.parse(readFileSync(CONFIG, 'utf8')), num_attention_heads: 5 }));
    const out = join(root, 'never');
    expect(() => synthesize(bad, out)).to.throw(/num_attention_heads|num_key_value_heads|divide/);
    expect(existsSync(out)).to.equal(false);
  });

  it('the command line: writes quietly when stderr is not a terminal; bad arguments exit 2 with one line', () => {
    const run = (args: string[]) => phi4(['synth', ...args]);
    const out = join(root, 'cli');
    const ok = run(['--config', CONFIG, '--out', out, '--layers', '1', '--seed', '3']);
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stderr).to.match(/^wrote .*cli: 1 layers, [\d.]+ [kM]B of bf16 in 2 shards \([\d.]+ s\)\n$/); // no bar, no escape codes
    expect(loadConfig(out).numLayers).to.equal(1);
    for (const [args, msg] of [
      [['--out', join(root, 'x')], /^phi4: synth needs --config CONFIG\.json\n$/],
      [['--config', CONFIG, '--out', out], /^phi4: --out: .*cli is not empty; give a new or empty directory\n$/],
      [['--config', CONFIG, '--out', join(root, 'y'), '--layers', '0'], /^phi4: --layers: expected an integer >= 1, got "0"\n$/],
      [['--config', join(root, 'missing.json'), '--out', join(root, 'z')], /^phi4: .*missing\.json: cannot read a JSON config \(ENOENT\)\n$/],
    ] as const) {
      const r = run([...args]);
      expect(r.status, args.join(' ')).to.equal(2);
      expect(r.stderr).to.match(msg);
    }
    expect(existsSync(join(root, 'y'))).to.equal(false);
    expect(existsSync(join(root, 'z'))).to.equal(false);
  });

  for (const backend of TEST_BACKENDS) {
    it(`${backend}: float32, bf16 and stream weights hold the file's values and give the same logits, leaking no tensor`, async () => {
      await useBackend(backend);
      const ids = Int32Array.from([3, 1000, 17, 512, 99, 0, 1023, 42]);
      const saved = HostWeights.headChunkBytes;
      HostWeights.headChunkBytes = 100 * 4 * 96; // 100 vocabulary rows at a time: 11 chunks
      const ckpt = Checkpoint.open(dir);
      try {
        const logits: Float32Array[] = [];
        for (const mode of ['float32', 'bf16', 'stream'] as const) {
          const before = tf.memory().numTensors;
          const m = Phi3Model.load(dir, { weights: mode });
          expect(m.weights.mode).to.equal(mode);
          expect(m.weights.hostBytes).to.equal(mode === 'bf16' ? ckpt.totalBytes : 0);
          // Round trip: what the store hands the layers is the file's values, widened exactly.
          const lw = m.weights.layer(1);
          const gateUp = lw.weights.mlp.gateUpProj;
          const widened = gateUp instanceof tf.Tensor ? gateUp : gateUp.toTensor();
          for (const [name, t] of [['model.layers.1.mlp.gate_up_proj.weight', widened], ['model.layers.1.post_attention_layernorm.weight', lw.weights.postAttentionLayernorm]] as const) {
            expect(t.shape, name).to.deep.equal(ckpt.info(name).shape);
            expect(Buffer.compare(Buffer.from((t.dataSync() as Float32Array).buffer), Buffer.from(ckpt.readFloat32(name).buffer)), name).to.equal(0);
          }
          if (widened !== gateUp) widened.dispose();
          lw.release();
          const emb = m.weights.embed(ids, 2, 4);
          const table = ckpt.readFloat32('model.embed_tokens.weight');
          const want = new Float32Array(ids.length * 96);
          ids.forEach((id, k) => want.set(table.subarray(id * 96, (id + 1) * 96), k * 96));
          expect(Array.from(emb.dataSync())).to.deep.equal(Array.from(want));
          emb.dispose();

          const r = m.forward({ inputIds: ids, batch: 2, seq: 4 });
          expect(r.logits.shape).to.deep.equal([2, 4, 1024]);
          logits.push(r.logits.dataSync() as Float32Array);
          tf.dispose([r.logits, ...r.cache.flatMap((c) => [c.k, c.v])]);
          m.dispose();
          expect(tf.memory().numTensors, mode).to.equal(before);
        }
        // The same float32 weights and the same kernels: the same numbers, bit for bit.
        expect(Array.from(logits[1]!)).to.deep.equal(Array.from(logits[0]!));
        expect(Array.from(logits[2]!)).to.deep.equal(Array.from(logits[0]!));
        expect(() => Phi3Model.load(dir, { weights: 'fp8' as never })).to.throw(/--weights: unknown weights mode "fp8" \(choose auto, float32, bf16, stream\)/);
      } finally {
        HostWeights.headChunkBytes = saved;
        ckpt.close();
      }
    });
  }
});

describe('decoding one token from bf16 bytes in place', () => {
  let root: string;
  before(async () => {
    await useBackend('wasm');
    root = mkdtempSync(join(tmpdir(), 'phi4-gemv-'));
    synthesize(CONFIG, root + '/ckpt', { seed: 9, layers: 2 });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const backend of TEST_BACKENDS) {
    it(`${backend}: a cached single-token step from bf16 weights matches float32 weights within the float32 tolerance`, async () => {
      await useBackend(backend);
      const dir = root + '/ckpt';
      const ids = Int32Array.from([5, 600, 77, 1001, 12, 9]);
      const before = tf.memory().numTensors;
      const out: Float32Array[] = [];
      for (const mode of ['float32', 'bf16'] as const) {
        const m = Phi3Model.load(dir, { weights: mode });
        const lw = m.weights.layer(0);
        const qkv = lw.weights.attn.qkvProj;
        // bf16 mode multiplies one row in place; float32 weights are plain tensors
        expect(qkv instanceof tf.Tensor ? 'tensor' : typeof qkv.matVec).to.equal(mode === 'float32' ? 'tensor' : 'function');
        lw.release();
        const pre = m.forward({ inputIds: ids.subarray(0, 5), batch: 1, seq: 5 });
        const step = m.forward({ inputIds: ids.subarray(5), batch: 1, seq: 1 }, { past: pre.cache });
        out.push(step.logits.dataSync() as Float32Array);
        tf.dispose([pre.logits, step.logits, ...pre.cache.flatMap((c) => [c.k, c.v]), ...step.cache.flatMap((c) => [c.k, c.v])]);
        m.dispose();
      }
      expect(tf.memory().numTensors).to.equal(before);
      const err = relL2(out[1]!, out[0]!);
      expect(err).to.be.below(F32_TOLERANCE); // another summation order, the same float32 products
    });
  }
});

describe('bf16 widening', () => {
  for (const backend of TEST_BACKENDS) {
    it(`${backend}: every bit pattern widens exactly, at any length and byte offset`, async () => {
      await useBackend(backend);
      const all = new Uint16Array(65536).map((_, i) => i); // NaNs, infinities, subnormals, zeros included
      const before = tf.memory().numTensors;
      for (const [n, offset] of [[65536, 0], [1, 0], [7, 2], [13, 1], [1001, 6]] as const) {
        const buf = new Uint8Array(2 * n + offset);
        buf.set(new Uint8Array(all.buffer, 0, 2 * n), offset);
        const bytes = buf.subarray(offset);
        const t = floatTensor(bytes, 'BF16', [n]);
        const got = new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
        const want = Uint32Array.from(all.subarray(0, n), (h) => (h << 16) >>> 0); // the float32 bits, by definition
        expect(Buffer.compare(Buffer.from(got.buffer), Buffer.from(want.buffer)), `n=${n} offset=${offset}`).to.equal(0);
        t.dispose();
      }
      expect(tf.memory().numTensors).to.equal(before);
    });
  }
});

describe('progress bar', () => {
  it('draws bytes, rate and time left on a terminal, and nothing elsewhere', () => {
    const out: string[] = [];
    const tty = { isTTY: true, columns: 200, write: (s: string) => out.push(s) > 0 };
    const bar = new ProgressBar('load', 4e9, tty);
    bar.add(1e9);
    bar.done();
    expect(out.join('')).to.match(/^\rload \[======\s+\]\s+25% 1\.00 GB \/ 4\.00 GB [\d.]+ [kMG]?B\/s [^]*\x1b\[K\n$/);
    expect(bar.line()).to.match(/25% 1\.00 GB \/ 4\.00 GB/);
    const pipe: string[] = [];
    const quiet = new ProgressBar('load', 100, { isTTY: false, write: (s: string) => pipe.push(s) > 0 });
    quiet.add(50);
    quiet.done();
    expect(pipe).to.deep.equal([]);
  });
});
