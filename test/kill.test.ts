// Real kills of every writing command (issue 24, item 1): each command is started as a user would
// start it, on the tiny golden checkpoint, and killed with SIGKILL, SIGTERM or SIGINT while its
// temporary file exists. PHI4_TEST_HOLD_TEMP makes the writer stop, with the temporary file
// complete, just before its rename (src/safety/outputs.ts, holdForTest); the test polls for that
// file, kills, and checks that the target is absent (or, with --force, the old file unchanged) and
// that the reaper removes the temporary file. One temporary-name scheme covers every extension.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { TEMP_NAME, removeStaleTemps } from '../src/safety/outputs.js';
import { CLI, ROOT, phi4, show } from './cli-helpers.js';

const TINY = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const DUMP = path.join(ROOT, 'golden', 'dumps', 'phi4-mini-tiny.short.safetensors');
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** Polls `cond` every 20 ms until it holds or `ms` passes (a bound on waiting, not an assertion on speed). */
async function until(cond: () => boolean, ms = 30_000): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(20)) if (cond()) return true;
  return cond();
}

/**
 * Starts `phi4 ...args`, waits for its temporary file for `target` in `dir`, kills it with `signal`
 * and waits for it to end; returns the temporary file's name.
 */
async function killWhileWriting(args: string[], dir: string, target: string, signal: NodeJS.Signals, env: Record<string, string> = {}): Promise<string> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PHI4_TEST_HOLD_TEMP: '120', ...env };
  delete childEnv.PHI4_BACKEND;
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b) => (stderr += b));
  let exited = false;
  const done = new Promise<void>((res) => child.once('exit', () => { exited = true; res(); }));
  const ours = (n: string) => n.startsWith(`${target}.tmp-${child.pid}-`) && TEMP_NAME.test(n);
  const found = await until(() => exited || fs.readdirSync(dir).some(ours));
  const temp = fs.readdirSync(dir).find(ours);
  if (!temp) {
    child.kill('SIGKILL');
    await done;
    throw new Error(`phi4 ${args.join(' ')}: no temporary file for ${target} appeared (${found ? 'it exited' : 'timed out'}); stderr:\n${stderr}`);
  }
  child.kill(signal);
  await done;
  return temp;
}

describe('killed writing commands leave no temporary file and no half-written target (issue 24)', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-kill-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const dir = () => fs.mkdtempSync(path.join(tmp, 'd-'));

  const cases: { cmd: string; target: string; args: (d: string) => string[]; signal: NodeJS.Signals }[] = [
    { cmd: 'dump', target: 'out.safetensors', signal: 'SIGKILL', args: (d) => ['dump', TINY, '--ids', '5,17', '--out', path.join(d, 'out.safetensors')] },
    { cmd: 'dump (.bin)', target: 'out.bin', signal: 'SIGTERM', args: (d) => ['dump', TINY, '--ids', '5,17', '--out', path.join(d, 'out.bin')] },
    { cmd: 'dump --precision float64', target: 'out.f64.safetensors', signal: 'SIGINT', args: (d) => ['dump', TINY, '--ids', '5,17', '--precision', 'float64', '--out', path.join(d, 'out.f64.safetensors')] },
    { cmd: 'generate --out', target: 'gen.safetensors', signal: 'SIGINT', args: (d) => ['generate', TINY, '--ids', '5,17', '--max-new-tokens', '2', '--out', path.join(d, 'gen.safetensors')] },
    { cmd: 'synth', target: 'model-00001-of-00002.safetensors', signal: 'SIGKILL', args: (d) => ['synth', '--config', path.join(TINY, 'config.json'), '--out', d, '--layers', '1'] },
    { cmd: 'compare --plot', target: 'plot.svg', signal: 'SIGTERM', args: (d) => ['compare', DUMP, DUMP, '--plot', path.join(d, 'plot.svg')] },
    { cmd: 'walkthrough --html', target: 'page.html', signal: 'SIGKILL', args: (d) => ['walkthrough', TINY, '--ids', '5,17', '--html', path.join(d, 'page.html')] },
  ];
  for (const c of cases) {
    it(`${c.cmd}, killed with ${c.signal} while its temporary file exists: no target, and the reaper removes the temporary file`, async () => {
      const d = dir();
      const temp = await killWhileWriting(c.args(d), d, c.target, c.signal);
      expect(fs.existsSync(path.join(d, c.target)), `${c.target} written by a killed run`).to.equal(false);
      const gone = await until(() => !fs.existsSync(path.join(d, temp)));
      expect(gone, `${temp} left by the killed ${c.cmd}: ${fs.readdirSync(d).join(', ')}`).to.equal(true);
      // synth leaves its marker (the next synth takes the directory over: hostile-cli.test.ts); nothing else remains
      expect(fs.readdirSync(d).filter((n) => n !== '.phi4-synth-incomplete')).to.deep.equal([]);
    });
  }

  for (const signal of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
    it(`dump --force over an existing --out, killed with ${signal} mid-write, keeps the old file byte for byte`, async () => {
      const d = dir();
      const out = path.join(d, 'out.safetensors');
      fs.copyFileSync(DUMP, out);
      const old = fs.readFileSync(out);
      const temp = await killWhileWriting(['dump', TINY, '--ids', '5,17', '--out', out, '--force'], d, 'out.safetensors', signal);
      expect(fs.readFileSync(out).equals(old), 'the old --out changed').to.equal(true);
      expect(await until(() => !fs.existsSync(path.join(d, temp))), `${temp} left`).to.equal(true);
      expect(fs.readdirSync(d)).to.deep.equal(['out.safetensors']);
    });
  }

  it('without the reaper, the next writing run removes the temporary file of a killed one whatever its extension', async () => {
    const d = dir();
    const noReaper = { PHI4_NO_REAPER: '1' };
    fs.writeFileSync(path.join(d, 'notes.txt.tmp-1'), 'not ours'); // not this project's scheme: never touched
    const bin = await killWhileWriting(['dump', TINY, '--ids', '5,17', '--out', path.join(d, 'a.bin')], d, 'a.bin', 'SIGKILL', noReaper);
    expect(fs.readdirSync(d).sort()).to.deep.equal([bin, 'notes.txt.tmp-1'].sort());
    // each later writing command in the directory removes the earlier one's file before writing its own
    const svg = await killWhileWriting(['compare', DUMP, DUMP, '--plot', path.join(d, 'p.svg')], d, 'p.svg', 'SIGKILL', noReaper);
    expect(fs.readdirSync(d).sort()).to.deep.equal([svg, 'notes.txt.tmp-1'].sort());
    const html = await killWhileWriting(['walkthrough', TINY, '--ids', '5,17', '--html', path.join(d, 'w.html')], d, 'w.html', 'SIGKILL', noReaper);
    expect(fs.readdirSync(d).sort()).to.deep.equal([html, 'notes.txt.tmp-1'].sort());
    const r = phi4(['dump', TINY, '--ids', '5,17', '--out', path.join(d, 'x.safetensors')]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stderr).to.include(`removed 1 temporary file(s) left in ${d} by a run that was killed: ${html}`);
    expect(fs.readdirSync(d).sort()).to.deep.equal(['notes.txt.tmp-1', 'x.safetensors']);
    expect(removeStaleTemps(d)).to.deep.equal([]);
  });
});
