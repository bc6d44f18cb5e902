// stdout arrives whole through a pipe (issue 20, item 1): `phi4 compare --json` on a 32-layer
// checkpoint writes about 124 kB, more than a pipe holds (64 KiB); read by a reader that takes
// its time (`| (sleep 0.5; cat)`), the report must still be complete JSON. Before the CLI waited for stdout to drain,
// 3 runs in 4 arrived cut at 65,536 bytes.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { CLI, ROOT, phi4, show } from './cli-helpers.js';

const TINY_CONFIG = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny', 'config.json');

/** Runs phi4 with stdout into a shell pipe whose reader starts `pauseS` seconds late; returns what the reader got. */
function slowPipe(args: string[], pauseS: number): Buffer {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PHI4_BACKEND;
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const cmd = `${[process.execPath, CLI, ...args].map(q).join(' ')} 2>/dev/null | (sleep ${pauseS}; cat)`;
  const r = spawnSync('sh', ['-c', cmd], { cwd: ROOT, env, maxBuffer: 64 * 2 ** 20, timeout: 90_000 });
  if (r.error) throw r.error;
  return r.stdout;
}

/** slowPipe, asynchronously: several can run at once. */
function slowPipeAsync(args: string[], pauseS: number): Promise<Buffer> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PHI4_BACKEND;
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const cmd = `${[process.execPath, CLI, ...args].map(q).join(' ')} 2>/dev/null | (sleep ${pauseS}; cat)`;
  return new Promise((resolve, reject) => {
    const c = spawn('sh', ['-c', cmd], { cwd: ROOT, env });
    const chunks: Buffer[] = [];
    c.stdout.on('data', (d: Buffer) => chunks.push(d));
    c.on('error', reject);
    c.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('stdout is complete through a slow pipe (issue 20)', function () {
  this.timeout(120_000);
  let tmp: string;
  let dumpFile: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-pipe-'));
    const ck = path.join(tmp, 'ck');
    let r = phi4(['synth', '--config', TINY_CONFIG, '--out', ck, '--layers', '32']);
    expect(r.status, show(r)).to.equal(0);
    dumpFile = path.join(tmp, 'd.safetensors');
    r = phi4(['dump', ck, '--ids', '5,17,42', '--out', dumpFile]);
    expect(r.status, show(r)).to.equal(0);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('compare --json, read half a second late, parses whole every time', () => {
    const whole = phi4(['compare', dumpFile, dumpFile, '--json']).stdout;
    expect(Buffer.byteLength(whole), 'the report should be larger than a pipe buffer').to.be.above(65_536);
    for (let i = 0; i < 3; i++) {
      const got = slowPipe(['compare', dumpFile, dumpFile, '--json'], 0.5);
      expect(got.length, `run ${i}: bytes through the pipe`).to.equal(Buffer.byteLength(whole));
      const report = JSON.parse(got.toString('utf8'));
      expect(report.ok).to.equal(true);
      expect(report.schemaVersion).to.equal(1);
    }
  });

  it('compare --json through a slow pipe: 50 runs, 5 at a time, every one parses whole', async () => {
    // --no-blame keeps each run short (the blame re-runs 32 layers); the report is still > 64 KiB
    const args = ['compare', dumpFile, dumpFile, '--json', '--no-blame'];
    const whole = phi4(args).stdout;
    expect(Buffer.byteLength(whole)).to.be.above(65_536);
    let parsed = 0;
    for (let round = 0; round < 10; round++) {
      const got = await Promise.all(Array.from({ length: 5 }, (_, i) => slowPipeAsync(args, 0.1 + 0.05 * i)));
      for (const g of got) {
        expect(g.length, `run ${parsed}: bytes through the pipe`).to.equal(Buffer.byteLength(whole));
        expect(JSON.parse(g.toString('utf8')).ok).to.equal(true);
        parsed++;
      }
    }
    expect(parsed).to.equal(50);
  });
});
