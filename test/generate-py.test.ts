// golden/generate.py (torch + transformers; not runnable in this project's CI) writes dumps in
// the same format: its tap table must be layers/taps.ts's, name for name, layout for layout.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { GOLDEN_DIR } from '../src/oracle/golden.js';
import { HEAD_TAPS, LAYER_TAPS, MODEL_TAPS } from '../layers/taps.js';

const SOURCE = fs.readFileSync(path.join(GOLDEN_DIR, 'generate.py'), 'utf8');

/** The {"name": "layout", ...} literal assigned to `name` in generate.py, in source order. */
function pyDict(name: string): [string, string][] {
  const m = new RegExp(`^${name} = \\{([^}]*)\\}`, 'm').exec(SOURCE);
  if (!m) throw new Error(`generate.py has no ${name} = {...}`);
  return [...m[1].matchAll(/"([^"]+)":\s*"([^"]+)"/g)].map((x) => [x[1], x[2]]);
}

const layouts = (t: Record<string, { layout: string }>) => Object.entries(t).map(([k, v]) => [k, v.layout]);

describe('golden/generate.py', () => {
  it('has the tap table of layers/taps.ts, in forward order', () => {
    expect(pyDict('MODEL_TAPS')).to.deep.equal(layouts(MODEL_TAPS));
    expect(pyDict('LAYER_TAPS')).to.deep.equal(layouts(LAYER_TAPS));
    expect(pyDict('HEAD_TAPS')).to.deep.equal(layouts(HEAD_TAPS));
  });

  it('writes the dump format\'s metadata keys', () => {
    for (const key of ['format', 'project_version', 'backend', 'checkpoint', 'inputs', 'input_ids', 'layouts']) {
      expect(SOURCE, key).to.include(`"${key}":`);
    }
    expect(SOURCE).to.include('"format": "phi4-ts.dump"');
  });
});
