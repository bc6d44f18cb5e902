import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { loadConfig, parseConfig } from '../src/model/config.js';
import { GOLDEN_DIR, modelDir } from '../src/oracle/golden.js';
import { ConfigError } from '../src/errors.js';

const manifest = JSON.parse(readFileSync(`${GOLDEN_DIR}/manifest.json`, 'utf8'));
const real = JSON.parse(readFileSync(`${GOLDEN_DIR}/configs/phi-4-mini-instruct.json`, 'utf8'));

// Shapes of the published Phi-3 family configs (transformers-4 style, as on their model pages).
const base = { architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_act: 'silu', rms_norm_eps: 1e-5, rope_theta: 10000.0, attention_bias: false };
const phi3Mini4k = { ...base, hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32064, max_position_embeddings: 4096, original_max_position_embeddings: 4096, rope_scaling: null, sliding_window: 2047, tie_word_embeddings: false };
const factors48 = Array.from({ length: 48 }, (_, i) => 1 + i / 10);
const phi3Mini128k = { ...phi3Mini4k, max_position_embeddings: 131072, sliding_window: 262144, rope_scaling: { type: 'longrope', short_factor: factors48, long_factor: factors48.map((x) => 2 * x) } };
const phi3Medium = { ...base, hidden_size: 5120, intermediate_size: 17920, num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 10, vocab_size: 32064, max_position_embeddings: 4096, original_max_position_embeddings: 4096, rope_scaling: null, sliding_window: 2047, tie_word_embeddings: false };

function refuses(raw: object, field: RegExp): void {
  expect(() => parseConfig(raw, 'x/config.json')).to.throw(ConfigError, field);
}

describe('config', () => {
  it('reads Phi-4-mini: GQA 24/8, partial rotary 96 of 128 dims, LongRoPE with 48 factors, tied head', () => {
    const c = parseConfig(real);
    expect([c.numHeads, c.numKvHeads, c.headDim, c.rope.rotaryDim, c.numLayers]).to.deep.equal([24, 8, 128, 96, 32]);
    expect(c.rope.type).to.equal('longrope');
    expect(c.rope.shortFactor).to.have.length(48);
    expect(c.rope.originalMaxPositions).to.equal(4096);
    expect(c.tieWordEmbeddings).to.equal(true);
    expect(c.rope.attentionScaling).to.be.closeTo(Math.sqrt(1 + Math.log(32) / Math.log(4096)), 1e-15);
    expect(c.eosTokenIds).to.deep.equal([200020]);
  });

  it('derives the attention scaling transformers derives, for every golden model', () => {
    for (const [name, m] of Object.entries<any>(manifest.models)) {
      const c = loadConfig(modelDir(name));
      expect(c.rope.attentionScaling, name).to.be.closeTo(m.rotary.attention_scaling, 1e-15);
      expect(c.rope.type, name).to.equal(m.rotary.rope_type);
    }
  });

  it('reads the transformers-5 style (rope_parameters) to the same config as the transformers-4 style', () => {
    for (const [name, m] of Object.entries<any>(manifest.models)) {
      const v4 = parseConfig(m.config_written);
      const v5raw = { ...m.config_as_transformers_reads_it };
      delete v5raw.rope_scaling;
      delete v5raw.rope_theta;
      delete v5raw.original_max_position_embeddings;
      delete v5raw.partial_rotary_factor;
      expect(parseConfig(v5raw), name).to.deep.equal(v4);
    }
  });

  it('reads Phi-3-mini-4k (full rotary, MHA, sliding window, untied), -128k (LongRoPE on the full head) and medium (GQA 40/10)', () => {
    const m4k = parseConfig(phi3Mini4k);
    expect([m4k.numKvHeads, m4k.headDim, m4k.rope.rotaryDim, m4k.slidingWindow, m4k.rope.type, m4k.tieWordEmbeddings]).to.deep.equal([32, 96, 96, 2047, 'default', false]);
    expect(m4k.rope.attentionScaling).to.equal(1);
    const m128k = parseConfig(phi3Mini128k);
    expect([m128k.rope.type, m128k.rope.rotaryDim, m128k.rope.originalMaxPositions]).to.deep.equal(['longrope', 96, 4096]);
    const medium = parseConfig(phi3Medium);
    expect([medium.numHeads, medium.numKvHeads, medium.headDim]).to.deep.equal([40, 10, 128]);
    // rope_type as the key, and the legacy name "su" of the first Phi-3-128k configs
    expect(parseConfig({ ...phi3Mini128k, rope_scaling: { ...phi3Mini128k.rope_scaling, type: undefined, rope_type: 'longrope' } }).rope.type).to.equal('longrope');
    expect(parseConfig({ ...phi3Mini128k, rope_scaling: { ...phi3Mini128k.rope_scaling, type: 'su' } }).rope.type).to.equal('longrope');
  });

  it('refuses what it cannot honour, naming the field', () => {
    refuses({ ...phi3Mini128k, rope_scaling: { ...phi3Mini128k.rope_scaling, type: 'yarn' } }, /x\/config\.json: rope_scaling\.type is "yarn"/);
    refuses({ ...phi3Mini128k, rope_scaling: { ...phi3Mini128k.rope_scaling, type: undefined, rope_type: 'dynamic' } }, /rope_scaling\.rope_type is "dynamic"/);
    refuses({ ...phi3Mini4k, rope_parameters: { rope_type: 'linear', factor: 2 } }, /rope_parameters\.rope_type is "linear"/);
    refuses({ ...phi3Mini128k, rope_scaling: { ...phi3Mini128k.rope_scaling, long_factor: factors48.slice(1) } }, /rope_scaling\.long_factor has 47 entries; rotary dims \/ 2 = 48/);
    refuses({ ...real, rope_scaling: { ...real.rope_scaling, short_factor: [...factors48, 1, 2] } }, /rope_scaling\.short_factor has 50 entries/);
    refuses({ ...phi3Medium, num_key_value_heads: 12 }, /num_key_value_heads \(12\) must divide num_attention_heads \(40\)/);
    refuses({ ...phi3Medium, num_attention_heads: 48, num_key_value_heads: 8 }, /num_attention_heads \(48\) must divide hidden_size \(5120\)/);
    refuses({ ...phi3Mini4k, attention_bias: true }, /attention_bias is true/);
    refuses({ ...phi3Mini4k, mlp_bias: true }, /mlp_bias is true/);
    refuses({ ...phi3Mini4k, model_type: 'phimoe' }, /model_type is "phimoe"/);
    refuses({ ...phi3Mini4k, hidden_act: 'gelu' }, /hidden_act is "gelu"/);
    refuses({ ...phi3Mini4k, hidden_size: undefined }, /hidden_size is missing/);
    refuses({ ...phi3Mini4k, rope_scaling: { type: 'longrope', long_factor: factors48 } }, /rope_scaling\.short_factor must be a list/);
  });

  it('names the file when config.json is missing or not JSON', () => {
    expect(() => loadConfig('/nonexistent/dir')).to.throw(ConfigError, /\/nonexistent\/dir\/config\.json: cannot read/);
  });
});
