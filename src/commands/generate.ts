import { UsageError, intFlag, parseArgs, str } from '../args.js';
import { ROPE_POLICIES, type RopePolicy, checkLength, checkpointEosIds, generate, writeGeneration } from '../generate.js';
import { resolveCheckpoint } from '../hub.js';
import { parseIds } from '../inputs.js';
import { InputError, Phi3Model } from '../model.js';
import { checkSampling } from '../sampling.js';
import { type ChatMessage, TextStreamer, loadTokenizer } from '../tokenizer.js';
import { checkOutput } from '../safety/outputs.js';
import { precheckCheckpoint, precheckInputs } from '../safety/precheck.js';
import { type Command, start } from './common.js';

function number(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag}: "${v}" is not a number`);
  return n;
}

export const generateCommand: Command = {
  usage: `phi4 generate <checkpoint-dir | repo-id> (--ids 5,17 | --prompt TEXT | --chat TEXT [--system TEXT]) --max-new-tokens N
        [--temperature T] [--top-k K] [--top-p P] [--seed S] [--rope-policy ${ROPE_POLICIES.join('|')}] [--no-cache]
        [--out FILE.safetensors [--force]] [--backend NAME]
      generate tokens (greedy unless --temperature > 0), streamed; text when the checkpoint has a tokenizer`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'prompt', 'chat', 'system', 'max-new-tokens', 'temperature', 'top-k', 'top-p', 'seed', 'rope-policy', 'out', 'backend'], ['no-cache', 'force']);
    if (p.positional.length !== 1) throw new UsageError('generate needs one checkpoint directory or repo id');
    const inputs = (['ids', 'prompt', 'chat'] as const).filter((f) => str(p, f) !== undefined);
    if (inputs.length !== 1) throw new UsageError('generate needs exactly one of --ids, --prompt and --chat');
    if (str(p, 'system') !== undefined && inputs[0] !== 'chat') throw new UsageError('--system goes with --chat');
    const maxNew = intFlag(p, 'max-new-tokens', 1);
    if (maxNew === undefined) throw new UsageError('generate needs --max-new-tokens N');
    const policy = (str(p, 'rope-policy') ?? 'default') as RopePolicy;
    if (!ROPE_POLICIES.includes(policy)) throw new UsageError(`--rope-policy: "${policy}" is not one of ${ROPE_POLICIES.join(', ')}`);
    const noCache = p.flags.get('no-cache') === true;
    if (noCache && policy === 'stale') throw new UsageError('--rope-policy stale describes cached keys; it cannot apply with --no-cache');
    const sampling = {
      temperature: number(str(p, 'temperature'), 'temperature'),
      topK: intFlag(p, 'top-k', 0),
      topP: number(str(p, 'top-p'), 'top-p'),
    };
    checkSampling(sampling);
    const seedText = str(p, 'seed');
    if (seedText !== undefined && !/^\d+$/.test(seedText)) throw new UsageError(`--seed: "${seedText}" is not a non-negative integer`); // any size: a BigInt
    const out = str(p, 'out');
    const dir = resolveCheckpoint(p.positional[0]);
    if (out) checkOutput(out, { protectedDirs: [dir], force: p.flags.has('force') });
    const tokenizer = loadTokenizer(dir);
    let prompt: number[];
    if (inputs[0] === 'ids') prompt = Array.from(parseIds(str(p, 'ids')!).inputIds);
    else {
      if (!tokenizer) throw new InputError(`--${inputs[0]}: ${dir} has no tokenizer.json (use --ids)`);
      if (inputs[0] === 'prompt') prompt = tokenizer.encode(str(p, 'prompt')!);
      else {
        const messages: ChatMessage[] = [];
        const system = str(p, 'system');
        if (system !== undefined) messages.push({ role: 'system', content: system });
        messages.push({ role: 'user', content: str(p, 'chat')! });
        prompt = tokenizer.encodeChat(messages);
      }
    }

    const config = precheckCheckpoint(dir); // config, shard headers and shapes: refusals come before the banner
    checkLength(config, prompt.length, maxNew);
    precheckInputs(config, { inputIds: Int32Array.from(prompt), batch: 1, seq: prompt.length });
    const eosIds = checkpointEosIds(dir, config);
    const backend = await start(str(p, 'backend'));
    const model = Phi3Model.load(dir);
    try {
      const streamer = tokenizer ? new TextStreamer(tokenizer, (s) => process.stdout.write(s), true) : null;
      const r = generate(model, prompt, {
        maxNewTokens: maxNew, sampling, eosIds, seed: seedText === undefined ? 0 : BigInt(seedText), ropePolicy: policy, noCache,
        onToken: (id, step) => (streamer ? streamer.push(id) : process.stdout.write(`${step ? ' ' : ''}${id}`)),
      });
      streamer?.flush();
      process.stdout.write('\n');
      const rebuilt = r.rebuiltAt === null ? '' : `, cache rebuilt with the long factors at step ${r.rebuiltAt}`;
      console.error(`${r.ids.length} tokens (stopped by ${r.stoppedBy}), prompt ${prompt.length} tokens, rope policy ${policy}${noCache ? ' without cache' : ''}${rebuilt}`);
      if (out) {
        writeGeneration(out, model, prompt, r, {
          backend, rope_policy: policy, no_cache: String(noCache), seed: seedText ?? '0',
          temperature: String(sampling.temperature ?? 0), top_k: String(sampling.topK ?? 0), top_p: String(sampling.topP ?? 1),
        });
        console.error(`wrote ${out}: generated_ids [${r.ids.length}], step_logits [${r.ids.length}, ${model.config.vocabSize}]`);
      }
    } finally {
      model.dispose();
    }
    return 0;
  },
};
