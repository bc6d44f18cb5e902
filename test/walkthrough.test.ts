// docs/walkthrough.md against the code: a fresh run must reproduce every generated region
// (document drift), every source link must still point at the code it names, and
// `phi4 walkthrough` must print what section 8 of the document shows.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { Phi3Model } from '../src/model/model.js';
import { EXTRA_CODE, GENERATED_DOCS, docValues, figureFiles, renderDoc, staleRegions } from '../tools/gen-docs.js';
import { type CodeRef, DEFAULT_WALKTHROUGH_CHECKPOINT, STEP_IDS, defaultIds, loadRealConfig, runWalkthrough, stepCode } from '../src/teach/walkthrough.js';
import { useBackend } from './helpers.js';
import { ROOT, phi4 } from './cli-helpers.js';

const DOC = path.join(ROOT, 'docs', 'walkthrough.md');

/** The content of a generated region of the committed document. */
function region(doc: string, name: string): string {
  const m = new RegExp(`<!-- gen:${name.replace(/\./g, '\\.')} -->([\\s\\S]*?)<!-- /gen -->`).exec(doc);
  if (!m) throw new Error(`docs/walkthrough.md has no region ${name}`);
  return m[1];
}

describe('docs/walkthrough.md', function () {
  this.timeout(30_000);
  const committed = fs.readFileSync(DOC, 'utf8');
  before(() => useBackend('cpu'));

  it(`${GENERATED_DOCS.join(' and ')} equal a fresh run of the code (npm run docs regenerates them)`, () => {
    const values = docValues();
    for (const doc of GENERATED_DOCS) {
      const text = fs.readFileSync(path.join(ROOT, doc), 'utf8');
      const fresh = renderDoc(text, values);
      const stale = staleRegions(text, fresh);
      expect(stale, `${doc}: stale regions ${stale.join(', ')}; run npm run docs`).to.deep.equal([]);
      expect(fresh === text, `${doc} differs from a fresh run; run npm run docs`).to.equal(true);
    }
  });

  it('docs/figures/*.svg equal a fresh run of the code, and docs/walkthrough.md shows every one of them', () => {
    const files = figureFiles();
    expect(files.size).to.equal(6);
    for (const [rel, svg] of files) {
      const file = path.join(ROOT, rel);
      expect(fs.existsSync(file) && fs.readFileSync(file, 'utf8') === svg, `${rel} differs from a fresh run; run npm run docs`).to.equal(true);
      expect(committed, `docs/walkthrough.md does not show ${rel}`).to.include(`](${path.relative('docs', rel)})`);
    }
  });

  it('no text of a figure runs past the figure\'s width (estimated glyph widths)', () => {
    // Average advance per character at font-size 11: sans-serif about 0.55 em, bold and monospace
    // 0.6 em; generous enough that the attention-long title (clipped in a browser at 838 px) fails.
    for (const [rel, svg] of figureFiles()) {
      const width = Number(/<svg[^>]* width="([\d.]+)"/.exec(svg)![1]);
      for (const m of svg.matchAll(/<text x="([\d.]+)"[^>]*?( font-weight="bold"| font-family="monospace")?[^>]*>([^<]*)<\/text>/g)) {
        const chars = m[3]!.replace(/&[a-z]+;/g, '_').length;
        if (/text-anchor="(middle|end)"/.test(m[0])) continue; // placed by their centre or end, inside the plot
        const end = Number(m[1]) + chars * 11 * (m[2] ? 0.6 : 0.55);
        expect(end, `${rel}: "${m[3]}" ends at about ${end.toFixed(0)} px, past the width ${width}`).to.be.at.most(width);
      }
    }
  });

  it('every source link of the generated documents points at lines that still hold the code it names; every step has its links', () => {
    const refs: CodeRef[] = [...STEP_IDS.flatMap(stepCode), ...Object.values(EXTRA_CODE)];
    const links = GENERATED_DOCS.flatMap((doc) => [...fs.readFileSync(path.join(ROOT, doc), 'utf8').matchAll(/\]\(\.\.\/([\w./-]+)#L(\d+)(?:-L(\d+))?\)/g)].map((m) => ({
      doc, file: m[1], start: Number(m[2]), end: Number(m[3] ?? m[2]),
    })));
    expect(links.length).to.be.greaterThan(STEP_IDS.length);
    const holds = (l: (typeof links)[number], r: CodeRef) => {
      if (l.file !== r.file) return false;
      const lines = fs.readFileSync(path.join(ROOT, l.file), 'utf8').split('\n');
      return l.end <= lines.length && lines[l.start - 1].includes(r.from) && lines[l.end - 1].includes(r.to ?? r.from);
    };
    for (const l of links) {
      expect(refs.some((r) => holds(l, r)), `${l.doc}: ${l.file}#L${l.start}-L${l.end} holds none of the code the documents name there`).to.equal(true);
    }
    for (const r of refs) expect(links.some((l) => holds(l, r)), `no link to ${r.file} "${r.from}"`).to.equal(true);
    for (const id of STEP_IDS) expect(region(committed, `step.${id}`)).to.match(/- code: \[/);
  });

  it('notices code that moved: one line added at the top of layers/attention.ts makes the attention links stale', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-walk-'));
    try {
      for (const dir of ['src', 'layers']) fs.cpSync(path.join(ROOT, dir), path.join(root, dir), { recursive: true });
      const att = path.join(root, 'layers', 'attention.ts');
      fs.writeFileSync(att, '// moved\n' + fs.readFileSync(att, 'utf8'));
      const stale = staleRegions(committed, renderDoc(committed, docValues(root)));
      expect(stale).to.include.members(['step.qkv', 'step.scores', 'code.attention', 'cli']);
      expect(stale).not.to.include('step.embed');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses a region the generator does not know', () => {
    expect(() => renderDoc('<!-- gen:nope -->x<!-- /gen -->', new Map())).to.throw(/unknown generated region "nope"/);
  });

  it('runs every step without leaking tensors, with the tap shapes of both models', () => {
    const model = Phi3Model.load(DEFAULT_WALKTHROUGH_CHECKPOINT);
    try {
      const before = tf.memory().numTensors;
      const w = runWalkthrough(model, defaultIds(), 1, loadRealConfig());
      expect(tf.memory().numTensors).to.equal(before);
      expect(w.steps.map((s) => s.id)).to.deep.equal(STEP_IDS);
      const qkv = w.steps.find((s) => s.id === 'qkv')!;
      expect(qkv.tap).to.equal('layers.1.qkv');
      expect(qkv.realShape).to.deep.equal([1, 11, (24 + 2 * 8) * 128]);
      expect(qkv.shape).to.deep.equal([1, 11, (6 + 2 * 2) * 16]);
      expect(w.steps.find((s) => s.id === 'logits')!.realShape).to.deep.equal([1, 11, 200064]);
    } finally {
      model.dispose();
    }
  });
});

describe('phi4 walkthrough (cli)', function () {
  this.timeout(60_000);
  const committed = fs.readFileSync(DOC, 'utf8');

  it('prints, on cpu, exactly what section 8 of docs/walkthrough.md shows', () => {
    const r = phi4(['walkthrough', '--backend', 'cpu']);
    expect(r.status, r.stderr).to.equal(0);
    const shown = region(committed, 'cli').trim().split('\n');
    expect(shown[0]).to.equal('```');
    expect(shown[1]).to.equal('$ npx phi4 walkthrough --backend cpu');
    expect(r.stdout.trimEnd()).to.equal(shown.slice(2, -1).join('\n'));
  });

  it('--ids and --layer pick the tokens and the layer', () => {
    const r = phi4(['walkthrough', '--ids', '1,2,3', '--layer', '3']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.include('input_ids (3): 1 2 3');
    expect(r.stdout).to.include('layers.3.attn_probs');
    expect(r.stdout).to.include('[1, 6, 3, 3] | [1, 24, 3, 3]');
  });

  it('--prompt goes through the bundled tokenizer; a layer out of range is refused with one line and exit 2', () => {
    const p = phi4(['walkthrough', '--prompt', 'Hello']);
    expect(p.status, p.stderr).to.equal(0);
    expect(p.stdout).to.include('input_ids (3): 39 596 78'); // "H" "ell" "o": the tiny (1012-token) prefix of Phi-4-mini's vocabulary
    const l = phi4(['walkthrough', '--layer', '4']);
    expect(l.status).to.equal(2);
    expect(l.stderr.trim().split('\n').at(-1)).to.match(/^phi4: --layer: 4 is not a layer of .* \(0 \.\. 3\)$/);
  });
});
