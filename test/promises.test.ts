// README promises that had no test (issue 24, item 4): a failed `verify` exits 1, and `dump`'s
// default --max-memory is half the machine's memory.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { parseConfig } from '../src/model/config.js';
import { defaultMaxMemoryGiB, dumpBytes } from '../src/safety/precheck.js';
import { writeSafetensors } from '../weights/index.js';
import { ROOT, expectBadInput, phi4, show } from './cli-helpers.js';
import { rewriteDump } from './helpers.js';

const TINY = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');

describe('README promises (issue 24)', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-promises-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('"A failed verify exits 1": verify against a golden copy with one tap off by 1e-3 fails, naming it', () => {
    // a copy of the built package whose golden/ is the real one except one corrupted dump
    const copy = path.join(tmp, 'pkg');
    fs.mkdirSync(copy);
    fs.cpSync(path.join(ROOT, 'dist'), path.join(copy, 'dist'), { recursive: true }); // a copy: GOLDEN_DIR follows the real path
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
    const golden = path.join(copy, 'golden');
    fs.mkdirSync(path.join(golden, 'dumps'), { recursive: true });
    for (const e of fs.readdirSync(path.join(ROOT, 'golden'))) {
      if (e !== 'dumps') fs.symlinkSync(path.join(ROOT, 'golden', e), path.join(golden, e));
    }
    for (const e of fs.readdirSync(path.join(ROOT, 'golden', 'dumps'))) {
      if (e !== 'phi4-mini-tiny.short.safetensors') fs.symlinkSync(path.join(ROOT, 'golden', 'dumps', e), path.join(golden, 'dumps', e));
    }
    rewriteDump(path.join(ROOT, 'golden', 'dumps', 'phi4-mini-tiny.short.safetensors'), path.join(golden, 'dumps', 'phi4-mini-tiny.short.safetensors'),
      (name, data, shape) => ({ shape, data: name === 'layers.1.mlp_out' ? (data as Float32Array).map((x) => x * (1 + 1e-3)) : data }), true);
    const cli = path.join(copy, 'dist', 'src', 'cli', 'cli.js');
    const run = (c: string) => {
      const r = spawnSync(process.execPath, [cli, 'verify', '--case', c], { cwd: copy, encoding: 'utf8', timeout: 90_000 });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const bad = run('phi4-mini-tiny.short');
    expect(bad.status, show(bad)).to.equal(1);
    expect(bad.stdout + bad.stderr).to.include('layers.1.mlp_out');
    const good = run('phi3-mini-tiny.short'); // the same copy passes where its golden is untouched
    expect(good.status, show(good)).to.equal(0);
  });

  it('the default --max-memory is half the machine memory in GiB (at least 1), and dump refuses above it', () => {
    expect(defaultMaxMemoryGiB()).to.equal(Math.max(1, Math.floor(os.totalmem() / 2 / 2 ** 30)));
    // a batch sized to need just over the default: refused without --max-memory, naming the limit
    const cfg = parseConfig(JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8')));
    const limit = defaultMaxMemoryGiB() * 2 ** 30;
    let batch = 1;
    while (dumpBytes(cfg, batch, 64) <= limit) batch *= 2;
    const inputs = path.join(tmp, 'big.safetensors');
    writeSafetensors(inputs, [{ name: 'input_ids', dtype: 'I32', shape: [batch, 64], data: new Int32Array(batch * 64).fill(5) }]);
    expectBadInput(phi4(['dump', TINY, '--inputs', inputs, '--out', path.join(tmp, 'o.safetensors')]),
      [`[${batch}, 64]`, `${defaultMaxMemoryGiB()} GiB limit`, '--max-memory']);
    expect(fs.existsSync(path.join(tmp, 'o.safetensors'))).to.equal(false);
  });
});
