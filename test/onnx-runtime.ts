// Test helper: runs an ONNX export of a Phi3ForCausalLM (golden/onnx/) in ONNX Runtime and writes
// its outputs as a dump, the way another runtime's author would before `phi4 compare`.

import * as ort from 'onnxruntime-node';
import { writeSafetensors, type TensorToWrite } from '../weights/index.js';
import type { ForwardInputs } from '../src/model/model.js';

/** Runs `model` on one row of ids (attention_mask all ones); returns its outputs by name. */
export async function runOnnx(model: string, inputs: ForwardInputs): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const { batch: B, seq: T } = inputs;
  const session = await ort.InferenceSession.create(model);
  try {
    const ids = BigInt64Array.from(inputs.inputIds, (x) => BigInt(x));
    const mask = new BigInt64Array(B * T).fill(1n);
    const res = await session.run({ input_ids: new ort.Tensor('int64', ids, [B, T]), attention_mask: new ort.Tensor('int64', mask, [B, T]) });
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const name of session.outputNames) {
      const t = res[name];
      if (t.type !== 'float32') throw new Error(`${model}: output ${name} is ${t.type}, expected float32`);
      out.set(name, { data: t.data as Float32Array, shape: t.dims.map(Number) });
    }
    return out;
  } finally {
    await session.release();
  }
}

/** Writes ONNX Runtime's outputs and the input ids as a dump. */
export function writeOnnxDump(path: string, model: string, inputs: ForwardInputs, outputs: Map<string, { data: Float32Array; shape: number[] }>): void {
  const tensors: TensorToWrite[] = [{ name: 'input_ids', dtype: 'I32', shape: [inputs.batch, inputs.seq], data: inputs.inputIds }];
  for (const [name, t] of outputs) tensors.push({ name, dtype: 'F32', shape: t.shape, data: t.data });
  writeSafetensors(path, tensors, { format: 'onnxruntime', onnxruntime_version: ort.env.versions.common, model });
}
