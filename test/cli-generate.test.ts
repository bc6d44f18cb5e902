// `phi4 generate` end to end, run as a child process as a user runs it: the golden ids and step
// logits through --out, text in and out through a checkpoint that has a tokenizer, a repo id
// through a fake Hugging Face cache, and the one-line errors.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { getEncoding } from 'js-tiktoken';
import { F32_TOLERANCE, dumpPath } from '../src/oracle/golden.js';
import { relL2 } from '../src/oracle/metrics.js';
import { SafetensorsFile, writeSafetensors } from '../weights/index.js';
import { rand } from './helpers.js';
import { writePhi4StyleTokenizer } from './o200k.js';
import { ROOT, expectBadInput, phi4, show } from './cli-helpers.js';

const TINY = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const CHAT_TEMPLATE = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'phi4-mini-style.chat_template.jinja'), 'utf8');

/**
 * A random one-layer checkpoint with Phi-4-mini's vocabulary size (200064), hidden 16, so that
 * its special-token ids exist, plus the Phi-4-mini-style tokenizer and chat template.
 */
function tokenizerCheckpoint(dir: string): void {
  const V = 200064, H = 16, nh = 2, nkv = 1, d = 8, I = 32;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    architectures: ['Phi3ForCausalLM'], model_type: 'phi3', hidden_act: 'silu', vocab_size: V, hidden_size: H,
    intermediate_size: I, num_hidden_layers: 1, num_attention_heads: nh, num_key_value_heads: nkv,
    max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true,
    bos_token_id: 199999, eos_token_id: [200020, 199999], pad_token_id: 199999,
  }));
  let seed = 1;
  const w = (name: string, shape: number[], scale = 0.5) => ({
    name, dtype: 'F32' as const, shape, data: rand(shape.reduce((a, b) => a * b), seed++).map((x) => x * scale),
  });
  writeSafetensors(path.join(dir, 'model.safetensors'), [
    w('model.embed_tokens.weight', [V, H]),
    { name: 'model.layers.0.input_layernorm.weight', dtype: 'F32', shape: [H], data: new Float32Array(H).fill(1) },
    w('model.layers.0.self_attn.qkv_proj.weight', [(nh + 2 * nkv) * d, H]),
    w('model.layers.0.self_attn.o_proj.weight', [H, nh * d]),
    { name: 'model.layers.0.post_attention_layernorm.weight', dtype: 'F32', shape: [H], data: new Float32Array(H).fill(1) },
    w('model.layers.0.mlp.gate_up_proj.weight', [2 * I, H]),
    w('model.layers.0.mlp.down_proj.weight', [H, I]),
    { name: 'model.norm.weight', dtype: 'F32', shape: [H], data: new Float32Array(H).fill(1) },
  ]);
  writePhi4StyleTokenizer(dir, CHAT_TEMPLATE);
}

function readOut(file: string) {
  const f = SafetensorsFile.open(file);
  try {
    return {
      ids: Array.from(f.readInt32('generated_ids')),
      logits: f.readFloat32('step_logits'),
      logitsShape: f.info('step_logits').shape,
      prompt: Array.from(f.readInt32('prompt_ids')),
    };
  } finally {
    f.close();
  }
}

describe('phi4 generate (cli)', function () {
  this.timeout(120_000);
  let tmp: string;
  let golden: { prompt: number[]; ids: Record<string, number[]>; logits: Record<string, Float32Array> };
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-gen-'));
    const f = SafetensorsFile.open(dumpPath('phi4-mini-tiny.generate'));
    golden = {
      prompt: Array.from(f.readInt32('prompt_ids')),
      ids: { cached: Array.from(f.readInt32('generated_ids')), nocache: Array.from(f.readInt32('generated_ids_nocache')) },
      logits: { cached: f.readFloat32('step_logits'), nocache: f.readFloat32('step_logits_nocache') },
    };
    f.close();
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const [policy, which] of [['default', 'nocache'], ['stale', 'cached']] as const) {
    it(`--rope-policy ${policy} streams the golden ids and writes the golden step logits (--out)`, () => {
      const out = path.join(tmp, `${policy}.safetensors`);
      // the tiny checkpoint has a tokenizer, so the stream is text: --json gives the ids
      const r = phi4(['generate', TINY, '--ids', golden.prompt.join(','), '--max-new-tokens', '10', '--rope-policy', policy, '--out', out, '--backend', 'wasm', '--json']);
      expect(r.status, show(r)).to.equal(0);
      expect(JSON.parse(r.stdout).ids).to.deep.equal(golden.ids[which]);
      const o = readOut(out);
      expect(o.ids).to.deep.equal(golden.ids[which]);
      expect(o.prompt).to.deep.equal(golden.prompt);
      expect(o.logitsShape).to.deep.equal([10, 1024]);
      for (let i = 0; i < 10; i++) {
        const a = o.logits.subarray(i * 1024, (i + 1) * 1024);
        expect(relL2(a, golden.logits[which].subarray(i * 1024, (i + 1) * 1024)), `step ${i}`).to.be.at.most(F32_TOLERANCE);
      }
      if (policy === 'default') expect(r.stderr).to.include('cache rebuilt with the long factors at step 5');
      expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).to.deep.equal([]);
    });
  }

  describe('with a tokenizer', () => {
    let ckpt: string;
    const enc = getEncoding('o200k_base');
    before(() => {
      ckpt = path.join(tmp, 'with-tokenizer');
      tokenizerCheckpoint(ckpt);
    });

    it('--chat with --system renders the template, tokenizes it, prints text and stops at <|end|> or the limit', () => {
      const out = path.join(tmp, 'chat.safetensors');
      const r = phi4(['generate', ckpt, '--chat', 'Hello, world', '--system', 'Be brief.', '--max-new-tokens', '6', '--out', out, '--backend', 'wasm']);
      expect(r.status, show(r)).to.equal(0);
      const o = readOut(out);
      expect(o.prompt).to.deep.equal([200022, ...enc.encode('Be brief.'), 200020, 200021, ...enc.encode('Hello, world'), 200020, 200019]);
      const text = enc.decode(o.ids.filter((i) => i < 199999)); // specials are skipped in the printed text
      expect(r.stdout).to.equal(text + '\n');
      expect(o.ids.length === 6 || [200020, 199999].includes(o.ids.at(-1)!)).to.equal(true);
    });

    it('--prompt encodes the text as o200k does; a repo id resolves through $HF_HOME', () => {
      const hf = path.join(tmp, 'hf');
      const snap = path.join(hf, 'hub', 'models--microsoft--Phi-4-mini-instruct', 'snapshots', '0123abcd');
      fs.mkdirSync(path.dirname(snap), { recursive: true });
      fs.symlinkSync(ckpt, snap);
      fs.mkdirSync(path.join(hf, 'hub', 'models--microsoft--Phi-4-mini-instruct', 'refs'));
      fs.writeFileSync(path.join(hf, 'hub', 'models--microsoft--Phi-4-mini-instruct', 'refs', 'main'), '0123abcd');
      const out = path.join(tmp, 'prompt.safetensors');
      const r = phi4(['generate', 'microsoft/Phi-4-mini-instruct', '--prompt', 'The capital of France is', '--max-new-tokens', '4',
        '--temperature', '1.5', '--seed', '7', '--out', out, '--backend', 'wasm'], { HF_HOME: hf });
      expect(r.status, show(r)).to.equal(0);
      const o = readOut(out);
      expect(o.prompt).to.deep.equal(enc.encode('The capital of France is'));
      expect(r.stdout).to.equal(enc.decode(o.ids.filter((i) => i < 199999)) + '\n');
    });
    it('walkthrough --prompt, memory and dump take the same repo id through the cache', () => {
      const hf = path.join(tmp, 'hf-others');
      const repo = path.join(hf, 'hub', 'models--microsoft--Phi-4-mini-instruct');
      fs.mkdirSync(path.join(repo, 'snapshots'), { recursive: true });
      fs.symlinkSync(ckpt, path.join(repo, 'snapshots', 'feedbeef'));
      const env = { HF_HOME: hf };
      const ids = enc.encode('Hello, world');

      const w = phi4(['walkthrough', 'microsoft/Phi-4-mini-instruct', '--prompt', 'Hello, world', '--backend', 'wasm'], env);
      expect(w.status, show(w)).to.equal(0);
      expect(w.stdout).to.include(`input_ids (${ids.length}): ${ids.join(' ')}`);

      const m = phi4(['memory', 'microsoft/Phi-4-mini-instruct', '--context', '4096', '--json'], env);
      expect(m.status, show(m)).to.equal(0);
      const V = 200064, H = 16, d = 8, I = 32; // tokenizerCheckpoint's shapes, counted by hand
      const params = V * H + H + (2 + 2 * 1) * d * H + H * 2 * d + H + 2 * I * H + H * I + H;
      expect(m.stdout).to.include(`${params}`);

      const out = path.join(tmp, 'repo-dump.safetensors');
      const d2 = phi4(['dump', 'microsoft/Phi-4-mini-instruct', '--ids', ids.join(','), '--out', out, '--backend', 'wasm'], env);
      expect(d2.status, show(d2)).to.equal(0);
      const f = SafetensorsFile.open(out);
      try {
        expect(Array.from(f.readInt32('input_ids'))).to.deep.equal(ids);
      } finally {
        f.close();
      }
    });
  });

  describe('errors: one line, exit 2, nothing written', () => {
    const out = () => path.join(fs.mkdtempSync(path.join(tmp, 'err-')), 'x.safetensors');
    const gone = (o: string) => expect(fs.readdirSync(path.dirname(o))).to.deep.equal([]);

    it('a prompt longer than max_position_embeddings', () => {
      const o = out();
      const r = phi4(['generate', TINY, '--ids', Array(1025).fill(5).join(','), '--max-new-tokens', '1', '--out', o]);
      expectBadInput(r, ['prompt', '1025', 'max_position_embeddings = 1024']);
      gone(o);
    });

    it('prompt + --max-new-tokens past max_position_embeddings', () => {
      const r = phi4(['generate', TINY, '--ids', '5,17', '--max-new-tokens', '1023']);
      expectBadInput(r, ['--max-new-tokens', '1025', 'max_position_embeddings = 1024']);
    });

    it('an unknown repo id, saying where it looked', () => {
      const r = phi4(['generate', 'microsoft/Phi-4-mini-instruct', '--prompt', 'hi', '--max-new-tokens', '1'], { HF_HOME: path.join(tmp, 'empty-hf') });
      expectBadInput(r, ['microsoft/Phi-4-mini-instruct', path.join(tmp, 'empty-hf', 'hub', 'models--microsoft--Phi-4-mini-instruct', 'snapshots')]);
    });

    it('--prompt on a checkpoint without a tokenizer', () => {
      const o = out();
      const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-notok-'));
      for (const f of fs.readdirSync(TINY).filter((n) => !n.startsWith('tokenizer'))) fs.copyFileSync(path.join(TINY, f), path.join(bare, f));
      const r = phi4(['generate', bare, '--prompt', 'hi', '--max-new-tokens', '1', '--out', o]);
      fs.rmSync(bare, { recursive: true, force: true });
      expectBadInput(r, ['--prompt', 'tokenizer.json']);
      gone(o);
    });

    it('bad options (the others are checked in test/generate.test.ts and test/sampling.test.ts)', () => {
      expectBadInput(phi4(['generate', TINY, '--ids', '5', '--max-new-tokens', '2', '--rope-policy', 'sometimes']), ['--rope-policy', 'sometimes']);
      expectBadInput(phi4(['generate', TINY, '--ids', '5', '--prompt', 'x', '--max-new-tokens', '2']), ['--ids', '--prompt']);
      expectBadInput(phi4(['generate', TINY, '--ids', '5']), ['--max-new-tokens']);
    });
  });
});
