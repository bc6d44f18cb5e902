// Another llama.cpp capture tool's naming (issue 20, item 7). ggml names the view of wqkv, the
// rotated query and the scaled query all "Qcur-N"; a capture tool has to make them unique, and
// tools do it differently. The built-in map finds the rotated one by its op (recorded in the
// dump's metadata, or after the name), else by graph order. Each candidate here is our committed
// phi4-tapdump dump of the 11-token prompt at n_ctx 1024 (llama.cpp picks the long factors from
// the allocated context) rewritten in another convention, with the unrotated view added back in
// graph order before the rotated node; it must still be diagnosed at layers.0.q_rot by name.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../weights/index.js';
import { ROOT, phi4, show } from './cli-helpers.js';

const LLAMA = path.join(ROOT, 'golden', 'llamacpp', 'phi4-mini-tiny.short.n_ctx1024.safetensors');
const MODEL = path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny');
const GOLDEN = path.join(ROOT, 'golden', 'dumps', 'phi4-mini-tiny.short.safetensors');

type Namer = (node: 'Q.view' | 'Q.rope' | 'Q.scale' | 'K.view' | 'K.rope') => string;

/** The committed dump with Qcur-0 / Kcur-0 renamed by `name`, the views added before the ropes, and `meta` added. */
function rewrite(out: string, name: Namer, meta: (names: Record<string, string>) => Record<string, string> = () => ({})): string {
  const f = SafetensorsFile.open(LLAMA);
  const tensors: TensorToWrite[] = [];
  const ops: Record<string, string> = {};
  try {
    const wqkv = f.readFloat32('wqkv-0'); // [T, (6 + 2 * 2) * 16]
    const T = 11;
    const view = (h0: number, nh: number) => {
      const v = new Float32Array(T * nh * 16);
      for (let t = 0; t < T; t++) v.set(wqkv.subarray(t * 160 + h0 * 16, t * 160 + (h0 + nh) * 16), t * nh * 16);
      return v;
    };
    const push = (n: string, op: string, shape: number[], data: Float32Array | Int32Array, dtype: 'F32' | 'I32' = 'F32') => {
      tensors.push({ name: n, dtype, shape, data });
      ops[n] = op;
    };
    for (const t of f.tensors()) {
      const int = t.dtype.startsWith('I');
      const data = int ? f.readInt32(t.name) : f.readFloat32(t.name);
      if (t.name === 'Qcur-0.rope') {
        push(name('Q.view'), 'RESHAPE', [T, 6, 16], view(0, 6));
        push(name('Q.rope'), 'ROPE', t.shape, data);
      } else if (t.name === 'Qcur-0.scale') push(name('Q.scale'), 'SCALE', t.shape, data);
      else if (t.name === 'Kcur-0.rope') {
        push(name('K.view'), 'RESHAPE', [T, 2, 16], view(6, 2));
        push(name('K.rope'), 'ROPE', t.shape, data);
      } else push(t.name, 'NONE', t.shape, data, int ? 'I32' : 'F32');
    }
    writeSafetensors(out, tensors, { ...f.metadata, producer: 'another capture tool', ...meta(ops) });
  } finally {
    f.close();
  }
  return out;
}

describe('llama.cpp map: ggml\'s shared node names resolved by op, from other capture tools (issue 20)', function () {
  this.timeout(120_000);
  let tmp: string;
  let ref: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-llnames-'));
    ref = path.join(tmp, 'short.safetensors');
    const r = phi4(['dump', MODEL, '--inputs', GOLDEN, '--out', ref]);
    expect(r.status, show(r)).to.equal(0);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** compare's verdict on a candidate: q_rot and k_rot mapped, the LongRoPE fingerprint named. */
  function expectDiagnosed(cand: string): void {
    const r = phi4(['compare', ref, cand, '--json', '--no-blame']);
    expect(r.status, show(r)).to.equal(1);
    const j = JSON.parse(r.stdout);
    const names = j.taps.map((t: { name: string }) => t.name);
    expect(names).to.include.members(['layers.0.q_rot', 'layers.0.k_rot']);
    expect(j.firstDivergent).to.equal('layers.0.q_rot');
    expect(j.ropeFingerprint.candidate).to.equal('long');
    expect(j.diagnosis).to.include('long factors used for a sequence within the original context').and.include('allocated n_ctx of 1024');
  }

  it('NAME@OP (Qcur-0@RESHAPE, Qcur-0@ROPE, Qcur-0@SCALE): the op after the name picks the rotated node', () => {
    expectDiagnosed(rewrite(path.join(tmp, 'at.safetensors'), (n) => `${n[0]}cur-0@${n.split('.')[1].toUpperCase()}`));
  });

  it('no op anywhere (Qcur-0, Qcur-0_1, Qcur-0_2): graph order, the second node of the name', () => {
    const idx = { view: '', rope: '_1', scale: '_2' } as Record<string, string>;
    expectDiagnosed(rewrite(path.join(tmp, 'order.safetensors'), (n) => `${n[0]}cur-0${idx[n.split('.')[1]]}`));
  });

  it('ops in the metadata win over graph order: opaque suffixes, the rotated node named by `ops`', () => {
    // graph order alone would take the second node; here the rope is the first (#b) and the view the second (#a)
    const suffix = { view: '#a', rope: '#b', scale: '#c' } as Record<string, string>;
    const file = rewrite(path.join(tmp, 'ops.safetensors'), (n) => `${n[0]}cur-0${suffix[n.split('.')[1]]}`, (ops) => ({ ops: JSON.stringify(ops) }));
    // reorder: the views after the ropes, so that graph order would pick the view
    const f = SafetensorsFile.open(file);
    const ts = f.tensors().map((t) => ({ name: t.name, dtype: t.dtype as 'F32' | 'I32', shape: t.shape, data: t.dtype === 'I32' ? f.readInt32(t.name) : f.readFloat32(t.name) }));
    const meta = f.metadata;
    f.close();
    const at = (n: string) => ts.findIndex((t) => t.name === n);
    for (const w of ['Q', 'K']) {
      const [v, r] = [at(`${w}cur-0#a`), at(`${w}cur-0#b`)];
      [ts[v], ts[r]] = [ts[r], ts[v]];
    }
    writeSafetensors(file, ts, meta);
    expectDiagnosed(file);
    // the same file without its ops: graph order takes the view, q_rot is then no rotation at all
    const bare = path.join(tmp, 'ops-dropped.safetensors');
    writeSafetensors(bare, ts, { ...meta, ops: '' });
    const j = JSON.parse(phi4(['compare', ref, bare, '--json', '--no-blame']).stdout);
    expect(j.ropeFingerprint?.candidate ?? null).to.not.equal('long');
  });
});
