// A Phi-4-mini-style tokenizer.json built from the o200k_base ranks that js-tiktoken ships, for
// tests (a 10 MB fixture is not worth committing: building it takes about a second); an
// independent route to the tokenizer golden/tokenizer/build.mjs makes from the published files.
//
// tiktoken's BPE merges, inside each pre-token, the adjacent pair whose concatenation has the
// lowest rank. The equivalent Hugging Face byte-level BPE:
//   vocab:  each rank's bytes, written with GPT-2's byte-to-unicode alphabet, -> the rank
//   merges: for every token of two bytes or more, each split (left, right) into two tokens that
//           are both in the vocabulary, ordered by the rank of the merged token (ties by the
//           ranks of the parts), so that "lowest merge index" means "lowest merged rank"
//   ignore_merges: a pre-token that is itself in the vocabulary is one token (as in tiktoken)
// The pre-tokenizer splits with o200k's own pattern (js-tiktoken's pat_str), then maps bytes.
// Special tokens are Phi-4-mini's, at the ids of golden/phi-4-mini-instruct/added_tokens.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import o200k from 'js-tiktoken/ranks/o200k_base';

/** Phi-4-mini's added tokens (special: true), by id. */
export const PHI4_SPECIAL_TOKENS: Record<string, number> = {
  '<|endoftext|>': 199999,
  '<|endofprompt|>': 200018,
  '<|assistant|>': 200019,
  '<|end|>': 200020,
  '<|user|>': 200021,
  '<|system|>': 200022,
  '<|tool|>': 200023,
  '<|/tool|>': 200024,
  '<|tool_call|>': 200025,
  '<|/tool_call|>': 200026,
  '<|tool_response|>': 200027,
  '<|tag|>': 200028,
};

/** GPT-2's reversible map from bytes to printable characters. */
export function byteToUnicode(): string[] {
  const map: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable(b) ? b : 256 + extra++);
  return map;
}

/** The o200k_base ranks: bytes of each token by rank. */
export function o200kRanks(): { patStr: string; tokens: Uint8Array[] } {
  const tokens: Uint8Array[] = [];
  for (const line of o200k.bpe_ranks.split('\n')) {
    if (!line) continue;
    const [, offset, ...b64] = line.split(' ');
    b64.forEach((t, i) => (tokens[Number(offset) + i] = new Uint8Array(Buffer.from(t, 'base64'))));
  }
  return { patStr: o200k.pat_str, tokens };
}

let built: object | null = null;

/**
 * tokenizer.json (as an object, built once per process and shared: do not modify it) and
 * tokenizer_config.json for a Phi-4-mini-style tokenizer.
 */
export function phi4StyleTokenizer(chatTemplate?: string): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  built ??= buildTokenizerJson();
  const config: Record<string, unknown> = {
    add_bos_token: false, add_eos_token: false, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>',
    pad_token: '<|endoftext|>', unk_token: '<|endoftext|>', model_max_length: 131072,
    clean_up_tokenization_spaces: false, tokenizer_class: 'GPT2Tokenizer',
  };
  if (chatTemplate !== undefined) config.chat_template = chatTemplate;
  return { tokenizer: built as Record<string, unknown>, config };
}

function buildTokenizerJson(): object {
  const { patStr, tokens } = o200kRanks();
  const b2u = byteToUnicode();
  const keys = tokens.map((t) => Buffer.from(t).toString('latin1')); // one char per byte
  const strs = tokens.map((t) => Array.from(t, (x) => b2u[x]).join(''));
  const rank = new Map<string, number>();
  keys.forEach((k, r) => rank.set(k, r));

  const vocab: Record<string, number> = {};
  // tokens come in rank order, so merges are ordered by merged rank as they are found; the
  // several splits of one token are ordered by the ranks of their parts
  const merges: [string, string][] = [];
  keys.forEach((k, r) => {
    vocab[strs[r]] = r;
    const splits: [number, number][] = [];
    for (let i = 1; i < k.length; i++) {
      const lr = rank.get(k.slice(0, i));
      const rr = lr === undefined ? undefined : rank.get(k.slice(i));
      if (rr !== undefined) splits.push([lr!, rr]);
    }
    splits.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    for (const [lr, rr] of splits) merges.push([strs[lr], strs[rr]]);
  });

  const added = Object.entries(PHI4_SPECIAL_TOKENS).map(([content, id]) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: patStr }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true,
      vocab, merges,
    },
  };
  return tokenizer;
}

/** Writes tokenizer.json and tokenizer_config.json into `dir`. */
export function writePhi4StyleTokenizer(dir: string, chatTemplate?: string): void {
  mkdirSync(dir, { recursive: true });
  const { tokenizer, config } = phi4StyleTokenizer(chatTemplate);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
}
