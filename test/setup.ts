// Loaded by .mocharc.json before every test file: the suite sees no Hugging Face cache of the
// machine's (a real cache would change what a repo id resolves to, test/memory.test.ts), only an
// empty one; tests that need a cache build their own and pass HF_HOME. Removed at the end.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-hf-home-'));
process.env.HF_HOME = home;
delete process.env.HF_HUB_CACHE;
delete process.env.XDG_CACHE_HOME;

export const mochaHooks = {
  afterAll(): void {
    fs.rmSync(home, { recursive: true, force: true });
  },
};
