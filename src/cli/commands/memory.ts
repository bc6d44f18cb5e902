import { UsageError, parseArgs, str, toInt } from '../args.js';
import { DEFAULT_MEMORY_SOURCE, KV_BYTES, type KvDtype, formatMemoryReport, memoryJson, memoryReport, resolveMemorySource } from '../../model/memory.js';
import type { Command } from './common.js';

/** A comma-separated list of integers >= 1. */
function positiveInts(text: string, flag: string): number[] {
  return text.split(',').map((s) => toInt(s.trim(), flag, 1));
}

/** 4096, 32768 and 131072 where the checkpoint holds them, and its own max_position_embeddings when that is below 131072. */
export function defaultContexts(maxPositions: number): number[] {
  const c = [4096, 32768, 131072].filter((n) => n <= maxPositions);
  return maxPositions < 131072 && !c.includes(maxPositions) ? [...c, maxPositions] : c;
}

export const memoryCommand: Command = {
  usage: `phi4 memory [<checkpoint-dir> | <config.json> | microsoft/Phi-4-mini-instruct] [--context N,...] [--batch 1] [--kv-dtype bf16|fp8|int8|fp32] [--json]
      memory needed per quantization and context size: weights + KV cache + workspace
      (contexts by default: 4096, 32768, 131072 up to the checkpoint's max_position_embeddings, and that maximum)`,
  async run(argv) {
    const p = parseArgs(argv, ['context', 'batch', 'kv-dtype'], ['json']);
    if (p.positional.length > 1) throw new UsageError('memory takes at most one checkpoint, config.json or repo id');
    const given = str(p, 'context');
    const [batch, ...more] = positiveInts(str(p, 'batch') ?? '1', '--batch');
    if (more.length > 0) throw new UsageError('--batch: one number');
    const kv = str(p, 'kv-dtype') ?? 'bf16';
    if (!Object.hasOwn(KV_BYTES, kv)) throw new UsageError(`--kv-dtype: "${kv}" is not one of ${Object.keys(KV_BYTES).join(', ')}`);
    const { config, source, checkpoint } = resolveMemorySource(p.positional[0] ?? DEFAULT_MEMORY_SOURCE);
    const contexts = given === undefined ? defaultContexts(config.maxPositions) : positiveInts(given, '--context');
    const report = memoryReport(config, { contexts, batch, kvDtype: kv as KvDtype }, source, checkpoint);
    console.log(p.flags.has('json') ? JSON.stringify(memoryJson(report), null, 2) : formatMemoryReport(report));
    return 0;
  },
};
