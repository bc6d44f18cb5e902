// The model's view of a checkpoint: tensor names and shapes from the config, size checks.

import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { parseConfig, loadConfig } from '../src/model/config.js';
import { GOLDEN_DIR, modelDir } from '../src/oracle/golden.js';
import { expectedTensors, float32Bytes, loadWeights } from '../src/model/weights.js';
import { Checkpoint } from '../weights/index.js';
import { useBackend } from './helpers.js';

const realConfig = () => loadConfig(join(GOLDEN_DIR, 'configs/phi-4-mini-instruct.json'));

describe('checkpoint tensors for a config', () => {
  it('Phi-4-mini has 3,836,021,760 parameters, the tied head counted once', () => {
    // embedding 200064 x 3072; per layer qkv 5120 x 3072, o 3072 x 3072, gate_up 16384 x 3072,
    // down 3072 x 8192, two norms of 3072; 32 layers; final norm 3072
    const perLayer = 5120 * 3072 + 3072 * 3072 + 16384 * 3072 + 3072 * 8192 + 2 * 3072;
    expect(float32Bytes(realConfig())).to.equal(4 * (200064 * 3072 + 32 * perLayer + 3072));
    expect(expectedTensors(realConfig()).has('lm_head.weight')).to.equal(false);
  });

  it('expects exactly the tensors the golden checkpoints hold, with their shapes', () => {
    for (const name of ['phi4-mini-tiny', 'phi4-mini-geometry', 'phi3-mini-tiny']) {
      const ckpt = Checkpoint.open(modelDir(name));
      const expected = expectedTensors(loadConfig(modelDir(name)));
      expect(ckpt.names().slice().sort(), name).to.deep.equal([...expected.keys()].sort());
      for (const [n, shape] of expected) expect(ckpt.info(n).shape, n).to.deep.equal(shape);
      ckpt.close();
    }
    expect(expectedTensors(loadConfig(modelDir('phi3-mini-tiny'))).get('lm_head.weight')).to.deep.equal([512, 64]);
  });

  it('refuses float32 weights on wasm for a model whose float32 weights cannot fit the 4 GiB heap; auto holds them as bf16', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phi4-big-'));
    try {
      cpSync(join(modelDir('phi3-mini-tiny'), 'model.safetensors'), join(dir, 'model.safetensors'));
      await useBackend('wasm');
      expect(() => loadWeights(dir, realConfig(), { mode: 'float32' })).to.throw(/the weights need 14\.3 GiB as float32, more than the wasm backend's 4 GiB heap/);
      // auto picks bf16 for a model this size, so the next problem is the tensors themselves
      const shapes = /tensor "model\.embed_tokens\.weight" has shape \[512,64\], the config needs \[200064,3072\]/;
      expect(() => loadWeights(dir, realConfig(), { mode: 'auto' })).to.throw(shapes);
      await useBackend('cpu'); // cpu has no such limit
      expect(() => loadWeights(dir, realConfig(), { mode: 'float32' })).to.throw(shapes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a Phi-3-medium shaped config (GQA 40/10, head dim 128) expects a 7680-row fused qkv', () => {
    const medium = parseConfig({ hidden_size: 5120, intermediate_size: 17920, num_hidden_layers: 1, num_attention_heads: 40, num_key_value_heads: 10, vocab_size: 32064, max_position_embeddings: 4096 });
    expect(expectedTensors(medium).get('model.layers.0.self_attn.qkv_proj.weight')).to.deep.equal([(40 + 20) * 128, 5120]);
    expect(expectedTensors(medium).get('model.layers.0.mlp.gate_up_proj.weight')).to.deep.equal([2 * 17920, 5120]);
  });
});
