// The fuzz harness (issue 12): its validator judges the format's rules on its own, and a few
// thousand mutated headers, configs and --inputs files run clean (no crash, hang, blow-up,
// disagreement with the validator, or unbounded message). `npm run fuzz -- --cases 100000` is the full run.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { headerSources, makeCase } from '../fuzz/cases.js';
import { HANG_MS, cpuMsOf, runFuzz } from '../fuzz/fuzz.js';
import { judge } from '../fuzz/validator.js';
import { ROOT } from './cli-helpers.js';

function st(header: string, data = 0): Uint8Array {
  const h = Buffer.from(header, 'utf8');
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([p, h, Buffer.alloc(data)]);
}
const E = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';

describe('fuzz harness (issue 12)', function () {
  this.timeout(120_000);

  it('the validator accepts every bundled safetensors file', () => {
    for (const s of headerSources()) {
      const bytes = fs.readFileSync(path.join(ROOT, s.file));
      expect(judge(bytes), s.file).to.include({ accept: true });
    }
  });

  it('the validator refuses what the format and the documented limits refuse, and accepts their edges', () => {
    const refuse: [string, Uint8Array][] = [
      ['leading whitespace', st(` {"a":${E}}`, 4)],
      ['duplicate key', st(`{"a":${E},"a":${E}}`, 4)],
      ['2.0', st('{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', 4)],
      ['1e0', st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4e0]}}', 4)],
      ['-0', st('{"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}')],
      ['overflow', st('{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}')],
      ['depth 129', st(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":${'['.repeat(128)}${']'.repeat(128)}}}`)],
      ['gap', st(`{"a":${E}}`, 5)],
      ['lone surrogate', st(`{"\\udc00":${E}}`, 4)],
      ['key 4097', st(`{"${'k'.repeat(4097)}":${E}}`, 4)],
    ];
    // a length prefix one byte past the JSON reaches into the (zero) data: a NUL after the object
    const header = Buffer.from(`{"a":${E}}`);
    const prefixed = Buffer.concat([Buffer.alloc(8), header]);
    prefixed.writeBigUInt64LE(BigInt(header.length + 1));
    expect(judge(prefixed, prefixed.length + 4).accept, 'prefix into the data').to.equal(false);
    for (const [what, bytes] of refuse) expect(judge(bytes).accept, what).to.equal(false);
    const accept: [string, Uint8Array][] = [
      ['metadata null', st(`{"__metadata__":null,"a":${E}}`, 4)],
      ['depth 128', st(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":${'['.repeat(126)}${']'.repeat(126)}}}`)],
      ['padding', st(`{"a":${E}}   `, 4)],
      ['key 4096', st(`{"${'k'.repeat(4096)}":${E}}`, 4)],
    ];
    for (const [what, bytes] of accept) expect(judge(bytes).accept, what).to.equal(true);
  });

  it('the runner catches a hang, a dying worker, a memory blow-up and a thrown bug, and goes on with the next case', async () => {
    // a 300 MiB limit and a 400 MiB allocation keep the blow-up quick on a busy machine. A hang is
    // a case that spends hangMs of the worker's CPU time (not wall-clock time) without a result:
    // the injected for(;;) reaches 2 s whatever the load, a header case spends milliseconds however
    // long it waits for a core, so the count is exact on a loaded machine too.
    process.env.PHI4_FUZZ_INJECT = 'hang:2,crash:4,blowup:6,throw:8';
    process.env.PHI4_FUZZ_INJECT_BYTES = String(400 * 2 ** 20);
    let s;
    try {
      s = await runFuzz({ cases: 10, seed: 3, kinds: ['header'], memoryLimit: 300 * 2 ** 20, hangMs: 2000 });
    } finally {
      delete process.env.PHI4_FUZZ_INJECT;
      delete process.env.PHI4_FUZZ_INJECT_BYTES;
    }
    expect(s.ok).to.equal(false);
    expect(cpuMsOf(process.pid), 'the CPU time of a process, from /proc').to.be.a('number').above(0);
    expect(s.hangs, JSON.stringify(s.failures)).to.equal(1);
    expect(s.failures.find((f) => f.status === 'hang')!.detail).to.equal('no result after 2000 ms of CPU time');
    expect(s.blowups).to.equal(1);
    expect(s.crashes).to.equal(2); // the worker that exits, the TypeError
    expect(s.failures.map((f) => [f.i, f.status])).to.deep.include.members([[2, 'hang'], [4, 'crash'], [6, 'blow-up'], [8, 'crash']]);
  });

  it('cases are a function of (seed, index)', () => {
    for (const i of [0, 1, 17, 999]) expect(JSON.stringify(makeCase(5, i))).to.equal(JSON.stringify(makeCase(5, i)));
  });

  // Compare candidates count as failures when a wrong one passes (--strict-compare).
  it('2,000 mutated headers, configs, inputs and compare candidates: no crash, hang, blow-up, disagreement, unbounded message or wrong candidate passed', async () => {
    // a hang: 5 s of the worker's CPU time on one case (HANG_MS), not of wall-clock time
    const s = await runFuzz({ cases: 2000, seed: 12, kinds: ['header', 'config', 'inputs', 'compare'], strictCompare: true });
    console.log(`      slowest case: ${s.slowestCaseCpuMs.toFixed(0)} ms of the worker's CPU time (a hang: ${HANG_MS})`);
    const detail = JSON.stringify(s.failures.slice(0, 5));
    expect(s.crashes, detail).to.equal(0);
    expect(s.hangs, detail).to.equal(0);
    expect(s.blowups, detail).to.equal(0);
    expect(s.disagreements, detail).to.equal(0);
    expect(s.badMessages, detail).to.equal(0);
    expect(s.ok).to.equal(true);
    // the cases reach both verdicts, so the comparison with the validator means something
    expect(s.perKind.header!.accepted).to.be.above(50);
    expect(s.perKind.header!.refused).to.be.above(500);
    expect(s.perKind.config!.refused).to.be.above(20);
    expect(s.perKind.inputs!.cases).to.be.above(50);
    expect(s.perKind.compare!.cases).to.be.above(50);
  });
});
