// End-to-end tests of the `phi4` command line, run as child processes exactly as a user runs it.
//
// Every bad input must give: a non-zero exit (2 for bad input), one error line on stderr that
// starts with "phi4: " and names the file, tensor or argument at fault, no stack trace, and no
// output, temporary or partial file at --out.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../weights/index.js';
import { relL2, selectPositions } from '../src/oracle/metrics.js';
import { BANNER, ROOT, expectBadInput, lines, phi4, show } from './cli-helpers.js';
import { seqAxis, tapInfo, tapNames } from '../layers/taps.js';

const PHI4_TINY = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const PHI3_TINY = path.join(ROOT, 'golden', 'models', 'phi3-mini-tiny');
const BATCH_DUMP = path.join(ROOT, 'golden', 'dumps', 'phi4-mini-tiny.batch.safetensors');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** With @tensorflow/tfjs-node installed the default backend is tensorflow; without it, wasm. */
const DEFAULT_BACKEND = fs.existsSync(path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-node')) ? 'tensorflow' : 'wasm';

/** An output path in a fresh, empty directory, so that any file left behind (temporary ones too) shows. */
function freshOut(root: string): string {
  return path.join(fs.mkdtempSync(path.join(root, 'out-')), 'dump.safetensors');
}

function expectNothingWritten(out: string): void {
  expect(fs.existsSync(out), `${out} was created`).to.equal(false);
  const dir = path.dirname(out);
  if (fs.existsSync(dir)) expect(fs.readdirSync(dir), `files left next to ${out}`).to.deep.equal([]);
}

/** Copies a golden model directory into a fresh directory under `root`. */
function copyModel(root: string, src: string): string {
  const dir = fs.mkdtempSync(path.join(root, `${path.basename(src)}-`));
  fs.cpSync(src, dir, { recursive: true });
  return dir;
}

type HeaderEntry = { dtype: string; shape: number[]; data_offsets: [number, number] };
type Header = Record<string, HeaderEntry>;

/** Rewrites a safetensors header in place (space-padded to 8 bytes, length prefix updated); data untouched. */
function editHeader(file: string, edit: (h: Header) => void): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Header;
  edit(header);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const prefix = Buffer.alloc(8 + padded, 0x20);
  prefix.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(prefix, 8);
  fs.writeFileSync(file, Buffer.concat([prefix, buf.subarray(8 + n)]));
}

/** Rewrites a safetensors file with its tensors passed through `change` (raw bytes, dtypes and shapes kept). */
function rewriteTensors(file: string, change: (ts: TensorToWrite[]) => TensorToWrite[]): void {
  const f = SafetensorsFile.open(file);
  let tensors: TensorToWrite[];
  try {
    tensors = f.tensors().map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: f.readBytes(t.name) }));
  } finally {
    f.close();
  }
  writeSafetensors(file, change(tensors));
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(c);
  fs.writeFileSync(file, JSON.stringify(c, null, 2));
}

describe('phi4 verify (cli)', function () {
  this.timeout(60_000); // each spawn takes ~0.5 s; mocha's default 2 s is too tight without .mocharc.json
  it(`runs a golden case on the default backend (${DEFAULT_BACKEND}) and prints PASS`, () => {
    const r = phi4(['verify', '--case', 'phi4-mini-tiny.short']);
    expect(r.status, show(r)).to.equal(0);
    expect(lines(r.stderr)[0]).to.match(BANNER).and.include(`backend ${DEFAULT_BACKEND}`);
    expect(r.stdout).to.match(/^PASS\b/m);
    expect(r.stdout).not.to.match(/FAIL/);
  });

  it('--backend cpu runs phi3-mini-tiny.long on cpu', () => {
    const r = phi4(['verify', '--backend', 'cpu', '--case', 'phi3-mini-tiny.long']);
    expect(r.status, show(r)).to.equal(0);
    expect(lines(r.stderr)[0]).to.match(BANNER).and.include('backend cpu');
    expect(r.stdout).to.match(/^PASS\b/m);
  });

  it('PHI4_BACKEND=cpu picks cpu', () => {
    const r = phi4(['verify', '--case', 'phi3-mini-tiny.short'], { PHI4_BACKEND: 'cpu' });
    expect(r.status, show(r)).to.equal(0);
    expect(lines(r.stderr)[0]).to.match(BANNER).and.include('backend cpu');
    expect(r.stdout).to.match(/^PASS\b/m);
  });

  it('--backend nope exits 2 naming --backend', () => {
    expectBadInput(phi4(['verify', '--case', 'phi4-mini-tiny.short', '--backend', 'nope']), ['--backend', 'nope']);
  });

  it('--case with an unknown name exits 2 naming --case', () => {
    expectBadInput(phi4(['verify', '--case', 'no-such-case']), ['--case', 'no-such-case']);
  });
});

describe('phi4 dump (cli)', function () {
  this.timeout(60_000); // each spawn takes ~0.5 s; mocha's default 2 s is too tight without .mocharc.json
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-cli-dump-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('--ids writes the inputs, every tap as F32 with its shape, and the metadata', () => {
    const out = freshOut(tmp);
    const r = phi4(['dump', 'golden/models/phi4-mini-tiny', '--ids', '5,17,42', '--out', out]);
    expect(r.status, show(r)).to.equal(0);
    expect(lines(r.stderr)[0]).to.match(BANNER).and.include(`backend ${DEFAULT_BACKEND}`);
    expect(fs.readdirSync(path.dirname(out))).to.deep.equal([path.basename(out)]);

    // phi4-mini-tiny: H 96, 6 query heads, 2 kv heads, head dim 16, 12 rotary dims, I 256, V 1024, 4 layers
    const dims: Record<string, number> = {
      B: 1, T: 3, S: 3, H: 96, V: 1024, nh: 6, nkv: 2, d: 16, r: 12, I: 256,
      '(nh+2nkv)d': (6 + 2 * 2) * 16, 'nh*d': 96, '2I': 512,
    };
    const names = tapNames(4);
    const f = SafetensorsFile.open(out);
    try {
      expect(f.info('input_ids').dtype).to.equal('I32');
      expect(f.info('input_ids').shape).to.deep.equal([1, 3]);
      expect(Array.from(f.readInt32('input_ids'))).to.deep.equal([5, 17, 42]);
      expect(f.has('attention_mask')).to.equal(false);
      expect(f.has('position_ids')).to.equal(false);
      expect([...f.names()].sort()).to.deep.equal(['input_ids', ...names].sort());
      for (const name of names) {
        const info = f.info(name);
        const want = tapInfo(name)!.layout.split(',').map((a) => dims[a]);
        expect(info.dtype, name).to.equal('F32');
        expect(info.shape, name).to.deep.equal(want);
        expect(f.readFloat32(name).every(Number.isFinite), `${name} is finite`).to.equal(true);
      }
      expect(f.info('logits').shape).to.deep.equal([1, 3, 1024]);
      expect(f.info('layers.0.attn_probs').shape).to.deep.equal([1, 6, 3, 3]);
      expect(f.info('layers.0.k_rot').shape).to.deep.equal([1, 2, 3, 16]);
      expect(f.info('rope.cos').shape).to.deep.equal([1, 3, 12]);

      const m = f.metadata;
      expect(m.backend).to.equal(DEFAULT_BACKEND);
      expect(m.tfjs_version).to.match(/^\d+\.\d+\.\d+/);
      expect(m.project_version).to.equal(VERSION);
      expect(m.config_hash).to.match(/^[0-9a-f]{16}$/);
      expect(m.checkpoint).to.equal(PHI4_TINY);
      expect(m.format).to.equal('phi4-ts.dump');
      expect(JSON.parse(m.inputs)).to.deep.equal({ input_ids: [1, 3] });
      expect(JSON.parse(m.input_ids)).to.deep.equal([[5, 17, 42]]);
      const layouts = JSON.parse(m.layouts) as unknown;
      expect(layouts).to.be.an('object').that.is.not.an('array');
      expect(layouts).to.have.property('logits', 'B,T,V');
      expect(Object.keys(layouts as object).sort()).to.deep.equal([...names].sort());
    } finally {
      f.close();
    }
  });

  it('--inputs (a padded golden batch) writes mask and positions back unchanged and matches transformers', () => {
    const out = freshOut(tmp);
    const r = phi4(['dump', 'golden/models/phi4-mini-tiny', '--inputs', 'golden/dumps/phi4-mini-tiny.batch.safetensors', '--out', out]);
    expect(r.status, show(r)).to.equal(0);
    const gold = SafetensorsFile.open(BATCH_DUMP);
    const ours = SafetensorsFile.open(out);
    try {
      for (const name of ['input_ids', 'attention_mask', 'position_ids']) {
        expect(ours.info(name).dtype, name).to.equal('I32');
        expect(ours.info(name).shape, name).to.deep.equal(gold.info(name).shape);
        expect(Array.from(ours.readInt32(name)), name).to.deep.equal(Array.from(gold.readInt32(name)));
      }
      const mask = gold.readInt32('attention_mask');
      expect(Array.from(mask)).to.include(0); // the case really is padded
      const shape = gold.info('logits').shape;
      expect(ours.info('logits').shape).to.deep.equal(shape);
      const sel = (a: Float32Array) => selectPositions(a, shape, seqAxis('logits'), mask);
      const rel = relL2(sel(ours.readFloat32('logits')), sel(gold.readFloat32('logits')));
      expect(rel, 'rel L2 of logits at real tokens').to.be.at.most(1e-5);
    } finally {
      gold.close();
      ours.close();
    }
  });
});

describe('phi4 dump (cli): bad arguments and inputs', function () {
  this.timeout(60_000); // each spawn takes ~0.5 s; mocha's default 2 s is too tight without .mocharc.json
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-cli-args-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a token id >= vocab_size names input_ids and the id', () => {
    const out = freshOut(tmp);
    expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '5,1024', '--out', out]), ['input_ids', '1024']);
    expectNothingWritten(out);
  });

  // 4294967301 = 2^32 + 5 would wrap to token 5 in an Int32Array: it must be refused instead.
  it('a token id beyond the int32 range is refused, not wrapped', () => {
    const out = freshOut(tmp);
    expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '4294967301,17', '--out', out]), ['4294967301']);
    expectNothingWritten(out);
  });

  it('more positions than max_position_embeddings names max_position_embeddings', () => {
    const out = freshOut(tmp);
    const ids = Array.from({ length: 65 }, (_, i) => i % 512).join(',');
    expectBadInput(phi4(['dump', PHI3_TINY, '--ids', ids, '--out', out]), ['max_position_embeddings']);
    expectNothingWritten(out);
  });

  it('--ids that are not integers name --ids', () => {
    const out = freshOut(tmp);
    expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '5,x', '--out', out]), ['--ids', '"x"']);
    expectNothingWritten(out);
  });

  it('both --ids and --inputs are refused', () => {
    const out = freshOut(tmp);
    expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '5', '--inputs', BATCH_DUMP, '--out', out]), ['--ids', '--inputs']);
    expectNothingWritten(out);
  });

  it('neither --ids nor --inputs is refused', () => {
    const out = freshOut(tmp);
    expectBadInput(phi4(['dump', PHI4_TINY, '--out', out]), ['--ids', '--inputs']);
    expectNothingWritten(out);
  });

  it('a missing --out names --out', () => {
    const before = fs.readdirSync(ROOT).sort();
    expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '5,17']), ['--out']);
    expect(fs.readdirSync(ROOT).sort()).to.deep.equal(before);
  });

  it('a nonexistent checkpoint directory is named', () => {
    const out = freshOut(tmp);
    const missing = path.join(tmp, 'no-such-model');
    expectBadInput(phi4(['dump', missing, '--ids', '5', '--out', out]), [missing]);
    expectNothingWritten(out);
  });

  it('--inputs pointing to a text file names that file', () => {
    const out = freshOut(tmp);
    const txt = path.join(tmp, 'inputs.txt');
    fs.writeFileSync(txt, 'this is a text file, not safetensors\n5,17,42\n');
    expectBadInput(phi4(['dump', PHI4_TINY, '--inputs', txt, '--out', out]), [txt]);
    expectNothingWritten(out);
  });

  it('--inputs file without input_ids names the file and input_ids', () => {
    const out = freshOut(tmp);
    const file = path.join(tmp, 'mask-only.safetensors');
    writeSafetensors(file, [{ name: 'attention_mask', dtype: 'I32', shape: [1, 3], data: Int32Array.from([1, 1, 1]) }]);
    expectBadInput(phi4(['dump', PHI4_TINY, '--inputs', file, '--out', out]), [file, 'input_ids']);
    expectNothingWritten(out);
  });

  it('an unknown command is named', () => {
    expectBadInput(phi4(['frobnicate', '--out', path.join(tmp, 'x.safetensors')]), ['frobnicate']);
    expect(fs.existsSync(path.join(tmp, 'x.safetensors'))).to.equal(false);
  });

  it('an unknown option is named', () => {
    const out = freshOut(tmp);
    expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '5', '--out', out, '--frob', '1']), ['--frob']);
    expectNothingWritten(out);
  });
});

describe('phi4 dump (cli): corrupt checkpoints', function () {
  this.timeout(60_000); // each spawn takes ~0.5 s; mocha's default 2 s is too tight without .mocharc.json
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-cli-ckpt-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Runs a dump of `dir` and checks the one-line error names everything in `names`. */
  function dumpFails(dir: string, names: string[]): string {
    const out = freshOut(tmp);
    const line = expectBadInput(phi4(['dump', dir, '--ids', '5,17,42', '--out', out]), names);
    expectNothingWritten(out);
    return line;
  }

  it('a truncated shard names that shard', () => {
    const dir = copyModel(tmp, PHI4_TINY);
    const shard = path.join(dir, 'model-00002-of-00002.safetensors');
    fs.truncateSync(shard, fs.statSync(shard).size - 1000);
    dumpFails(dir, [shard, 'truncated']);
  });

  it('header offsets past the end of the file name the file and tensor', () => {
    const dir = copyModel(tmp, PHI3_TINY);
    const file = path.join(dir, 'model.safetensors');
    let last = '';
    editHeader(file, (h) => {
      // the tensor whose bytes come last: one more row, its end offset moved on to match
      const [name, e] = Object.entries(h).filter(([k]) => k !== '__metadata__')
        .reduce((a, b) => (b[1].data_offsets[1] > a[1].data_offsets[1] ? b : a));
      const row = (e.data_offsets[1] - e.data_offsets[0]) / e.shape[0];
      e.shape[0] += 1;
      e.data_offsets[1] += row;
      last = name;
    });
    dumpFails(dir, [file, `"${last}"`, 'past']);
  });

  it('overlapping data ranges name the file and both tensors', () => {
    const dir = copyModel(tmp, PHI3_TINY);
    const file = path.join(dir, 'model.safetensors');
    const a = 'model.layers.0.input_layernorm.weight';
    const b = 'model.layers.0.post_attention_layernorm.weight';
    editHeader(file, (h) => {
      h[b].data_offsets = [...h[a].data_offsets]; // same size: [64] BF16 each
    });
    dumpFails(dir, [file, 'overlap', `"${a}"`, `"${b}"`]);
  });

  it('a header shape that does not match the data range names the file and tensor', () => {
    const dir = copyModel(tmp, PHI3_TINY);
    const file = path.join(dir, 'model.safetensors');
    const name = 'model.layers.1.mlp.down_proj.weight';
    editHeader(file, (h) => {
      h[name].shape = [64, 96]; // was [64, 192]
    });
    dumpFails(dir, [file, `"${name}"`, 'mismatch']);
  });

  it('a consistent tensor with the wrong shape for the config names the file and tensor', () => {
    const dir = copyModel(tmp, PHI3_TINY);
    const file = path.join(dir, 'model.safetensors');
    editHeader(file, (h) => {
      h['model.norm.weight'].shape = [2, 32]; // same bytes as [64]
    });
    dumpFails(dir, [file, '"model.norm.weight"', '[2,32]', '[64]']);
  });

  it('a missing tensor is named', () => {
    const dir = copyModel(tmp, PHI3_TINY);
    rewriteTensors(path.join(dir, 'model.safetensors'), (ts) => ts.filter((t) => t.name !== 'model.norm.weight'));
    dumpFails(dir, [dir, '"model.norm.weight"', 'missing']);
  });

  it('an unexpected extra tensor is named', () => {
    const dir = copyModel(tmp, PHI3_TINY);
    const file = path.join(dir, 'model.safetensors');
    rewriteTensors(file, (ts) => [...ts, { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
    dumpFails(dir, [file, '"model.layers.0.mlp.up_proj.weight"', 'unexpected']);
  });

  it('an unsupported rope type names rope_scaling.type', () => {
    const dir = copyModel(tmp, PHI4_TINY);
    editConfig(dir, (c) => {
      (c.rope_scaling as Record<string, unknown>).type = 'yarn';
    });
    dumpFails(dir, [path.join(dir, 'config.json'), 'rope_scaling.type', 'yarn']);
  });

  it('num_key_value_heads that does not divide num_attention_heads is named', () => {
    const dir = copyModel(tmp, PHI4_TINY);
    editConfig(dir, (c) => {
      c.num_key_value_heads = 4; // 6 query heads
    });
    dumpFails(dir, [path.join(dir, 'config.json'), 'num_key_value_heads', 'num_attention_heads']);
  });
});

describe('phi4 dump (cli): the output is written atomically', function () {
  this.timeout(60_000); // each spawn takes ~0.5 s; mocha's default 2 s is too tight without .mocharc.json
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-cli-out-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // The error must name --out's path, not the temporary file the writer would have created.
  it('--out in a directory that does not exist: one line naming the path, nothing created', () => {
    const parent = fs.mkdtempSync(path.join(tmp, 'parent-'));
    const out = path.join(parent, 'no-such-dir', 'dump.safetensors');
    const line = expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '5,17', '--out', out]), [out]);
    expect(line, 'the error names --out, not the temporary file').not.to.include('.tmp-');
    expect(fs.readdirSync(parent)).to.deep.equal([]);
  });

  // Renaming the temporary file onto a directory would fail late with EISDIR: refused up front.
  it('--out naming an existing directory: one line naming the path, the directory untouched', () => {
    const parent = fs.mkdtempSync(path.join(tmp, 'parent-'));
    const out = path.join(parent, 'a-directory');
    fs.mkdirSync(out);
    const line = expectBadInput(phi4(['dump', PHI4_TINY, '--ids', '5,17', '--out', out]), [out]);
    expect(line, 'the error names --out, not the temporary file').not.to.include('.tmp-');
    expect(fs.readdirSync(parent)).to.deep.equal(['a-directory']);
    expect(fs.readdirSync(out)).to.deep.equal([]);
  });
});
