// `phi4 compare --weights-reference` takes the candidate's quantized weights themselves (a .gguf):
// compare makes our dump of them on the reference dump's inputs, the exact math on those weights
// that the candidate is then judged against. And a checkpoint given where a dump is expected is
// named as such, not read as a damaged safetensors file.

import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../weights/index.js';
import { readInputs } from '../checkpoint/inputs.js';
import { isGgufPath } from '../checkpoint/gguf/checkpoint.js';
import { Phi3Model } from '../model/model.js';
import { writeDump } from '../oracle/dump.js';
import { checkDumpMemory, defaultMaxMemoryGiB, precheckCheckpoint, precheckInputs } from '../safety/precheck.js';
import { InputError } from '../errors.js';

/** True when the file starts with the GGUF magic (whatever its name). */
function ggufMagic(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(4);
      return readSync(fd, b, 0, 4, 0) === 4 && b.toString('latin1') === 'GGUF';
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** What a path given as a dump really is, when it is a checkpoint: a sentence, or null when it may be a dump. */
export function notADump(path: string): string | null {
  if (!existsSync(path)) return null; // the reader names a missing file
  if (statSync(path).isDirectory()) {
    return existsSync(join(path, 'config.json'))
      ? 'a checkpoint directory, not a dump; make one with `phi4 dump DIR --inputs REFERENCE.safetensors --out FILE`'
      : 'a directory, not a dump';
  }
  if (isGgufPath(path) || ggufMagic(path)) return 'a GGUF checkpoint, not a dump; make one with `phi4 dump FILE.gguf --inputs REFERENCE.safetensors --out FILE`';
  try {
    const f = SafetensorsFile.open(path);
    try {
      const names = f.tensors().map((t) => t.name);
      if (f.metadata.format !== 'phi4-ts.dump' && !f.has('input_ids') && names.some((n) => /^(model\.)?(embed_tokens|layers\.\d+\.self_attn)\b.*\.weight$/.test(n))) {
        return `a checkpoint's weights (${names.find((n) => n.endsWith('.weight'))}, ...), not a dump`;
      }
    } finally {
      f.close();
    }
  } catch {
    return null; // not safetensors at all: the reader says so
  }
  return null;
}

/** Refuses a checkpoint where a dump is expected, naming `role` (reference, candidate, --weights-reference). */
export function expectDump(path: string, role: string): void {
  const why = notADump(path);
  if (why) throw new InputError(`${path} (${role}): ${why}`);
}

/**
 * Our dump of the GGUF `gguf` on the inputs of the dump `refPath`, in a temporary folder; `ready`
 * starts the backend and returns its name. Returns the dump's path and a function that removes it.
 */
export async function dumpQuantizedWeights(gguf: string, refPath: string, ready: () => Promise<string>, tfjs: string): Promise<{ path: string; remove: () => void }> {
  const config = precheckCheckpoint(gguf);
  const inputs = readInputs(refPath);
  try {
    precheckInputs(config, inputs);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    throw new InputError(`--weights-reference ${gguf}: this checkpoint is not the one the dumps were made from (${e.message})`);
  }
  checkDumpMemory(config, inputs.batch, inputs.seq, defaultMaxMemoryGiB(), gguf);
  const backend = await ready();
  const dir = mkdtempSync(join(tmpdir(), 'phi4-qref-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const out = join(dir, 'quantized-reference.safetensors');
    const model = Phi3Model.load(gguf);
    try {
      writeDump(model, inputs, out, { backend, tfjs });
    } finally {
      model.dispose();
    }
    return { path: out, remove };
  } catch (e) {
    remove();
    throw e;
  }
}
