// Text <-> token ids from the checkpoint's own files, no network:
//   tokenizer.json          through @huggingface/tokenizers (byte-level BPE for Phi-4-mini)
//   tokenizer_config.json   its `chat_template`, rendered with @huggingface/jinja
// A checkpoint without tokenizer.json has no tokenizer (loadTokenizer returns null).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../errors.js';

export interface ToolCall {
  type?: 'function';
  id?: string;
  function: { name: string; arguments: string | Record<string, unknown> };
}

/** A chat message as transformers' apply_chat_template takes it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content?: string | null;
  tool_calls?: ToolCall[];
  name?: string;
  tool_call_id?: string;
  /** Tool definitions as a JSON string, on a system message: where Phi-4-mini's published template reads them. */
  tools?: string;
}

export interface ChatOptions {
  /**
   * Tool (function) definitions, JSON-schema style, or their JSON text. A template that reads
   * tools from the system message (Phi-4-mini's published one: `message['tools']`) gets them
   * there as JSON text (the text as given, else JSON.stringify), a system message being added
   * when there is none; every template also gets them as the top-level `tools` variable.
   */
  tools?: unknown[] | string;
  /** End with the assistant header so the model answers (default true). */
  addGenerationPrompt?: boolean;
}

type Json = Record<string, unknown>;

function readJson(path: string): Json {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new InputError(`${path}: cannot read (${(e as Error).message.split('\n')[0]})`);
  }
}

/** The text of a special-token entry in tokenizer_config.json (a string or an AddedToken object). */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return undefined;
}

export class Phi4Tokenizer {
  private readonly tok: Tokenizer;
  private template: Template | null = null;

  constructor(tokenizerJson: Json, readonly config: Json, readonly source = '') {
    this.tok = new Tokenizer(tokenizerJson, config);
  }

  /** The chat template of tokenizer_config.json (the "default" one when there is a list), or null. */
  get chatTemplate(): string | null {
    const t = this.config.chat_template;
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      const named = t as { name?: string; template?: string }[];
      return (named.find((x) => x.name === 'default') ?? named[0])?.template ?? null;
    }
    return null;
  }

  /** Token ids of `text`; special tokens written in the text (e.g. "<|user|>") become their ids. */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: ArrayLike<number>, skipSpecialTokens = false): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: skipSpecialTokens, clean_up_tokenization_spaces: false });
  }

  /** The id of one token string, if the vocabulary has it. */
  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** The conversation rendered by the checkpoint's chat template (a string, not yet tokenized). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatOptions = {}): string {
    const source = this.chatTemplate;
    if (source === null) throw new InputError(`${this.source || 'tokenizer_config.json'}: no chat_template`);
    this.template ??= new Template(source);
    const specials: Record<string, string> = {};
    for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const v = tokenText(this.config[k]);
      if (v !== undefined) specials[k] = v;
    }
    const tools = opts.tools;
    if (tools !== undefined && /message\s*(\[\s*['"]tools['"]\s*\]|\.tools\b)/.test(source)) {
      const text = typeof tools === 'string' ? tools : JSON.stringify(tools);
      const i = messages.findIndex((m) => m.role === 'system');
      messages = i < 0
        ? [{ role: 'system', content: '', tools: text }, ...messages]
        : messages.map((m, j) => (j === i ? { ...m, tools: text } : m));
    }
    return this.template.render({
      ...specials,
      messages,
      tools: typeof tools === 'string' ? tryJson(tools) : tools,
      add_generation_prompt: opts.addGenerationPrompt ?? true,
    });
  }

  /** Rendered and tokenized, as apply_chat_template(tokenize=True): no extra special tokens added. */
  encodeChat(messages: ChatMessage[], opts: ChatOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), false);
  }
}

/** A tool call the model generated: `<|tool_call|>JSON<|/tool_call|>` in Phi-4-mini's format. */
export interface ParsedToolCall {
  name: string;
  arguments: unknown;
}

/**
 * The tool calls in generated text (decoded with the tool tokens kept: they are not special):
 * each `<|tool_call|>...<|/tool_call|>` holds a JSON call `{"name", "arguments"}` or a list of
 * them. Text between the tags that is not such JSON is returned in `errors`, not guessed at.
 */
export function parseToolCalls(text: string): { calls: ParsedToolCall[]; errors: string[] } {
  const calls: ParsedToolCall[] = [];
  const errors: string[] = [];
  for (const m of text.matchAll(/<\|tool_call\|>([\s\S]*?)(<\|\/tool_call\|>|$)/g)) {
    const body = m[1].trim();
    if (m[2] === '') {
      errors.push(`unterminated tool call: ${body}`);
      continue;
    }
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch {
      errors.push(`not JSON: ${body}`);
      continue;
    }
    for (const c of Array.isArray(v) ? v : [v]) {
      const o = c as Record<string, unknown> | null;
      if (o && typeof o === 'object' && typeof o.name === 'string') {
        const args = typeof o.arguments === 'string' ? tryJson(o.arguments) : o.arguments ?? o.parameters ?? {};
        calls.push({ name: o.name, arguments: args });
      } else errors.push(`not a call with a "name": ${JSON.stringify(c)}`);
    }
  }
  return { calls, errors };
}

function tryJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** The tokenizer of a checkpoint directory, or null when it has no tokenizer.json. */
export function loadTokenizer(dir: string): Phi4Tokenizer | null {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) return null;
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? readJson(cfgPath) : {};
  return new Phi4Tokenizer(readJson(path), config, cfgPath);
}

/**
 * Prints text as tokens arrive: decodes everything generated so far and emits what is new,
 * holding back while the text ends in an incomplete UTF-8 sequence (U+FFFD).
 */
export class TextStreamer {
  private ids: number[] = [];
  private printed = '';

  constructor(
    private readonly tokenizer: Phi4Tokenizer,
    private readonly write: (s: string) => void,
    private readonly skipSpecialTokens = false,
  ) {}

  push(id: number): void {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids, this.skipSpecialTokens);
    if (text.endsWith('\uFFFD')) return;
    if (text.startsWith(this.printed)) this.write(text.slice(this.printed.length));
    else this.write(text); // a decoder that rewrote earlier text: print it whole
    this.printed = text;
  }

  /** Whatever is still held back (an incomplete character at the end). */
  flush(): void {
    const text = this.tokenizer.decode(this.ids, this.skipSpecialTokens);
    if (text !== this.printed && text.startsWith(this.printed)) this.write(text.slice(this.printed.length));
    this.printed = text;
  }
}
