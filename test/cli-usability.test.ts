// The command line as a new user meets it: --version, <command> --help, "did you mean" for
// unknown commands, options and tap names, and memory's default contexts.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { didYouMean, editDistance } from '../src/cli/args.js';
import { defaultContexts } from '../src/cli/commands/memory.js';
import { COMMANDS } from '../src/cli/commands/index.js';
import { ROOT, expectBadInput, phi4 } from './cli-helpers.js';

describe('command line usability', () => {
  it('--version prints the package version', () => {
    const r = phi4(['--version']);
    expect(r.status).to.equal(0);
    expect(r.stdout.trim()).to.equal(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('<command> --help prints that command\'s usage and exits 0, for every command', () => {
    for (const [name, c] of Object.entries(COMMANDS)) {
      const r = phi4([name, '--help']);
      expect(r.status, name).to.equal(0);
      expect(r.stdout, name).to.include(c.usage);
      expect(r.stderr, name).to.equal('');
    }
  });

  it('suggests the nearest command and option, and only a near one', () => {
    expectBadInput(phi4(['dmp']), ['unknown command "dmp" (did you mean dump?)']);
    expectBadInput(phi4(['dump', 'golden/models/phi4-mini-tiny', '--idz', '1', '--out', 'x.safetensors']), ['unknown option --idz (did you mean --ids?)']);
    expectBadInput(phi4(['generate', 'golden/models/phi4-mini-tiny', '--max-new-token', '2']), ['(did you mean --max-new-tokens?)']);
    const far = expectBadInput(phi4(['dump', 'golden/models/phi4-mini-tiny', '--zzzzzz']), ['unknown option --zzzzzz']);
    expect(far).not.to.include('did you mean');
    expect(editDistance('atn_out', 'attn_out')).to.equal(1);
    expect(editDistance('tmeperature', 'temperature')).to.equal(1);
    expect(didYouMean('tmeperature', ['temperature', 'top-k'], '--')).to.equal(' (did you mean --temperature?)');
    expect(didYouMean('x', ['temperature'])).to.equal('');
  });

  it('the bundled checkpoint chats out of the box (its own tokenizer and the published chat template)', () => {
    const r = phi4(['generate', 'golden/models/phi4-mini-tiny', '--chat', 'hi', '--max-new-tokens', '5']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/\n\d tokens \(stopped by (length|eos)\), prompt 5 tokens/); // <|user|> h i <|end|> <|assistant|>
  });

  it('memory defaults to the contexts the checkpoint holds', () => {
    expect(defaultContexts(131072)).to.deep.equal([4096, 32768, 131072]);
    expect(defaultContexts(4096)).to.deep.equal([4096]);
    expect(defaultContexts(1024)).to.deep.equal([1024]);
    expect(defaultContexts(65536)).to.deep.equal([4096, 32768, 65536]);
    const r = phi4(['memory', 'golden/models/phi4-mini-tiny']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/weights {2}ctx 1,024\n/);
    const full = phi4(['memory']);
    expect(full.status, full.stderr).to.equal(0);
    expect(full.stdout).to.include('ctx 131,072');
  });
});
