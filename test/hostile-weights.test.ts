// Issue 12, items 1, 2, 5 and 7: hostile safetensors headers, index files and configs are refused
// with one WeightsError / ConfigError naming the file, quickly and without a stack overflow,
// and the reader is as strict as the reference Rust crate where the issue found it lenient.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { CONFIG_LIMITS, loadConfig, parseConfig } from '../src/model/config.js';
import { Checkpoint, MAX_DEPTH, MAX_KEY_CHARS, SafetensorsFile, WeightsError } from '../weights/index.js';
import { ROOT } from './cli-helpers.js';
import { ConfigError } from '../src/errors.js';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-hostile-'));
const PHI4_CONFIG = JSON.parse(fs.readFileSync(path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny', 'config.json'), 'utf8'));
let n = 0;

/** Writes an 8-byte length, `header` and `data` bytes to a fresh file. */
function file(header: string, data = 0): string {
  const h = Buffer.from(header, 'utf8');
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(BigInt(h.length));
  const f = path.join(TMP, `h${n++}.safetensors`);
  fs.writeFileSync(f, Buffer.concat([p, h, Buffer.alloc(data)]));
  return f;
}

const entry = (shape: string, offsets: string, dtype = 'F32') => `{"dtype":"${dtype}","shape":${shape},"data_offsets":${offsets}}`;

function refused(f: string, ...parts: string[]): string {
  let err: unknown;
  try {
    SafetensorsFile.open(f).close();
  } catch (e) {
    err = e;
  }
  expect(err, `${f} should be refused`).to.be.instanceOf(WeightsError);
  const msg = (err as Error).message;
  expect(msg).to.include(f);
  expect(msg).not.to.include('\n');
  for (const p of parts) expect(msg).to.include(p);
  return msg;
}

function accepted(f: string): SafetensorsFile {
  const sf = SafetensorsFile.open(f);
  sf.close();
  return sf;
}

after(() => fs.rmSync(TMP, { recursive: true, force: true }));

describe('hostile safetensors headers (issue 12)', () => {
  it('refuses JSON nested past the depth limit anywhere in the header, without a stack overflow', () => {
    const deep = (k: number) => '['.repeat(k) + ']'.repeat(k);
    refused(file(`{"a":${entry(deep(5000), '[0,0]')}}`), `nested deeper than ${MAX_DEPTH}`);
    refused(file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":${deep(200_000)}}}`), 'nested deeper');
    refused(file(`{"__metadata__":{"k":${'{"k":'.repeat(3000)}1${'}'.repeat(3000)}}}`), 'nested deeper');
    // just inside the limit an unknown field is ignored, as serde ignores it
    accepted(file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":${deep(MAX_DEPTH - 2)}}}`));
  });

  it('refuses a 100 MB header of brackets quickly and without gigabytes', () => {
    const f = path.join(TMP, 'brackets.safetensors');
    const body = Buffer.alloc(100_000_000, 0x5b);
    body[0] = 0x7b;
    const p = Buffer.alloc(8);
    p.writeBigUInt64LE(BigInt(body.length));
    fs.writeFileSync(f, Buffer.concat([p, body]));
    refused(f, 'not valid JSON'); // the message of the depth-limited parse, not of JSON.parse's own failure
  });

  it('refuses more JSON values than the limit (1.5 M zero-size tensors) instead of building them all', () => {
    // 60,000 zero-size tensors of rank 40: 2.6 M values, refused at the two-millionth
    const shape = `[${Array(40).fill(0).join(',')}]`;
    const parts: string[] = [];
    for (let i = 0; i < 60_000; i++) parts.push(`"t${i}":{"dtype":"F32","shape":${shape},"data_offsets":[0,0]}`);
    refused(file(`{${parts.join(',')}}`), 'more than 2000000 JSON values'); // the counting limit, not a timing
  });

  it('refuses a tensor name longer than the limit, and quotes at most a bounded part of it', () => {
    const msg = refused(file(`{"${'n'.repeat(99_000)}":${entry('[1]', '[0,4]')}}`, 4), `longer than ${MAX_KEY_CHARS}`);
    expect(msg.length).to.be.below(500);
    accepted(file(`{"${'n'.repeat(MAX_KEY_CHARS)}":${entry('[1]', '[0,4]')}}`, 4));
  });

  it('refuses non-canonical integers in shapes and offsets, as the Rust crate does', () => {
    for (const bad of ['2.0', '1e0', '-0', '1E0', '0.5', '-1', '"1"', 'true', 'null']) {
      refused(file(`{"a":${entry(`[${bad}]`, '[0,4]')}}`, 4), 'canonical non-negative integers', bad);
      refused(file(`{"a":${entry('[1]', `[0,${bad === '-0' ? '-0' : bad}]`)}}`, 4), 'data_offsets');
    }
    refused(file(`{"a":${entry('[1]', '[0.0,4]')}}`, 4), '0.0');
  });

  it('refuses duplicate keys at every level', () => {
    refused(file(`{"a":${entry('[1]', '[0,4]')},"a":${entry('[1]', '[0,4]')}}`, 4), 'duplicate key "a"');
    refused(file(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4), 'duplicate key "dtype"');
    refused(file(`{"__metadata__":{"k":"1","k":"2"},"a":${entry('[1]', '[0,4]')}}`, 4), 'duplicate key "k"');
    refused(file(`{"__metadata__":{},"__metadata__":{},"a":${entry('[1]', '[0,4]')}}`, 4), 'duplicate key "__metadata__"');
  });

  it('refuses leading whitespace before "{" and accepts trailing padding', () => {
    refused(file(` {"a":${entry('[1]', '[0,4]')}}`, 4), 'leading whitespace');
    refused(file(`\n{"a":${entry('[1]', '[0,4]')}}`, 4), 'leading whitespace');
    expect(accepted(file(`{"a":${entry('[1]', '[0,4]')}}    `, 4)).names()).to.deep.equal(['a']);
  });

  it('refuses a shape whose element count overflows 64 bits even when a later dimension is 0', () => {
    refused(file(`{"a":${entry('[4294967296,4294967296,0]', '[0,0]')}}`), 'more elements than a 64-bit count holds');
    accepted(file(`{"a":${entry('[4294967296,0,4294967296]', '[0,0]')}}`));
  });

  it('accepts "__metadata__": null as no metadata (the Rust crate reads it as None)', () => {
    const sf = SafetensorsFile.open(file(`{"__metadata__":null,"a":${entry('[1]', '[0,4]')}}`, 4));
    expect(sf.metadata).to.deep.equal({});
    sf.close();
    refused(file(`{"__metadata__":[],"a":${entry('[1]', '[0,4]')}}`, 4), '__metadata__ must be an object');
  });

  it('refuses malformed JSON, lone surrogates and raw control characters with the character offset', () => {
    refused(file(`{"a":${entry('[1]', '[0,4]')},}`, 4), 'not valid JSON');
    refused(file(`{"a\\ud800":${entry('[1]', '[0,4]')}}`, 4), 'lone leading surrogate');
    refused(file(`{"a\u0001":${entry('[1]', '[0,4]')}}`, 4), 'control character');
    refused(file(`{"a":${entry('[1]', '[0,4]')}} x`, 4), 'trailing characters');
    // an escaped name is read as the name it spells
    expect(accepted(file(`{"\\u0061\\ud83d\\ude00":${entry('[1]', '[0,4]')}}`, 4)).names()).to.deep.equal(['a\u{1f600}']);
  });

  it('refuses a valid header declaring a 100 GB tensor when it is read, naming the tensor (sparse file)', () => {
    const bytes = 100_000_000_000;
    const f = file(`{"huge":${entry(`[${bytes / 4}]`, `[0,${bytes}]`)}}`);
    fs.truncateSync(f, fs.statSync(f).size + bytes); // sparse: no disk used
    const sf = SafetensorsFile.open(f);
    try {
      for (const read of [() => sf.readFloat32('huge'), () => sf.readBytes('huge'), () => sf.readInt32('huge')]) {
        expect(read).to.throw(WeightsError, /tensor "huge" .*too large to read into memory/);
      }
    } finally {
      sf.close();
      fs.rmSync(f);
    }
  });
});

describe('hostile index and config files (issue 12)', () => {
  function ckptDir(config: unknown, index?: string): string {
    const d = fs.mkdtempSync(path.join(TMP, 'ck-'));
    fs.writeFileSync(path.join(d, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
    if (index !== undefined) fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), index);
    return d;
  }

  it('refuses a config.json that is a FIFO, a symlink to /dev/zero or a directory, at once', () => {
    const d = ckptDir({});
    fs.rmSync(path.join(d, 'config.json'));
    execFileSync('mkfifo', [path.join(d, 'config.json')]);
    // no timing: reading the FIFO (no writer) would never return, so the message is the check
    expect(() => loadConfig(d)).to.throw(ConfigError, /config\.json: not a regular file \(a FIFO\)/);
    fs.rmSync(path.join(d, 'config.json'));
    fs.symlinkSync('/dev/zero', path.join(d, 'config.json'));
    expect(() => loadConfig(d)).to.throw(ConfigError, /not a regular file \(a character device\)/);
    fs.rmSync(path.join(d, 'config.json'));
    fs.mkdirSync(path.join(d, 'config.json'));
    expect(() => loadConfig(d)).to.throw(ConfigError, /config\.json: (not a regular file|cannot read)/);
  });

  it('refuses a config.json over the size limit without reading it', () => {
    const d = ckptDir({});
    fs.truncateSync(path.join(d, 'config.json'), 50 * 1024 * 1024);
    expect(() => loadConfig(d)).to.throw(ConfigError, /52428800 bytes, more than the 4194304-byte limit/);
  });

  it('refuses sizes past the limits before anything is built (num_hidden_layers: 2000000)', () => {
    expect(() => parseConfig({ ...PHI4_CONFIG, num_hidden_layers: 2_000_000 }, 'c.json'))
      .to.throw(ConfigError, /c\.json: num_hidden_layers is 2000000, more than this implementation accepts \(at most 1024\)/);
    // no timing: 2^53 - 1 layers could not be built at all, so only a check before building passes
    expect(() => parseConfig({ ...PHI4_CONFIG, num_hidden_layers: Number.MAX_SAFE_INTEGER }, 'c.json'))
      .to.throw(ConfigError, /num_hidden_layers is 9007199254740991, more than this implementation accepts/);
    for (const [field, max] of Object.entries(CONFIG_LIMITS)) {
      if (field === 'head_dim' || field === 'original_max_position_embeddings' || field === 'sliding_window') {
        expect(() => parseConfig({ ...PHI4_CONFIG, [field]: max + 1 }, 'c.json')).to.throw(ConfigError, new RegExp(`${field} is ${max + 1}`));
        continue;
      }
      expect(() => parseConfig({ ...PHI4_CONFIG, [field]: max + 1 }, 'c.json')).to.throw(ConfigError, new RegExp(field));
    }
  });

  it('refuses rope_scaling that is not an object and architectures that is not a list', () => {
    expect(() => parseConfig({ ...PHI4_CONFIG, rope_scaling: [1, 2] }, 'c.json')).to.throw(ConfigError, /rope_scaling must be an object or null, got \[1,2\]/);
    expect(() => parseConfig({ ...PHI4_CONFIG, rope_parameters: [1] }, 'c.json')).to.throw(ConfigError, /rope_parameters must be an object/);
    expect(() => parseConfig({ ...PHI4_CONFIG, architectures: 'Phi3ForCausalLM' }, 'c.json')).to.throw(ConfigError, /architectures must be a list/);
    expect(() => parseConfig({ ...PHI4_CONFIG, architectures: [1] }, 'c.json')).to.throw(ConfigError, /architectures must be a list/);
    expect(parseConfig({ ...PHI4_CONFIG, architectures: ['Phi3ForCausalLM'] }, 'c.json').numLayers).to.equal(PHI4_CONFIG.num_hidden_layers);
  });

  it('names a deeply nested config value without a stack overflow', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    expect(() => parseConfig({ ...PHI4_CONFIG, hidden_act: deep }, 'c.json')).to.throw(ConfigError, /hidden_act is \[\.\.\.\]/);
    const d = ckptDir(`{"model_type":${'['.repeat(20000)}${']'.repeat(20000)}}`);
    expect(() => loadConfig(d)).to.throw(ConfigError, /model_type is \[\.\.\.\]/);
  });

  it('refuses an index that is a FIFO, too large, or holds a deep value, naming it', () => {
    const d = ckptDir(PHI4_CONFIG);
    const idx = path.join(d, 'model.safetensors.index.json');
    execFileSync('mkfifo', [idx]);
    expect(() => Checkpoint.open(idx)).to.throw(WeightsError, /index\.json: not a regular file \(a FIFO\)/);
    expect(() => Checkpoint.open(d)).to.throw(WeightsError, /no model\.safetensors or model\.safetensors\.index\.json/);
    fs.rmSync(idx);
    fs.writeFileSync(idx, `{"weight_map":{"a":${'['.repeat(20000)}${']'.repeat(20000)}}}`);
    expect(() => Checkpoint.open(d)).to.throw(WeightsError, /weight_map entry for tensor "a" must be a shard file name, got \[\.\.\.\]/);
  });
});
