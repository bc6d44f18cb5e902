// Model inputs from the command line or from a safetensors file (a golden dump serves as one).

import { SafetensorsFile } from '../../weights/index.js';
import { type ForwardInputs } from '../model/model.js';
import { InputError } from '../errors.js';

/** "5,17,42" -> one row of ids. */
export function parseIds(text: string): ForwardInputs {
  const parts = text.split(',').map((s) => s.trim());
  const ids = parts.map((s) => {
    if (!/^\d+$/.test(s) || Number(s) > 0x7fffffff) throw new InputError(`--ids: "${s}" is not a token id (a non-negative 32-bit integer)`);
    return Number(s);
  });
  if (ids.length === 0) throw new InputError('--ids: no token ids given');
  return { inputIds: Int32Array.from(ids), batch: 1, seq: ids.length };
}

/**
 * Reads `input_ids` [B, T] (I32 or I64) and the optional `attention_mask` [B, T] and
 * `position_ids` [B, T] from a safetensors file. `checkSize` sees [B, T] before anything is read.
 */
export function readInputs(path: string, checkSize?: (batch: number, seq: number) => void): ForwardInputs {
  const f = SafetensorsFile.open(path);
  try {
    if (!f.has('input_ids')) throw new InputError(`${path}: no "input_ids" tensor`);
    const shape = f.info('input_ids').shape;
    if (shape.length !== 2) throw new InputError(`${path}: "input_ids" must be [batch, seq], got [${shape}]`);
    const [batch, seq] = shape;
    checkSize?.(batch, seq); // before any id is read
    const inp: ForwardInputs = { inputIds: f.readInt32('input_ids'), batch, seq };
    for (const [name, key] of [['attention_mask', 'attentionMask'], ['position_ids', 'positionIds']] as const) {
      if (!f.has(name)) continue;
      const s = f.info(name).shape;
      if (s.join(',') !== shape.join(',')) throw new InputError(`${path}: "${name}" has shape [${s}], input_ids has [${shape}]`);
      inp[key] = f.readInt32(name);
    }
    return inp;
  } finally {
    f.close();
  }
}
