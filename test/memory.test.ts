// The memory calculator (src/model/memory.ts, `phi4 memory`) against counts made here, independently,
// from the safetensors headers themselves (parsed with fs in this file, not through weights/):
// the bundled tiny checkpoints, and a synthetic checkpoint of Phi-4-mini's full widths (hidden
// 3072, intermediate 8192, vocab 200064, 24/8 heads of 128) with 2 layers, written as a header
// plus a sparse data section so that it costs no disk and no time.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../src/model/config.js';
import { type MemoryReport, type SchemeId, kvCacheBytes, memoryReport, resolveMemorySource, useMoreBits } from '../src/model/memory.js';
import { ROOT, phi4 } from './cli-helpers.js';

/** llama.cpp's use_more_bits(i, n), written out: i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2 (integer division). */
const moreBits = (i: number, n: number) => i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;

const MODELS = path.join(ROOT, 'golden', 'models');
const REAL_CONFIG = path.join(ROOT, 'golden', 'configs', 'phi-4-mini-instruct.json');

type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };

/** name -> header entry, over every shard of a checkpoint directory, read with fs only. */
function headers(dir: string): { tensors: Map<string, Entry>; totalSize?: number } {
  const index = path.join(dir, 'model.safetensors.index.json');
  let files = ['model.safetensors'];
  let totalSize: number | undefined;
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    const idx = JSON.parse(fs.readFileSync(index, 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    files = [...new Set(Object.values(idx.weight_map))];
    totalSize = idx.metadata.total_size;
  }
  const tensors = new Map<string, Entry>();
  for (const f of files) {
    const fd = fs.openSync(path.join(dir, f), 'r');
    try {
      const len = Buffer.alloc(8);
      fs.readSync(fd, len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE(0));
      const json = Buffer.alloc(n);
      fs.readSync(fd, json, 0, n, 8);
      for (const [k, v] of Object.entries(JSON.parse(json.toString('utf8')) as Record<string, Entry>)) if (k !== '__metadata__') tensors.set(k, v);
    } finally {
      fs.closeSync(fd);
    }
  }
  return { tensors, totalSize };
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const BYTES: Record<string, number> = { BF16: 2, F16: 2, F32: 4 };

/** The tensors a tied model uses: a stored lm_head copy is not counted again. */
function counted(dir: string, tied: boolean): [string, Entry][] {
  return [...headers(dir).tensors].filter(([n]) => !(tied && n === 'lm_head.weight') && !n.endsWith('rotary_emb.inv_freq'));
}

/** Expected bytes per scheme, each rule written out here from the formats' definitions. */
function expectedWeights(tensors: [string, Entry][], layers: number, tied: boolean): Record<SchemeId, number> {
  const blocks = (shape: number[], per: number, bytes: number, fallback: [number, number][] = []) => {
    const row = shape[shape.length - 1];
    for (const [p, b] of [[per, bytes] as [number, number], ...fallback]) if (row % p === 0) return (numel(shape) / p) * b;
    return 2 * numel(shape);
  };
  const q4k = (s: number[]) => blocks(s, 256, 144, [[32, 22]]);
  const q5k = (s: number[]) => blocks(s, 256, 176, [[32, 24]]);
  const q6k = (s: number[]) => blocks(s, 256, 210, [[32, 34]]);
  const e: Record<SchemeId, number> = { fp32: 0, bf16: 0, q8_0: 0, q4_0: 0, q4_k_m: 0, int4_g128: 0 };
  for (const [name, { shape }] of tensors) {
    const n = numel(shape);
    e.fp32 += 4 * n;
    e.bf16 += 2 * n;
    if (shape.length === 1) {
      e.q8_0 += 4 * n;
      e.q4_0 += 4 * n;
      e.q4_k_m += 4 * n;
      e.int4_g128 += 2 * n;
      continue;
    }
    e.q8_0 += blocks(shape, 32, 34);
    e.q4_0 += blocks(shape, 32, 18);
    const layer = Number(/layers\.(\d+)\./.exec(name)?.[1] ?? -1);
    if (name === 'lm_head.weight' || (tied && name === 'model.embed_tokens.weight')) e.q4_k_m += q6k(shape);
    else if (name.includes('qkv_proj')) e.q4_k_m += q5k(shape);
    else if (name.includes('down_proj') && moreBits(layer, layers)) e.q4_k_m += q6k(shape);
    else e.q4_k_m += q4k(shape);
    if (layer < 0) e.int4_g128 += 2 * n;
    else {
      const [out, inp] = shape;
      const groups = Math.ceil(inp / 128);
      e.int4_g128 += (out * inp) / 2 /* nibbles */ + out * groups * 2 /* fp16 scales */ + (out * groups) / 2 /* 4-bit zeros */;
    }
  }
  return e;
}

function checkAgainstHeaders(r: MemoryReport, dir: string): void {
  const cfg = r.config;
  const tensors = counted(dir, cfg.tieWordEmbeddings);
  const params = tensors.reduce((a, [, t]) => a + numel(t.shape), 0);
  const stored = tensors.reduce((a, [, t]) => a + t.data_offsets[1] - t.data_offsets[0], 0);
  expect(r.parameters, 'parameters').to.equal(params);
  expect(r.checkpoint!.storedBytes, 'stored bytes').to.equal(stored);
  const dtypes = new Set(tensors.map(([, t]) => t.dtype));
  if (dtypes.size === 1 && dtypes.has('BF16')) expect(2 * r.parameters, 'bf16 bytes = the stored bf16 checkpoint').to.equal(stored);
  const { totalSize } = headers(dir);
  if (totalSize !== undefined && tensors.length === headers(dir).tensors.size) expect(2 * r.parameters, 'bf16 bytes = index total_size').to.equal(totalSize);
  const want = expectedWeights(tensors, cfg.numLayers, cfg.tieWordEmbeddings);
  for (const row of r.rows) expect(row.weights.bytes, row.scheme.id).to.equal(want[row.scheme.id]);
  // KV cache from the header: value columns of one layer's qkv are nkv * d.
  const qkv = tensors.find(([n]) => n === 'model.layers.0.self_attn.qkv_proj.weight')![1].shape[0];
  const kvCols = (qkv - cfg.numHeads * cfg.headDim) / 2;
  r.contexts.forEach((c, i) => {
    expect(r.kvCache[i]).to.equal(2 * cfg.numLayers * kvCols * c * r.batch * 2);
    expect(r.rows[0].total[i]).to.equal(want.fp32 + r.kvCache[i] + r.workspace[i]);
  });
}

describe('memory: weights, KV cache and totals from safetensors headers', () => {
  for (const model of fs.readdirSync(MODELS)) {
    it(`${model}: every row equals the count made from its headers`, () => {
      const dir = path.join(MODELS, model);
      const src = resolveMemorySource(dir);
      const ctx = Math.min(64, src.config.maxPositions);
      const r = memoryReport(src.config, { contexts: [1, ctx], batch: 2, kvDtype: 'bf16' }, dir, src.checkpoint);
      checkAgainstHeaders(r, dir);
    });
  }

  describe('a synthetic checkpoint of Phi-4-mini full width, 2 layers', function () {
    this.timeout(20_000);
    let root: string;
    let dir: string;
    before(() => {
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-memory-'));
      dir = path.join(root, 'phi4-full-width-2l');
      fs.mkdirSync(dir);
      const cfg = JSON.parse(fs.readFileSync(REAL_CONFIG, 'utf8')) as Record<string, unknown>;
      cfg.num_hidden_layers = 2;
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
      const H = 3072, I = 8192, V = 200064, q = 24 * 128, kv = 8 * 128;
      const shapes: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]];
      for (let i = 0; i < 2; i++) {
        const p = `model.layers.${i}.`;
        shapes.push([p + 'input_layernorm.weight', [H]], [p + 'self_attn.qkv_proj.weight', [q + 2 * kv, H]], [p + 'self_attn.o_proj.weight', [H, q]],
          [p + 'post_attention_layernorm.weight', [H]], [p + 'mlp.gate_up_proj.weight', [2 * I, H]], [p + 'mlp.down_proj.weight', [H, I]]);
      }
      shapes.push(['model.norm.weight', [H]], ['lm_head.weight', [V, H]]); // a stored copy of the tied head
      const header: Record<string, Entry> = {};
      let off = 0;
      for (const [name, shape] of shapes) {
        header[name] = { dtype: 'BF16', shape, data_offsets: [off, off + 2 * numel(shape)] };
        off += 2 * numel(shape);
      }
      const json = Buffer.from(JSON.stringify(header));
      const pad = Math.ceil(json.length / 8) * 8;
      const prefix = Buffer.alloc(8 + pad, 0x20);
      prefix.writeBigUInt64LE(BigInt(pad));
      json.copy(prefix, 8);
      const file = path.join(dir, 'model.safetensors');
      fs.writeFileSync(file, prefix);
      fs.truncateSync(file, prefix.length + off); // sparse: the data section exists without being written
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    it('parameters, bf16 bytes and every quantized row equal the header counts; the stored head copy counts once', () => {
      const src = resolveMemorySource(dir);
      const r = memoryReport(src.config, { contexts: [4096, 131072], batch: 1, kvDtype: 'bf16' }, dir, src.checkpoint);
      checkAgainstHeaders(r, dir);
      // One decoder layer of Phi-4-mini, by hand: qkv 5120x3072, o 3072x3072, gate_up 16384x3072, down 3072x8192, 2 norms.
      expect(r.parameters).to.equal(200064 * 3072 + 2 * (5120 * 3072 + 3072 * 3072 + 16384 * 3072 + 3072 * 8192 + 2 * 3072) + 3072);
      expect(r.rows.find((x) => x.scheme.id === 'q4_k_m')!.weights.byType).to.have.keys('F32', 'Q4_K', 'Q5_K', 'Q6_K');
    });

    it('phi4 memory --json prints the same figures', function () {
      const run = phi4(['memory', dir, '--json', '--context', '4096']);
      expect(run.status, run.stderr).to.equal(0);
      const j = JSON.parse(run.stdout) as { parameters: number; bf16Bytes: number; rows: { scheme: string; weightBytes: number }[] };
      const tensors = counted(dir, true);
      const params = tensors.reduce((a, [, t]) => a + numel(t.shape), 0);
      expect(j.parameters).to.equal(params);
      expect(j.bf16Bytes).to.equal(2 * params);
      const want = expectedWeights(tensors, 2, true);
      for (const row of j.rows) expect(row.weightBytes, row.scheme).to.equal(want[row.scheme as SchemeId]);
    });
  });

  it('the default is the real Phi-4-mini config: 3,836,021,760 parameters (the published count), 2 bytes each in bf16', () => {
    const src = resolveMemorySource('microsoft/Phi-4-mini-instruct');
    const r = memoryReport(src.config, { contexts: [131072], batch: 1, kvDtype: 'bf16' }, 'x');
    expect(r.parameters).to.equal(3_836_021_760);
    expect(2 * r.parameters).to.equal(7_672_043_520);
    // 2 (k and v) * 32 layers * 8 kv heads * 128 dims * 131072 positions * 2 bytes = 16 GiB
    expect(r.kvCache[0]).to.equal(16 * 2 ** 30);
    expect(kvCacheBytes(loadConfig(REAL_CONFIG), 4096, 1, 'fp8')).to.equal(256 * 2 ** 20);
  });

  it("Q4_K_M's down_proj layers with 6 bits for 32 layers are the first and last 4 and every third between", () => {
    const six = [...Array(32).keys()].filter((i) => useMoreBits(i, 32));
    expect(six).to.deep.equal([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
  });

  it('refuses a context beyond max_position_embeddings, naming --context', () => {
    const src = resolveMemorySource('microsoft/Phi-4-mini-instruct');
    expect(() => memoryReport(src.config, { contexts: [131073], batch: 1, kvDtype: 'bf16' }, 'x')).to.throw(/--context: 131073/);
  });

  it('refuses an unknown source and bad flags with one line, exit 2', () => {
    for (const args of [['nonexistent/repo'], ['--kv-dtype', 'int3']]) {
      const run = phi4(['memory', ...args]);
      expect(run.status, run.stderr).to.equal(2);
      expect(run.stderr.trim().split('\n')).to.have.length(1);
      expect(run.stderr).to.match(/^phi4: /);
    }
  });
});
