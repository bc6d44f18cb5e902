// Executable docs: every TypeScript/JavaScript example in README.md and docs/*.md runs, unchanged,
// against the packed package (`npm pack`) installed into a fresh app, the TypeScript ones compiled
// with `tsc --strict`. Also checks what the tarball holds: the library entry point and its
// declarations, the bundled checkpoints and docs, and no compiled tests.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './cli-helpers.js';

interface Example {
  file: string; // the doc, relative to the repo
  line: number;
  lang: 'ts' | 'js';
  code: string;
}

/** The fenced ```ts / ```typescript / ```js / ```javascript blocks of a markdown file. */
export function examplesOf(file: string, text: string): Example[] {
  const out: Example[] = [];
  const re = /^```(ts|typescript|js|javascript|mjs)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const lang = m[1] === 'ts' || m[1] === 'typescript' ? 'ts' : 'js';
    out.push({ file, line: text.slice(0, m.index).split('\n').length, lang, code: m[2] });
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

describe('the packed package and the docs examples', function () {
  this.timeout(600_000);
  let work = '';
  let app = '';
  let packed: string[] = [];
  const examples = docExamples();

  before(function () {
    work = mkdtempSync(path.join(tmpdir(), 'phi4-pack-'));
    // dist/ is already built by `npm test`; --ignore-scripts skips the prepare rebuild.
    const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT);
    expect(pack.status, pack.stderr).to.equal(0);
    const info = JSON.parse(pack.stdout)[0] as { filename: string; files: { path: string }[] };
    packed = info.files.map((f) => f.path);
    app = path.join(work, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({
      name: 'phi4-docs-app', private: true, type: 'module',
      dependencies: { 'phi4-ts': `file:../${path.basename(info.filename)}` },
    }, null, 2));
    // From the npm cache only (npm ci filled it; --offline: the test never reaches the network, and
    // a package missing from the cache fails here by name); tfjs-node (optional) is left out.
    const inst = run('npm', ['install', '--offline', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error'], app);
    expect(inst.status, inst.stderr).to.equal(0);
    writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'out',
        // as `tsc --init` sets it: tfjs's own declarations name globals (EmscriptenModule, Long)
        // that only further @types packages declare; the examples themselves are checked in full
        skipLibCheck: true,
        // the app's own @types/node, borrowed from the repo rather than installed again
        typeRoots: [path.join(ROOT, 'node_modules', '@types')], types: ['node'],
      },
      include: ['*.ts'],
    }, null, 2));
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds the entry point with declarations, the sources the errors name, checkpoints and docs, and no tests', () => {
    for (const f of ['package.json', 'README.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/cli.js', 'bin/phi4.js', 'layers/taps.ts',
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

  it('compiles every TypeScript example with tsc --strict and runs every example; a misspelt tap name does not compile', function () {
    const names: string[] = [];
    examples.forEach((e, i) => {
      const name = `example${i}_${e.file.replace(/\W+/g, '_')}_${e.line}`;
      writeFileSync(path.join(app, `${name}.${e.lang === 'ts' ? 'ts' : 'mjs'}`), e.code);
      names.push(name);
    });
    writeFileSync(path.join(app, 'typed_taps.ts'), TYPED_TAPS);
    const tsc = run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], app);
    expect(tsc.status, `tsc --strict on the docs examples and the typed tap names (TYPED_TAPS):\n${tsc.stdout}${tsc.stderr}`).to.equal(0);
    examples.forEach((e, i) => {
      const js = e.lang === 'ts' ? path.join('out', `${names[i]}.js`) : `${names[i]}.mjs`;
      const r = run(process.execPath, [js], app, 120_000);
      expect(r.status, `${e.file}:${e.line} example failed:\n${r.stderr}${r.stdout}`).to.equal(0);
    });
  });
});
