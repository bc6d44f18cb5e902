// docs/dump-format.md's "write a candidate dump" in Python (standard library only), run as written
// where python3 exists, then compared by `phi4 compare` against the golden dump it mirrors. (Its
// TypeScript twin runs in a fresh app in test/docs-examples.test.ts.)

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT, phi4, show } from './cli-helpers.js';

/** The first ```python block after `heading` in a markdown file. */
export function pythonBlockAfter(file: string, heading: string): string {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const at = text.indexOf(heading);
  expect(at, `${file}: ${heading}`).to.be.greaterThan(-1);
  const m = /^```python\n([\s\S]*?)^```$/m.exec(text.slice(at));
  expect(m, `${file}: a python block after ${heading}`).to.not.equal(null);
  return m![1]!;
}

describe('docs/dump-format.md: a candidate dump written with the Python standard library', function () {
  this.timeout(120_000);
  let tmp = '';
  before(function () {
    if (spawnSync('python3', ['--version']).status !== 0) this.skip(); // pending where there is no python3
    tmp = mkdtempSync(path.join(tmpdir(), 'phi4-candidate-'));
  });
  after(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

  it('runs as written and phi4 compare passes it against the golden dump (embed, rel L2 0)', () => {
    const code = pythonBlockAfter('docs/dump-format.md', '## Writing a candidate dump');
    writeFileSync(path.join(tmp, 'write_candidate.py'), code);
    symlinkSync(path.join(ROOT, 'golden'), path.join(tmp, 'golden')); // the example names golden/models/... relative to the package
    // -I: isolated, no site packages: the standard library is all it may use
    const py = spawnSync('python3', ['-I', 'write_candidate.py'], { cwd: tmp, encoding: 'utf8' });
    expect(py.status, py.stderr).to.equal(0);
    const r = phi4(['compare', 'golden/dumps/phi4-mini-tiny.short.safetensors', path.join(tmp, 'candidate.safetensors')]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout).to.match(/^ {2}embed {2,}1x11x96 +0 +0 +1\.00000000 {2}ok$/m);
    expect(r.stdout).to.include('PASS: all 1 common taps');
  });
});
