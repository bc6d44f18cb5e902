// Executable docs: every TypeScript/JavaScript example in README.md and docs/*.md runs, unchanged,
// against the packed package (`npm pack`, its prepack and postpack scripts included) installed
// into fresh apps as a newcomer makes them: `npm init -y` (CommonJS; `"type": "module"` set for
// the ES-module app), `tsc --init`'s own tsconfig, no @types/node. Examples fenced as
// ```ts commonjs run in the CommonJS app, the others in the ES-module app. Each example must leave
// no tensor alive at exit (test/fixtures/leak-check.cjs). Also checks what the tarball holds: the
// library entry points and their declarations, the bundled checkpoints and docs, no compiled tests,
// and a package.json without the `prepare` script (npm lists it as an install script).

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './cli-helpers.js';

interface Example {
  file: string; // the doc, relative to the repo
  line: number;
  lang: 'ts' | 'js';
  commonjs: boolean; // fenced ```ts commonjs: runs in the CommonJS app
  code: string;
}

/** The fenced ```ts / ```typescript / ```js / ```javascript blocks of a markdown file, `commonjs` after the language marking CommonJS ones. */
export function examplesOf(file: string, text: string): Example[] {
  const out: Example[] = [];
  const re = /^```(ts|typescript|js|javascript|mjs)( commonjs)?[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const lang = m[1] === 'ts' || m[1] === 'typescript' ? 'ts' : 'js';
    out.push({ file, line: text.slice(0, m.index).split('\n').length, lang, commonjs: m[2] !== undefined, code: m[3]! });
  }
  return out;
}

function docExamples(): Example[] {
  const docs = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  return docs.flatMap((f) => examplesOf(f, readFileSync(path.join(ROOT, f), 'utf8')));
}

/**
 * Compiled with the examples, against the packed package's declarations: tap names are typed, so a
 * misspelt one does not compile. Each `@ts-expect-error` must meet an error, or tsc fails the test.
 */
const TYPED_TAPS = `import type { Hooks, RunWithCacheOptions, TapName, TapSink } from 'phi4-ts';
export const hooks: Hooks = { embed: () => {}, 'layers.3.qkv': () => {}, 'rope.cos': () => {}, logits: () => {} };
// @ts-expect-error qvk is not a tap
export const misspelt: Hooks = { 'layers.0.qvk': () => {} };
// @ts-expect-error a layer tap needs its layer
export const noLayer: Hooks = { qkv: () => {} };
export const names: RunWithCacheOptions = { names: ['layers.0.attn_out', 'final_norm'] };
// @ts-expect-error attn is not a tap
export const badNames: RunWithCacheOptions = { names: ['layers.0.attn'] };
export const sink: TapSink = (name: TapName) => { if (name === 'logits') return; };
`;

function run(cmd: string, args: string[], cwd: string, timeout = 240_000) {
  const env: NodeJS.ProcessEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  delete env.PHI4_BACKEND;
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout });
  if (r.error) throw r.error;
  return r;
}

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const LEAK_CHECK = path.join(ROOT, 'test', 'fixtures', 'leak-check.cjs');

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [k: string]: unknown;
}

/**
 * The entries of the repo's package-lock.json that `deps` resolve to from `from` (a lock path, ''
 * for the top), with everything they depend on, found as node finds a package: the nearest
 * node_modules up the tree. An optional dependency the lock does not hold is left out.
 */
export function lockClosure(lock: Record<string, LockEntry>, deps: Record<string, string>, optional: Record<string, string> = {}): Record<string, LockEntry> {
  const out: Record<string, LockEntry> = {};
  const visit = (from: string, name: string, isOptional: boolean) => {
    for (let base = from; ;) {
      const key = `${base ? `${base}/` : ''}node_modules/${name}`;
      const e = lock[key];
      if (e) {
        if (out[key]) return;
        out[key] = e;
        for (const d of Object.keys(e.dependencies ?? {})) visit(key, d, false);
        for (const d of Object.keys(e.optionalDependencies ?? {})) visit(key, d, true);
        return;
      }
      if (!base) {
        if (isOptional) return;
        throw new Error(`package-lock.json holds no ${name} (needed under ${from || 'the top'})`);
      }
      const up = base.lastIndexOf('/node_modules/');
      base = up < 0 ? '' : base.slice(0, up);
    }
  };
  for (const d of Object.keys(deps)) visit('', d, false);
  for (const d of Object.keys(optional)) visit('', d, true);
  return out;
}

/**
 * A fresh app in `dir` as `npm init -y` makes it (CommonJS unless `module`), with the tarball
 * installed as its dependency, and `tsc --init`'s tsconfig. Returns npm's install output.
 *
 * Installed with `npm ci --offline` from a package-lock.json that pins the tarball's dependencies
 * to the repo's own lock, so that only what the repo's `npm ci` put in the npm cache is needed:
 * the test never reaches the network, and on a clean machine (`.ci/run`) works as it does here.
 * A plain `npm install --offline <tarball>` does not: npm 11 asks for each dependency's full
 * packument, which `npm ci` never fetches (ENOTCACHED for @huggingface/jinja, measured on a clean
 * clone with an empty npm cache). tfjs-node, optional, is left out (--omit=optional).
 */
function freshApp(dir: string, tarball: string, module: boolean, manifest: LockEntry & { name: string }): string {
  mkdirSync(dir);
  const init = run('npm', ['init', '-y'], dir);
  expect(init.status, init.stderr).to.equal(0);
  if (module) expect(run('npm', ['pkg', 'set', 'type=module'], dir).status).to.equal(0);
  const spec = `file:${path.relative(dir, tarball)}`;
  expect(run('npm', ['pkg', 'set', `dependencies.${manifest.name}=${spec}`], dir).status).to.equal(0);
  const app = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
  const repoLock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  const { dependencies, optionalDependencies, bin, license, engines } = manifest;
  const packages: Record<string, LockEntry> = {
    '': { name: app.name, version: app.version, license: app.license, dependencies: { [manifest.name]: spec } },
    [`node_modules/${manifest.name}`]: { version: manifest.version, resolved: spec, integrity, license, dependencies, optionalDependencies, bin, engines },
    ...lockClosure(repoLock.packages, dependencies ?? {}, optionalDependencies),
  };
  writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: app.name, version: app.version, lockfileVersion: 3, requires: true, packages }, null, 2) + '\n');
  const inst = run('npm', ['ci', '--offline', '--omit=optional', '--no-audit', '--no-fund'], dir);
  expect(inst.status, inst.stderr).to.equal(0);
  const tsInit = run(process.execPath, [TSC, '--init'], dir);
  expect(tsInit.status, tsInit.stdout).to.equal(0);
  return inst.stdout + inst.stderr;
}

/**
 * Compiles the app's .ts files with its tsconfig as `tsc --init` wrote it, skipLibCheck turned off
 * (every declaration checked, the package's and tfjs-core's included). skipLibCheck only hides
 * errors, so this also passes with the tsconfig exactly as written.
 */
function compile(app: string, what: string): void {
  const tsc = run(process.execPath, [TSC, '-p', '.', '--skipLibCheck', 'false'], app);
  expect(tsc.status, `tsc --skipLibCheck false on ${what}:\n${tsc.stdout}${tsc.stderr}`).to.equal(0);
}

/** Runs a compiled example under the leak check: it must exit 0 with no tensor alive. */
function runExample(app: string, js: string, where: string): string {
  const r = run(process.execPath, ['--require', LEAK_CHECK, js], app, 120_000);
  expect(r.status, `${where} example failed:\n${r.stderr}${r.stdout}`).to.equal(0);
  return r.stdout;
}

describe('the packed package and the docs examples', function () {
  this.timeout(600_000);
  let work = '';
  let esmApp = '';
  let cjsApp = '';
  let installLog = '';
  let packed: string[] = [];
  let manifest: LockEntry & { name: string; scripts?: Record<string, string> } = { name: '' };
  const examples = docExamples();

  before(function () {
    work = mkdtempSync(path.join(tmpdir(), 'phi4-pack-'));
    // With its scripts: prepack builds dist/ and drops `prepare` from the packed package.json, postpack restores it.
    const before = readFileSync(path.join(ROOT, 'package.json'), 'utf8');
    const pack = run('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', work], ROOT, 300_000);
    expect(pack.status, pack.stderr).to.equal(0);
    expect(readFileSync(path.join(ROOT, 'package.json'), 'utf8'), 'package.json after npm pack').to.equal(before);
    const info = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    packed = info[0]!.files.map((f) => f.path);
    const tarball = path.join(work, path.basename(info[0]!.filename));
    const tar = run('tar', ['-xzf', tarball, '-O', 'package/package.json'], work);
    manifest = JSON.parse(tar.stdout);
    esmApp = path.join(work, 'esm-app');
    cjsApp = path.join(work, 'cjs-app');
    installLog = freshApp(esmApp, tarball, true, manifest) + freshApp(cjsApp, tarball, false, manifest);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships without a prepare script, so an installing app is shown no install script', () => {
    expect(manifest.scripts ?? {}).to.not.have.property('prepare');
    expect(installLog).to.not.match(/install scripts|allowScripts/);
  });

  it('holds the entry point with declarations, the sources the errors name, checkpoints and docs, and no tests', () => {
    for (const f of ['package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/esm.js', 'dist/src/esm.d.ts', 'dist/src/cli/cli.js', 'bin/phi4.js', 'layers/taps.ts',
      'docs/hooks.md', 'golden/models/phi4-mini-tiny/config.json', 'golden/models/phi4-mini-tiny/model.safetensors.index.json']) {
      expect(packed, f).to.include(f);
    }
    expect(packed.filter((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('test/'))).to.deep.equal([]);
  });

  it('no file of the repo names a path of the machine it was written on', () => {
    const ls = run('git', ['ls-files', '-z'], ROOT);
    const files = ls.stdout.split('\0').filter((f) => f && !f.endsWith('.safetensors') && !f.endsWith('.onnx') && f !== 'package-lock.json'
      && !f.startsWith('golden/phi-4-mini-instruct/'));
    const machinePath = /(^|[^\w.])\/(work|home|root|Users|farm|mnt)\/\w/;
    const found = files.filter((f) => machinePath.test(readFileSync(path.join(ROOT, f), 'latin1')));
    expect(found).to.deep.equal([]);
  });

  it('finds the examples', () => {
    expect(examples.map((e) => e.file)).to.include.members(['docs/hooks.md', 'docs/generation.md']);
  });

  it('compiles every TypeScript example under tsc --init and runs every example, leaving no tensor alive; a misspelt tap name does not compile', function () {
    const byApp = new Map<string, string[]>([[esmApp, []], [cjsApp, []]]);
    const names = examples.map((e, i) => {
      const app = e.commonjs ? cjsApp : esmApp;
      const name = `example${i}_${e.file.replace(/\W+/g, '_')}_${e.line}`;
      const ext = e.lang === 'ts' ? 'ts' : e.commonjs ? 'cjs' : 'mjs';
      writeFileSync(path.join(app, `${name}.${ext}`), e.code);
      byApp.get(app)!.push(name);
      return { app, js: e.lang === 'ts' ? `${name}.js` : `${name}.${ext}` };
    });
    writeFileSync(path.join(esmApp, 'typed_taps.ts'), TYPED_TAPS);
    // the README's library example, in both kinds of app: its printed shapes are the ones it promises
    const readme = examples.filter((e) => e.file === 'README.md').map((e) => e.commonjs);
    expect(readme, 'README.md: an ES-module and a CommonJS library example').to.include.members([true, false]);
    for (const app of byApp.keys()) compile(app, `the docs examples${app === esmApp ? ' and the typed tap names (TYPED_TAPS)' : ''} (${path.basename(app)})`);
    examples.forEach((e, i) => {
      const stdout = runExample(names[i]!.app, names[i]!.js, `${e.file}:${e.line}`);
      if (e.file === 'README.md') expect(stdout, `${e.file}:${e.line}`).to.contain('[ 1, 3, 1024 ] [ 1, 6, 3, 3 ]');
    });
    // docs/dump-format.md's candidate dump: the installed CLI compares it with the golden dump it mirrors
    expect(examples.some((e) => e.file === 'docs/dump-format.md' && e.code.includes("'candidate.safetensors'"))).to.equal(true);
    const cmp = run(process.execPath, ['node_modules/phi4-ts/bin/phi4.js', 'compare', 'node_modules/phi4-ts/golden/dumps/phi4-mini-tiny.short.safetensors', 'candidate.safetensors'], esmApp);
    expect(cmp.status, `${cmp.stderr}${cmp.stdout}`).to.equal(0);
    expect(cmp.stdout).to.match(/^ {2}embed {2,}1x11x96 +0 +0 +1\.00000000 {2}ok$/m);
  });

  it('a CommonJS app that skips await ready() is told so, in one line, at its first model load', () => {
    writeFileSync(path.join(cjsApp, 'no-ready.cjs'), "const phi4 = require('phi4-ts');\nphi4.Phi3Model.load(phi4.bundledModel('phi4-mini-tiny'));\n");
    const r = run(process.execPath, ['no-ready.cjs'], cjsApp);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.include("BackendError: no tfjs backend is set yet: await ready() (or initBackend()) before the first model call; import 'phi4-ts' does it, require('phi4-ts') does not");
  });

  it('the leak check fails an example that leaves a tensor alive', () => {
    writeFileSync(path.join(esmApp, 'leaky.mjs'), "import { tf } from 'phi4-ts';\nconst t = tf.zeros([2]);\nconsole.log(t.shape);\n");
    const r = run(process.execPath, ['--require', LEAK_CHECK, 'leaky.mjs'], esmApp);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/1 tensor/);
  });
});
