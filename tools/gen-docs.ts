// Regenerates the numbers, shapes and source links of docs/walkthrough.md, docs/memory.md and
// docs/architecture.md from running the code.
//
// A document is prose with generated regions:  <!-- gen:NAME -->...<!-- /gen -->
// Everything between the markers is replaced by the value NAME has now (a word, a table, a code
// block); the prose around them is kept. test/walkthrough.test.ts regenerates the documents and
// fails when they differ from the committed ones.
//
//   npm run docs                          rewrite the documents (tsc, then node dist/tools/gen-docs.js)
//   node dist/tools/gen-docs.js --check     exit 1 (and name the regions) when one is stale
//
// The model runs on the cpu backend (plain JavaScript kernels), so the figures do not depend on
// the machine's SIMD.

import { formatMemory } from '../src/progress.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inverseFrequencies } from '../layers/rotary.js';
import { initBackend } from '../src/backend.js';
import { TOY_PROMPTS, walkthroughFigures } from '../src/teach/figures/figures.js';
import { headRoles, headRolesTable } from '../src/teach/toy/heads.js';
import { trainingSummary } from '../src/teach/toy/report.js';
import { TOY_DIR } from '../src/teach/toy/train.js';
import type { Phi3Config } from '../src/model/config.js';
import { DEFAULT_MEMORY_SOURCE, formatMemoryReport, memoryReport, resolveMemorySource } from '../src/model/memory.js';
import { Phi3Model } from '../src/model/model.js';
import { FORWARD_CASES } from '../src/oracle/golden.js';
import { verify } from '../src/oracle/verify.js';
import {
  type CodeRef, DEFAULT_WALKTHROUGH_CHECKPOINT, PROJECT_ROOT, type Walkthrough, defaultIds, formatWalkthrough, loadRealConfig,
  locate, num, runWalkthrough, shapeText, statsText,
} from '../src/teach/walkthrough.js';

/** The generated documents, relative to the project root. */
export const GENERATED_DOCS = ['docs/walkthrough.md', 'docs/memory.md', 'docs/architecture.md', 'README.md'];
const REGION = /<!-- gen:([\w.-]+) -->([\s\S]*?)<!-- \/gen -->/g;

/** A markdown link to the lines a reference names, resolved in `root`. */
export function codeLink(ref: CodeRef, root = PROJECT_ROOT): string {
  const l = locate(ref, root);
  const lines = l.start === l.end ? `L${l.start}` : `L${l.start}-L${l.end}`;
  return `[${l.file}#${lines}](../${l.file}#${lines})`;
}

const group = (n: number) => n.toLocaleString('en-US');

/** Source links the prose uses besides the steps' own. */
export const EXTRA_CODE: Record<string, CodeRef> = {
  'code.parseConfig': { file: 'src/model/config.ts', from: 'export function parseConfig(' },
  'code.scaling': { file: 'src/model/config.ts', from: 'attentionScaling = factor <= 1 ? 1 : Math.sqrt(' },
  'code.rotaryDim': { file: 'src/model/config.ts', from: 'const rotaryDim = Math.floor(headDim * prf);' },
  'code.usesLong': { file: 'layers/rope-tables.ts', from: 'export function usesLongFactors(', to: 'return rope.type' },
  'code.invFreq': { file: 'layers/rope-tables.ts', from: 'export function inverseFrequencies(', to: 'return inv;' },
  'code.layerLoop': { file: 'src/model/model.ts', from: 'for (let i = 0; i <= last; i++) {', to: 'opts.onLayer?.(i + 1, last + 1);' },
  'code.decoder': { file: 'layers/decoder.ts', from: 'export function decoderLayer(', to: 'return { out, cache };' },
  'code.attention': { file: 'layers/attention.ts', from: 'export function attention(', to: 'return { out, cache: { k, v } };' },
  'code.weights': { file: 'src/model/parameters.ts', from: 'export function expectedTensors(', to: 'return m;' },
  'arch.commands': { file: 'src/cli/commands/index.ts', from: 'export const COMMANDS', to: '};' },
  'arch.loadWeights': { file: 'src/model/weights.ts', from: 'export function loadWeights(' },
  'arch.validate': { file: 'src/model/model.ts', from: 'private validate(' },
  'arch.forward': { file: 'src/model/model.ts', from: 'forward(inp: ForwardInputs', to: 'return { logits, cache, ropeLong: rope.long };' },
  'arch.runWithCache': { file: 'src/model/model.ts', from: 'runWithCache(inp: ForwardInputs', to: 'return { logits: r.logits, taps };' },
  'arch.prefixTap': { file: 'layers/tap.ts', from: 'export function prefixTap(' },
  'arch.layerTaps': { file: 'layers/taps.ts', from: 'export const LAYER_TAPS', to: '} as const satisfies' },
  'arch.cases': { file: 'src/oracle/golden.ts', from: 'export const FORWARD_CASES', to: '];' },
};

function configFacts(prefix: string, c: Phi3Config): Record<string, string> {
  const r = c.rope;
  return {
    [`${prefix}.hidden`]: String(c.hiddenSize),
    [`${prefix}.layers`]: String(c.numLayers),
    [`${prefix}.heads`]: String(c.numHeads),
    [`${prefix}.kvHeads`]: String(c.numKvHeads),
    [`${prefix}.group`]: String(c.numHeads / c.numKvHeads),
    [`${prefix}.headDim`]: String(c.headDim),
    [`${prefix}.rotary`]: String(r.rotaryDim),
    [`${prefix}.pass`]: String(c.headDim - r.rotaryDim),
    [`${prefix}.qkvCols`]: String((c.numHeads + 2 * c.numKvHeads) * c.headDim),
    [`${prefix}.qCols`]: String(c.numHeads * c.headDim),
    [`${prefix}.kvCols`]: String(c.numKvHeads * c.headDim),
    [`${prefix}.intermediate`]: String(c.intermediateSize),
    [`${prefix}.vocab`]: String(c.vocabSize),
    [`${prefix}.maxPos`]: String(c.maxPositions),
    [`${prefix}.origPos`]: String(r.originalMaxPositions),
    [`${prefix}.factor`]: num(c.maxPositions / r.originalMaxPositions),
    [`${prefix}.scaling`]: r.attentionScaling.toFixed(10),
    [`${prefix}.theta`]: String(r.theta),
    [`${prefix}.eps`]: String(c.rmsNormEps),
    [`${prefix}.window`]: c.slidingWindow === null ? 'none' : String(c.slidingWindow),
    [`${prefix}.factors`]: String(r.rotaryDim / 2),
    [`${prefix}.sqrtD`]: num(Math.sqrt(c.headDim)),
  };
}

function configTable(real: Phi3Config, tiny: Phi3Config): string {
  const rows: [string, (c: Phi3Config) => string | number][] = [
    ['hidden size H', (c) => c.hiddenSize],
    ['decoder layers', (c) => c.numLayers],
    ['query heads nh / key-value heads nkv', (c) => `${c.numHeads} / ${c.numKvHeads}`],
    ['head dim d (rotary dims r)', (c) => `${c.headDim} (${c.rope.rotaryDim})`],
    ['MLP intermediate I', (c) => c.intermediateSize],
    ['vocabulary V', (c) => c.vocabSize],
    ['positions: original / max', (c) => `${c.rope.originalMaxPositions} / ${c.maxPositions}`],
    ['rope', (c) => `${c.rope.type}, theta ${c.rope.theta}, attention scaling ${c.rope.attentionScaling.toFixed(10)}`],
    ['RMSNorm eps', (c) => c.rmsNormEps],
    ['sliding window', (c) => c.slidingWindow ?? 'none'],
    ['head tied to the embedding', (c) => (c.tieWordEmbeddings ? 'yes' : 'no')],
  ];
  const params = (c: Phi3Config) => group(memoryReport(c, { contexts: [1], batch: 1, kvDtype: 'bf16' }, '').parameters);
  const lines = ['| | Phi-4-mini (golden/configs/phi-4-mini-instruct.json) | tiny (golden/models/phi4-mini-tiny) |', '|---|---|---|'];
  for (const [name, f] of rows) lines.push(`| ${name} | ${f(real)} | ${f(tiny)} |`);
  lines.push(`| parameters (tied head once) | ${params(real)} | ${params(tiny)} |`);
  return lines.join('\n');
}

function ropeTable(real: Phi3Config): string {
  const r = real.rope;
  const short = inverseFrequencies(r, false);
  const long = inverseFrequencies(r, true);
  const half = r.rotaryDim / 2;
  const lines = ['| i | short factor | long factor | inv_freq short | inv_freq long | wavelength short (positions) | wavelength long (positions) |', '|---|---|---|---|---|---|---|'];
  for (const i of [0, 8, 16, 24, 32, 40, half - 1]) {
    const w = (f: number) => num((2 * Math.PI) / f);
    lines.push(`| ${i} | ${num(r.shortFactor![i])} | ${num(r.longFactor![i])} | ${num(short[i])} | ${num(long[i])} | ${w(short[i])} | ${w(long[i])} |`);
  }
  return lines.join('\n');
}

function stepBlock(w: Walkthrough, id: string, root: string): string {
  const s = w.steps.find((x) => x.id === id)!;
  const lines = [
    `- shape \`${s.layout}\`: Phi-4-mini ${shapeText(s.realShape)}, tiny ${shapeText(s.shape)}`,
  ];
  if (s.stats) lines.push(`- tiny values: ${statsText(s.stats).replace(/ {2}/g, ', ')}`);
  if (s.note) lines.push(`- ${s.note}`);
  lines.push(`- code: ${s.code.map((r) => codeLink(r, root)).join(', ')}`);
  return lines.join('\n');
}

/** Every region's value, computed now. The backend must be set (cpu for the committed document). */
export function docValues(root = PROJECT_ROOT): Map<string, string> {
  const real = loadRealConfig();
  const model = Phi3Model.load(DEFAULT_WALKTHROUGH_CHECKPOINT);
  let w: Walkthrough;
  try {
    w = runWalkthrough(model, defaultIds(), 0, real);
  } finally {
    model.dispose();
  }
  const v = new Map<string, string>(Object.entries({ ...configFacts('real', real), ...configFacts('tiny', w.config) }));
  v.set('config', configTable(real, w.config));
  v.set('T', String(w.inputIds.length));
  v.set('ids', w.inputIds.join(', '));
  v.set('rope.table', ropeTable(real));
  v.set('real.ropeSet', w.realRopeLong ? 'long' : 'short');
  v.set('tiny.ropeSet', w.ropeLong ? 'long' : 'short');
  for (const s of w.steps) v.set(`step.${s.id}`, stepBlock(w, s.id, root));
  for (const [name, ref] of Object.entries(EXTRA_CODE)) v.set(name, codeLink(ref, root));
  v.set('top', ['| token id | logit | softmax p |', '|---|---|---|', ...w.top.map((t) => `| ${t.id} | ${num(t.logit)} | ${num(t.p)} |`)].join('\n'));
  v.set('next', String(w.top[0].id));
  const realMem = memoryReport(real, { contexts: [real.maxPositions], batch: 1, kvDtype: 'bf16' }, '');
  v.set('real.bf16', formatMemory(realMem.rows.find((r) => r.scheme.id === 'bf16')!.weights.bytes));
  v.set('real.kvMax', formatMemory(realMem.kvCache[0]));
  v.set('real.params', group(realMem.parameters));
  v.set('real.embedParams', group(real.vocabSize * real.hiddenSize));
  v.set('cli', '```\n$ npx phi4 walkthrough --backend cpu\n' + formatWalkthrough(w, root) + '\n```');
  const mem = resolveMemorySource(DEFAULT_MEMORY_SOURCE);
  v.set('memory.default', '```\n$ npx phi4 memory\n' + formatMemoryReport(memoryReport(mem.config, { contexts: [4096, 32768, 131072], batch: 1, kvDtype: 'bf16' }, mem.source)) + '\n```');
  const toy = walkthroughFigures();
  const copyLength = (prompt: string) => (prompt.split(' ').length - 1) / 2;
  v.set('toy.roles', headRolesTable([
    { label: `${toy.runs.short.ids.length} tok`, roles: headRoles(toy.runs.short, copyLength(TOY_PROMPTS.short)) },
    { label: `${toy.runs.long.ids.length} tok`, roles: headRoles(toy.runs.long, copyLength(TOY_PROMPTS.long)) },
  ], toy.config.numHeads / toy.config.numKvHeads));
  v.set('toy.training', trainingSummary(TOY_DIR) ?? 'no training.json');
  for (const [k, x] of Object.entries(configFacts('toy', toy.config))) v.set(k, x);
  const shown: string[] = [];
  verify(FORWARD_CASES.filter((c) => c.name === 'phi4-mini-tiny.long'), (line) => shown.push(line));
  v.set('readme.caseCount', String(FORWARD_CASES.length));
  v.set('readme.verify', '```\n$ npx phi4 verify --case phi4-mini-tiny.long --backend cpu\n' + shown.join('\n').trim() + '\n```');
  return v;
}

/** The walkthrough's figures (src/teach/figures/figures.ts) as files relative to the project root: docs/figures/NAME.svg. */
export function figureFiles(): Map<string, string> {
  const { svgs } = walkthroughFigures();
  return new Map([...svgs].map(([name, svg]) => [`docs/figures/${name}.svg`, svg]));
}

/** The document with every generated region replaced; throws naming an unknown region. */
export function renderDoc(template: string, values: Map<string, string>): string {
  return template.replace(REGION, (_all, name: string, old: string) => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`unknown generated region "${name}"`);
    const block = value.includes('\n') || old.startsWith('\n');
    return `<!-- gen:${name} -->${block ? `\n${value}\n` : value}<!-- /gen -->`;
  });
}

/** The names of the regions whose content differs between two versions of the document. */
export function staleRegions(committed: string, fresh: string): string[] {
  const regions = (t: string) => new Map([...t.matchAll(REGION)].map((m) => [m[1], m[2]]));
  const a = regions(committed);
  const b = regions(fresh);
  return [...b].filter(([k, x]) => a.get(k) !== x).map(([k]) => k);
}

async function main(argv: string[]): Promise<number> {
  await initBackend('cpu');
  const values = docValues();
  let stale = 0;
  for (const doc of GENERATED_DOCS) {
    const file = join(PROJECT_ROOT, doc);
    const committed = readFileSync(file, 'utf8');
    const fresh = renderDoc(committed, values);
    if (fresh === committed) {
      console.error(`${doc} is up to date`);
    } else if (argv.includes('--check')) {
      console.error(`${doc} is stale in: ${staleRegions(committed, fresh).join(', ') || 'the text outside the regions'}; run npm run docs`);
      stale++;
    } else {
      writeFileSync(file, fresh);
      console.error(`rewrote ${doc}`);
    }
  }
  for (const [rel, svg] of figureFiles()) {
    const file = join(PROJECT_ROOT, rel);
    const committed = existsSync(file) ? readFileSync(file, 'utf8') : null;
    if (committed === svg) {
      console.error(`${rel} is up to date`);
    } else if (argv.includes('--check')) {
      console.error(`${rel} is stale; run npm run docs`);
      stale++;
    } else {
      mkdirSync(join(PROJECT_ROOT, 'docs', 'figures'), { recursive: true });
      writeFileSync(file, svg);
      console.error(`wrote ${rel}`);
    }
  }
  return stale > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (e: Error) => {
    console.error(e.stack ?? String(e));
    process.exit(1);
  });
}
