import { UsageError, intFlag, parseArgs, str } from '../args.js';
import { ROPE_POLICIES, type RopePolicy, checkLength, checkPolicy, checkpointEosIds, generate, writeGeneration } from '../../generate/generate.js';
import { resolveCheckpoint } from '../../checkpoint/hub.js';
import { parseIds } from '../../checkpoint/inputs.js';
import { Phi3Model } from '../../model/model.js';
import { checkSampling } from '../../generate/sampling.js';
import { readFileSync } from 'node:fs';
import { type ChatMessage, type Phi4Tokenizer, TextStreamer, loadTokenizer, parseToolCalls } from '../../text/tokenizer.js';
import { checkOutput } from '../../safety/outputs.js';
import { precheckCheckpoint, precheckInputs } from '../../safety/precheck.js';
import { type Command, start } from './common.js';
import { InputError } from '../../errors.js';
import { resolveSelection } from '../../capture/selection.js';

function number(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag}: "${v}" is not a number`);
  return n;
}

/** The tools file: a JSON array of tool definitions; its text goes to the template as written. */
function readTools(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new InputError(`--tools: cannot read ${path} (${(e as Error).message.split('\n')[0]})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--tools: ${path} is not JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!Array.isArray(v)) throw new InputError(`--tools: ${path} must hold a JSON array of tool definitions`);
  return text;
}

/**
 * What the printed text does not show: special tokens left out (all of them, or how many), and
 * bytes that are not UTF-8 (a random-weight checkpoint samples any byte), which print as U+FFFD
 * as transformers decodes them. A character split across tokens is never one of those: the
 * streamer holds its first bytes until it completes.
 */
export function textNotes(tok: Phi4Tokenizer, ids: ArrayLike<number>, printed: string, showSpecial: boolean): string[] {
  const notes: string[] = [];
  if (!showSpecial) {
    const special = new Map<string, number>();
    for (const id of Array.from(ids)) {
      if (tok.decode([id], true) !== '') continue;
      const text = tok.decode([id]);
      if (text !== '') special.set(text, (special.get(text) ?? 0) + 1);
    }
    const n = [...special.values()].reduce((a, b) => a + b, 0);
    const which = [...special].map(([t, k]) => `${t}${k > 1 ? ` x${k}` : ''}`).join(', ');
    if (n > 0 && n === ids.length) notes.push(`note: all ${n} new tokens are special tokens, which the text leaves out (${which}); --show-special prints them`);
    else if (n > 0) notes.push(`note: ${n} special token${n > 1 ? 's' : ''} left out of the text (${which}); --show-special prints them`);
  }
  const bad = printed.split('\uFFFD').length - 1;
  if (bad > 0) notes.push(`note: the new tokens' bytes are not valid UTF-8 in ${bad} place${bad > 1 ? 's' : ''}, printed as U+FFFD (as transformers decodes them)`);
  return notes;
}

export const generateCommand: Command = {
  usage: `phi4 generate <checkpoint-dir | repo-id> (--ids 5,17 | --prompt TEXT | --chat TEXT [--system TEXT] [--tools FILE.json]) --max-new-tokens N
        [--temperature T] [--top-k K] [--top-p P] [--seed S] [--rope-policy ${ROPE_POLICIES.join('|')}] [--no-cache]
        [--prefill-chunk N] [--context N]
        [--json] [--show-special] [--out FILE.safetensors [--force] [--taps GLOBS] [--layers A-B]] [--backend NAME]
      generate tokens (greedy unless --temperature > 0), streamed; text when the checkpoint has a tokenizer,
      special tokens (<|end|>, <|assistant|>, ...) left out unless --show-special prints them as written;
      --json prints one JSON object instead (ids, text, tool calls parsed from <|tool_call|>...<|/tool_call|>);
      --prefill-chunk N: the prompt N tokens per forward call (required by --rope-policy chunked: each call picks its own factor set);
      --context N: the allocated context --rope-policy from-context picks the factor set from (docs/generation.md);
      --taps/--layers (as phi4 dump selects them): record those taps at every step into --out, each step's last row, with its position and cache length`,
  async run(argv) {
    const p = parseArgs(argv, ['ids', 'prompt', 'chat', 'system', 'max-new-tokens', 'temperature', 'top-k', 'top-p', 'seed', 'rope-policy', 'out', 'backend', 'tools', 'prefill-chunk', 'context', 'taps', 'layers', 'positions'], ['no-cache', 'json', 'force', 'show-special']);
    if (p.positional.length !== 1) throw new UsageError('generate needs one checkpoint directory or repo id');
    const inputs = (['ids', 'prompt', 'chat'] as const).filter((f) => str(p, f) !== undefined);
    if (inputs.length !== 1) throw new UsageError('generate needs exactly one of --ids, --prompt and --chat');
    if (str(p, 'system') !== undefined && inputs[0] !== 'chat') throw new UsageError('--system goes with --chat');
    if (str(p, 'tools') !== undefined && inputs[0] !== 'chat') throw new UsageError('--tools goes with --chat');
    const json = p.flags.get('json') === true;
    const maxNew = intFlag(p, 'max-new-tokens', 1);
    if (maxNew === undefined) throw new UsageError('generate needs --max-new-tokens N');
    const policy = (str(p, 'rope-policy') ?? 'default') as RopePolicy;
    if (!ROPE_POLICIES.includes(policy)) throw new UsageError(`--rope-policy: "${policy}" is not one of ${ROPE_POLICIES.join(', ')}`);
    const noCache = p.flags.get('no-cache') === true;
    const prefillChunk = intFlag(p, 'prefill-chunk', 1);
    const context = intFlag(p, 'context', 1);
    try {
      checkPolicy(policy, { noCache, prefillChunk, context });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const sampling = {
      temperature: number(str(p, 'temperature'), 'temperature'),
      topK: intFlag(p, 'top-k', 0),
      topP: number(str(p, 'top-p'), 'top-p'),
    };
    checkSampling(sampling);
    const seedText = str(p, 'seed');
    if (seedText !== undefined && !/^\d+$/.test(seedText)) throw new UsageError(`--seed: "${seedText}" is not a non-negative integer`); // any size: a BigInt
    const showSpecial = p.flags.get('show-special') === true;
    if (showSpecial && json) throw new UsageError('--show-special goes with text output, not --json (which has the ids)');
    const out = str(p, 'out');
    const dir = resolveCheckpoint(p.positional[0]);
    const config = precheckCheckpoint(dir); // config, shard headers and shapes: refusals come before the banner
    // per-step taps, selected as `phi4 dump` selects them; each step keeps its last row (the one that predicts)
    let stepTaps: string[] | undefined;
    if (str(p, 'taps') !== undefined || str(p, 'layers') !== undefined) {
      if (!out) throw new UsageError('--taps/--layers record taps at every step into the --out file; give --out');
      stepTaps = resolveSelection({ taps: str(p, 'taps'), layers: str(p, 'layers') }, config.numLayers, 1).names;
    }
    if (str(p, 'positions') !== undefined) throw new UsageError('--positions: generate records each step\'s last row (the row that predicts the step\'s token), the only one a decoding step computes');
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
        const toolsPath = str(p, 'tools');
        prompt = tokenizer.encodeChat(messages, toolsPath === undefined ? {} : { tools: readTools(toolsPath) });
      }
    }

    checkLength(config, prompt.length, maxNew);
    checkPolicy(policy, { noCache, prefillChunk, context }, prompt.length + maxNew);
    precheckInputs(config, { inputIds: Int32Array.from(prompt), batch: 1, seq: prompt.length });
    const eosIds = checkpointEosIds(dir, config);
    const backend = await start(str(p, 'backend'));
    const model = Phi3Model.load(dir);
    try {
      let printed = '';
      const streamer = tokenizer && !json ? new TextStreamer(tokenizer, (s) => { printed += s; process.stdout.write(s); }, !showSpecial) : null;
      const r = generate(model, prompt, {
        maxNewTokens: maxNew, sampling, eosIds, seed: seedText === undefined ? 0 : BigInt(seedText), ropePolicy: policy, noCache, prefillChunk, context, stepTaps,
        onToken: json ? undefined : (id, step) => (streamer ? streamer.push(id) : process.stdout.write(`${step ? ' ' : ''}${id}`)),
      });
      streamer?.flush();
      if (json) {
        // decoded as published: special tokens (<|end|>, ...) skipped, tool tokens (not special) kept
        const text = tokenizer ? tokenizer.decode(r.ids, true) : null;
        const tools = text === null ? { calls: [], errors: [] } : parseToolCalls(text);
        process.stdout.write(JSON.stringify({
          prompt_ids: prompt, ids: Array.from(r.ids), text, stopped_by: r.stoppedBy, tool_calls: tools.calls, tool_call_errors: tools.errors,
        }) + '\n');
      } else process.stdout.write('\n');
      const rebuilt = r.rebuiltAt === null ? '' : `, cache rebuilt with the long factors at step ${r.rebuiltAt}`;
      const sets = (l: boolean[]) => l.map((x) => (x ? 'long' : 'short')).join(', ');
      const chunks = prefillChunk === undefined ? '' : `, prefilled in ${r.prefillLong.length} call${r.prefillLong.length > 1 ? 's' : ''} of <= ${prefillChunk} tokens (${sets(r.prefillLong)})`;
      const ctx = context === undefined ? '' : ` (context ${context}: ${config.rope.type !== 'longrope' ? 'no LongRoPE factor sets in this model' : `the ${r.ropeLong[0] ? 'long' : 'short'} factors throughout`})`;
      console.error(`${r.ids.length} tokens (stopped by ${r.stoppedBy}), prompt ${prompt.length} tokens, rope policy ${policy}${ctx}${noCache ? ' without cache' : ''}${chunks}${rebuilt}`);
      if (streamer && tokenizer) for (const note of textNotes(tokenizer, r.ids, printed, showSpecial)) console.error(note);
      if (out) {
        writeGeneration(out, model, prompt, r, {
          backend, rope_policy: policy, no_cache: String(noCache), seed: seedText ?? '0',
          ...(prefillChunk === undefined ? {} : { prefill_chunk: String(prefillChunk) }),
          ...(context === undefined ? {} : { context: String(context) }),
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
