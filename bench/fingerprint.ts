// The LongRoPE fingerprint of a selective dump's layer-0 rotary taps (docs/long-context.md):
//   node dist/bench/fingerprint.js DUMP.safetensors CHECKPOINT_DIR
// The dump must hold layers.0.qkv and layers.0.q_rot (any rows: `phi4 dump --positions`); prints
// which factor set rotated the queries, and which one the sequence's length calls for.

import { SafetensorsFile } from '../weights/index.js';
import { loadConfig } from '../src/model/config.js';
import { ropeFingerprint } from '../src/compare/diagnose/rope-fingerprint.js';

const [file, dir] = process.argv.slice(2);
if (!file || !dir) {
  process.stderr.write('fingerprint: usage: fingerprint DUMP.safetensors CHECKPOINT_DIR\n');
  process.exit(2);
}
const f = SafetensorsFile.open(file);
const seq = f.info('input_ids').shape[1]!;
const rows = f.metadata.selection ? (JSON.parse(f.metadata.selection).rows as [number, number]) : [0, seq];
const tensor = (n: string) => ({ shape: [...f.info(n).shape], data: f.readFloat32(n) });
const fp = ropeFingerprint(loadConfig(dir).rope, 0, tensor('layers.0.qkv'), tensor('layers.0.q_rot'), { first: rows[0], seqLen: seq });
f.close();
if (!fp) {
  process.stderr.write(`fingerprint: ${file}: layers.0.qkv and layers.0.q_rot do not line up\n`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify({ file, seq, rows, candidate: fp.candidate, reference: fp.reference, fits: fp.fits })}\n${fp.text}\n`);
