// Issue 12 through the command line: outputs that must not be written, temporary files of killed
// runs, the memory estimate for a dump's inputs, and refusals that are one bounded, escaped line.

import { spawnSync, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { parseConfig } from '../src/model/config.js';
import { MAX_ERROR_CHARS, errorLine } from '../src/safety/error-text.js';
import { SYNTH_MARKER, removeStaleTemps } from '../src/safety/outputs.js';
import { dumpBytes } from '../src/safety/precheck.js';
import { SafetensorsFile, writeSafetensors } from '../weights/index.js';
import { ROOT, expectBadInput, lines, phi4, show } from './cli-helpers.js';

const TINY = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const SHARD = path.join(TINY, 'model-00001-of-00002.safetensors');
const BATCH = path.join(ROOT, 'golden', 'dumps', 'phi4-mini-tiny.batch.safetensors');
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** The pid of a process that has exited (so no process holds it now, barring reuse). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('hostile command lines (issue 12)', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-hostile-cli-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const dir = () => fs.mkdtempSync(path.join(tmp, 'd-'));

  it('refuses --out that is a checkpoint shard (even with --force), leaving the shard as it was', () => {
    const ck = path.join(dir(), 'ck');
    fs.cpSync(TINY, ck, { recursive: true });
    const shard = path.join(ck, 'model-00001-of-00002.safetensors');
    const before = sha(shard);
    expectBadInput(phi4(['dump', ck, '--ids', '5,17', '--out', shard]), ['--out', shard, 'checkpoint']);
    expectBadInput(phi4(['dump', ck, '--ids', '5,17', '--out', path.join(ck, 'config.json'), '--force']), ['config.json', 'checkpoint']);
    expect(sha(shard)).to.equal(before);
    expect(fs.readdirSync(ck).sort()).to.deep.equal(fs.readdirSync(TINY).sort());
  });

  it('refuses --out that is the --inputs file, and an existing --out without --force; --force replaces it', () => {
    const d = dir();
    const inputs = path.join(d, 'in.safetensors');
    fs.copyFileSync(BATCH, inputs);
    const before = sha(inputs);
    expectBadInput(phi4(['dump', TINY, '--inputs', inputs, '--out', inputs, '--force']), ['--out', 'also an input']);
    expect(sha(inputs)).to.equal(before);
    const out = path.join(d, 'out.safetensors');
    fs.writeFileSync(out, 'keep me');
    expectBadInput(phi4(['dump', TINY, '--ids', '5,17', '--out', out]), ['--out', out, 'exists', '--force']);
    expect(fs.readFileSync(out, 'utf8')).to.equal('keep me');
    const r = phi4(['dump', TINY, '--ids', '5,17', '--out', out, '--force']);
    expect(r.status, show(r)).to.equal(0);
    const f = SafetensorsFile.open(out);
    expect(Array.from(f.readInt32('input_ids'))).to.deep.equal([5, 17]);
    f.close();
    expect(fs.readdirSync(d).sort()).to.deep.equal(['in.safetensors', 'out.safetensors']);
  });

  it('removes, with a warning, temporary files left beside --out by a killed run; keeps those of running processes', () => {
    const d = dir();
    const dead = deadPid();
    const stale = `x.safetensors.tmp-${dead}-0123456789ab`;
    const live = `y.safetensors.tmp-${process.pid}-0123456789ab`;
    fs.writeFileSync(path.join(d, stale), 'partial');
    fs.writeFileSync(path.join(d, live), 'in progress');
    const foreign = `notes.tmp-${dead}`; // not a name this project's writers use: never touched
    fs.writeFileSync(path.join(d, foreign), 'mine');
    const r = phi4(['dump', TINY, '--ids', '5,17', '--out', path.join(d, 'x.safetensors')]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stderr).to.include(`removed 1 temporary file(s) left in ${d} by a run that was killed: ${stale}`);
    expect(fs.readdirSync(d).sort()).to.deep.equal(['x.safetensors', live, foreign].sort());
    expect(removeStaleTemps(d)).to.deep.equal([]);
  });

  // real kills of every writing command: test/kill.test.ts

  it('a synth directory left by a killed run is taken over by the next run; other files still block it', () => {
    const d = path.join(dir(), 'synth');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, SYNTH_MARKER), `${deadPid()}\n`);
    fs.writeFileSync(path.join(d, 'model-00001-of-00002.safetensors'), 'complete shard of the killed run');
    fs.writeFileSync(path.join(d, `model-00002-of-00002.safetensors.tmp-${deadPid()}-abcdefabcdef`), 'partial');
    const cfg = path.join(TINY, 'config.json');
    const r = phi4(['synth', '--config', cfg, '--out', d, '--layers', '1']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stderr).to.match(/was left incomplete by a synth that was killed \(pid \d+\); removed its 3 file\(s\)/);
    expect(fs.readdirSync(d).sort()).to.deep.equal(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    // someone else's file in a directory without the marker is never removed
    fs.writeFileSync(path.join(d, 'notes.txt'), 'mine');
    expectBadInput(phi4(['synth', '--config', cfg, '--out', d, '--layers', '1']), [d, 'not empty']);
    expect(fs.readFileSync(path.join(d, 'notes.txt'), 'utf8')).to.equal('mine');
  });

  it('refuses an --inputs batch whose dump would pass the memory limit, with the estimate and the flag', () => {
    const d = dir();
    const big = path.join(d, 'big.safetensors');
    writeSafetensors(big, [{ name: 'input_ids', dtype: 'I32', shape: [2000, 64], data: new Int32Array(2000 * 64).fill(5) }]);
    // refused before the backend starts (one stderr line, no banner: expectBadInput), so before any work
    const line = expectBadInput(phi4(['dump', TINY, '--inputs', big, '--out', path.join(d, 'o.safetensors'), '--max-memory', '2']),
      [big, 'input_ids', '[2000, 64]', 'GiB', '--max-memory']);
    const cfg = parseConfig(JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8')));
    const gib = (dumpBytes(cfg, 2000, 64) / 2 ** 30).toFixed(2);
    expect(line).to.include(`about ${gib} GiB`);
    expect(fs.readdirSync(d)).to.deep.equal(['big.safetensors']);
    // the golden batch fits the same limit
    const ok = phi4(['dump', TINY, '--inputs', BATCH, '--out', path.join(d, 'o.safetensors'), '--max-memory', '2']);
    expect(ok.status, show(ok)).to.equal(0);
  });

  it('the estimate counts every tap a dump writes', () => {
    const d = dir();
    const out = path.join(d, 'o.safetensors');
    const r = phi4(['dump', TINY, '--ids', '5,17,42', '--out', out]);
    expect(r.status, show(r)).to.equal(0);
    const f = SafetensorsFile.open(out);
    const tapFloats = f.tensors().filter((t) => t.dtype === 'F32').reduce((n, t) => n + t.byteLength / 4, 0);
    f.close();
    const cfg = parseConfig(JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8')));
    expect(dumpBytes(cfg, 1, 3)).to.equal(2 * 4 * tapFloats);
  });

  it('a config.json that is a FIFO or /dev/zero is one line, at once, before the banner', () => {
    const ck = path.join(dir(), 'ck');
    fs.cpSync(TINY, ck, { recursive: true });
    fs.rmSync(path.join(ck, 'config.json'));
    execFileSync('mkfifo', [path.join(ck, 'config.json')]);
    // a read of either would never end (the FIFO has no writer) or never stop growing (/dev/zero); the
    // runs ending with the message, before the banner, is the check (phi4() gives up after 90 s)
    expectBadInput(phi4(['dump', ck, '--ids', '5', '--out', path.join(ck, '..', 'o.safetensors')]), ['config.json', 'FIFO']);
    fs.rmSync(path.join(ck, 'config.json'));
    fs.symlinkSync('/dev/zero', path.join(ck, 'config.json'));
    expectBadInput(phi4(['generate', ck, '--ids', '5', '--max-new-tokens', '1']), ['config.json', 'character device']);
  });

  it('prints a hostile tensor name escaped and bounded, on one line', () => {
    const ck = path.join(dir(), 'ck');
    fs.cpSync(TINY, ck, { recursive: true });
    // add an unexpected tensor named with terminal escapes and a line break to shard 2 via its index
    const evil = '\u001b[2J\u001b[31mevil\nname\u202e' + 'x'.repeat(3000);
    const extra = path.join(ck, 'extra.safetensors');
    writeSafetensors(extra, [{ name: evil, dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    const idxPath = path.join(ck, 'model.safetensors.index.json');
    const idx = JSON.parse(fs.readFileSync(idxPath, 'utf8'));
    idx.weight_map[evil] = 'extra.safetensors';
    fs.writeFileSync(idxPath, JSON.stringify(idx));
    const r = phi4(['dump', ck, '--ids', '5', '--out', path.join(ck, '..', 'o.safetensors')]);
    const line = expectBadInput(r, ['unexpected tensor', '\\x1b[2J\\x1b[31mevil\\x0aname\\u202e', 'more characters']);
    expect(line).not.to.match(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(line.length).to.be.below(MAX_ERROR_CHARS + 200);
  });

  it('errorLine escapes control bytes and escapes only the shown part of a 99 M-character message', () => {
    expect(errorLine('a\tb\u0000c\u009bd\u2028e')).to.equal('a\\x09b\\x00c\\x9bd\\u2028e');
    const huge = Buffer.alloc(99_000_000, 'n').toString('latin1'); // a flat string, as read from a file
    expect(errorLine(huge)).to.equal(`${'n'.repeat(MAX_ERROR_CHARS)}... (${99_000_000 - MAX_ERROR_CHARS} more characters)`);
    // no timing: escaped whole, 150 M control bytes would be 600 M characters, past V8's longest
    // string (2^29 - 24), and throw; only a function that escapes the shown part can return
    const controls = Buffer.alloc(150_000_000, 1).toString('latin1');
    expect(errorLine(controls)).to.equal(`${'\\x01'.repeat(MAX_ERROR_CHARS)}... (${150_000_000 - MAX_ERROR_CHARS} more characters)`);
  });

  it('refusals found before the backend starts print no banner: exactly one stderr line', () => {
    for (const args of [
      ['generate', TINY, '--ids', '99999', '--max-new-tokens', '1'],
      ['walkthrough', TINY, '--ids', '99999'],
    ]) {
      const r = phi4(args);
      expect(lines(r.stderr), show(r)).to.have.length(1);
      expect(r.status).to.equal(2);
    }
  });
});

