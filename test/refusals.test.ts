// Every command's refusals, as a newcomer types them: each is one line on stderr naming what is
// wrong (no backend banner first, no stack trace) and exit 2, and the table covers every command.
// Also the bundled checkpoints by name, and what generate says about text it does not print.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { COMMANDS } from '../src/cli/commands/index.js';
import { bundledNames } from '../src/checkpoint/bundled.js';
import { DEFAULT_WALKTHROUGH_CHECKPOINT } from '../src/teach/walkthrough.js';
import { TOY_DIR } from '../src/teach/toy/train.js';
import { expectBadInput, lines, phi4, show } from './cli-helpers.js';

describe('refusals: one line for every command', function () {
  this.timeout(300_000);
  let tmp = '';
  let out = '';
  before(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'phi4-refusals-'));
    out = path.join(tmp, 'out.safetensors');
    writeFileSync(path.join(tmp, 'not-json.json'), 'nope');
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  // [arguments, what the line must name]
  const table = (): Record<string, [string[], string[]][]> => ({
    verify: [
      [['verify', '--case', 'nosuch'], ['nosuch']],
      [['verify', '--cases', 'x'], ['--cases']],
    ],
    dump: [
      [['dump', '--ids', '1', '--out', out], ['dump needs one checkpoint']],
      [['dump', 'README.md', '--ids', '1', '--out', out], ['README.md: a file, not a checkpoint', 'phi4-mini-tiny']], // was "no such checkpoint directory"
      [['dump', 'golden', '--ids', '1', '--out', out], ['golden: no config.json']],
      [['dump', 'no-such-model', '--ids', '1', '--out', out], ['no-such-model: no such file or directory', 'bundled checkpoint']],
      [['dump', 'phi4-mini-tiny', '--ids', '5,99999', '--out', out], ['99999', 'vocabulary']],
      [['dump', 'phi4-mini-tiny', '--ids', '5', '--out', out, '--precision', 'half'], ['--precision']],
    ],
    compare: [
      [['compare', 'a.safetensors'], ['compare']],
      [['compare', path.join(tmp, 'none.safetensors'), path.join(tmp, 'none.safetensors')], ['none.safetensors']],
    ],
    memory: [
      [['memory', 'README.md'], ['README.md: a file, not a checkpoint directory or a config .json']],
      [['memory', path.join(tmp, 'not-json.json')], ['not-json.json', 'JSON']],
      [['memory', 'phi4-mini-tiny', '--context', 'lots'], ['--context']],
    ],
    walkthrough: [
      [['walkthrough', '--layer', '9'], ['--layer: 9 is not a layer', '0 .. 3']], // was after the backend banner
      [['walkthrough', 'phi4-mini-tiny', '--layer', 'x'], ['--layer']],
      [['walkthrough', 'phi4-mini-tiny', 'phi3-mini-tiny'], ['at most one checkpoint']],
    ],
    generate: [
      [['generate', 'golden', '--prompt', 'hi', '--max-new-tokens', '2'], ['golden: no config.json']], // was about tokenizer.json
      [['generate', 'phi4-mini-tiny', '--ids', '1'], ['--max-new-tokens']],
      [['generate', 'phi4-mini-tiny', '--ids', '1', '--max-new-tokens', '2', '--json', '--show-special'], ['--show-special']],
      [['generate', 'phi4-mini-tiny', '--ids', '1', '--prompt', 'hi', '--max-new-tokens', '2'], ['exactly one of']],
    ],
    synth: [
      [['synth', '--out', path.join(tmp, 'synth')], ['--config']],
      [['synth', '--config', 'README.md', '--out', path.join(tmp, 'synth')], ['README.md']],
    ],
  });

  it('covers every command', () => {
    expect(Object.keys(table()).sort()).to.deep.equal(Object.keys(COMMANDS).sort());
  });

  for (const name of Object.keys(COMMANDS)) {
    it(`${name}: each refusal is one line, before any banner, exit 2`, () => {
      for (const [args, names] of table()[name] ?? []) {
        expectBadInput(phi4(args), names); // one line: a banner before it fails too
      }
      expect(existsSync(out), 'no output written').to.equal(false);
    });
  }
});

describe('bundled checkpoints by name, and what generate does not print', function () {
  this.timeout(300_000);
  let tmp = '';
  before(() => { tmp = mkdtempSync(path.join(tmpdir(), 'phi4-bundled-')); });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('phi4 --help lists the bundled checkpoints, and a command takes one by name', () => {
    const help = phi4(['--help']);
    expect(help.status).to.equal(0);
    expect(bundledNames()).to.include.members(['phi4-mini-tiny', 'phi3-mini-tiny', 'phi4-toy-induction']);
    expect(help.stdout).to.include(bundledNames().join(', '));
    const out = path.join(tmp, 'named.safetensors');
    const r = phi4(['dump', 'phi4-mini-tiny', '--ids', '5,17', '--out', out, '--taps', 'logits']);
    expect(r.status, show(r)).to.equal(0);
    expect(existsSync(out)).to.equal(true);
  });

  it('walkthrough --help names both of its default checkpoints (text and --html differ)', () => {
    const usage = COMMANDS.walkthrough!.usage;
    expect(usage).to.include(`default checkpoint ${path.basename(DEFAULT_WALKTHROUGH_CHECKPOINT)}`);
    expect(usage).to.include(`the trained toy model ${path.basename(TOY_DIR)}`);
  });

  it('generate says when every new token is a special one, and --show-special prints them', () => {
    // the bundled phi4-mini-tiny answers "hi" with <|assistant|> (id 1014) twelve times, greedily
    const r = phi4(['generate', 'phi4-mini-tiny', '--chat', 'hi', '--max-new-tokens', '12']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout.trim()).to.equal('');
    expect(lines(r.stderr).at(-1)).to.equal('note: all 12 new tokens are special tokens, which the text leaves out (<|assistant|> x12); --show-special prints them');
    const shown = phi4(['generate', 'phi4-mini-tiny', '--chat', 'hi', '--max-new-tokens', '12', '--show-special']);
    expect(shown.status, show(shown)).to.equal(0);
    expect(shown.stdout.trim()).to.equal('<|assistant|>'.repeat(12));
    expect(shown.stderr).to.not.include('note:');
  });

  it('generate says when sampled bytes are not UTF-8 (they print as U+FFFD)', () => {
    const r = phi4(['generate', 'phi3-mini-tiny', '--prompt', 'hi', '--max-new-tokens', '40', '--temperature', '1', '--seed', '1']);
    expect(r.status, show(r)).to.equal(0);
    const n = r.stdout.split('\uFFFD').length - 1;
    expect(n).to.be.greaterThan(0);
    expect(r.stderr).to.include(`note: the new tokens' bytes are not valid UTF-8 in ${n} places, printed as U+FFFD`);
  });
});
