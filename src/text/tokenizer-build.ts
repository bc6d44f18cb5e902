// Hugging Face tokenizer.json files built from Phi-4-mini's published slow-tokenizer files
// (golden/phi-4-mini-instruct/: vocab.json, merges.txt, tokenizer_config.json):
//
//   whole:  byte-level BPE with vocab.json and merges.txt as published, o200k's pre-tokenizer
//           pattern (split, then GPT-2's byte mapping, as the published tokenizer.json does),
//           `ignore_merges` as tiktoken, and the added tokens of tokenizer_config.json's
//           added_tokens_decoder with their published flags (special, rstrip, ...).
//   small:  for a bundled checkpoint of vocabulary V: the first V - 12 tokens of vocab.json (ids
//           0..255 are the single bytes, so every text encodes), the published merges whose parts
//           and result lie in that prefix (in published order), and the 12 added tokens at ids
//           V-12 .. V-1 in id order, flags kept; its tokenizer_config.json is the published one
//           with the ids remapped, its generation_config.json names the remapped eos ids.
// golden/tokenizer/build.mjs writes the small ones; `phi4 synth` writes the whole one.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Json = Record<string, unknown>;
interface AddedToken { id: number; content: string; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; special: boolean }

/** The published files, in the repository (vocab.json and merges.txt are not in the npm package). */
export const PUBLISHED_DIR = fileURLToPath(new URL('../../../golden/phi-4-mini-instruct/', import.meta.url));

/** o200k_base's pre-tokenizer pattern (tiktoken's pat_str; test/published-tokenizer.test.ts checks it against js-tiktoken's). */
export const O200K_PATTERN = [
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?",
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?",
  '\\p{N}{1,3}',
  ' ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*',
  '\\s*[\\r\\n]+',
  '\\s+(?!\\S)',
  '\\s+',
].join('|');

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Json;

interface Published { vocab: Record<string, number>; merges: string[]; config: Json; added: AddedToken[]; generation: Json }

/** Whether the slow-tokenizer files are at hand (a repository checkout, not the npm package). */
export function haveVocabFiles(dir = PUBLISHED_DIR): boolean {
  return existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'));
}

function readPublished(dir: string): Published {
  const config = readJson(join(dir, 'tokenizer_config.json'));
  const added = Object.entries(config.added_tokens_decoder as Record<string, Omit<AddedToken, 'id'>>)
    .map(([id, t]) => ({ ...t, id: Number(id) }))
    .sort((a, b) => a.id - b.id);
  return {
    vocab: readJson(join(dir, 'vocab.json')) as Record<string, number>,
    merges: readFileSync(join(dir, 'merges.txt'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#version')),
    config, added, generation: readJson(join(dir, 'generation_config.json')),
  };
}

function tokenizerJson(vocab: Record<string, number>, merges: string[], added: AddedToken[]): Json {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map((t) => ({
      id: t.id, content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: O200K_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true,
      vocab, merges: merges.map((m) => m.split(' ')),
    },
  };
}

/** The whole published tokenizer as a tokenizer.json object (vocab.json keeps o200k's own added tokens). */
export function fullTokenizer(dir = PUBLISHED_DIR): Json {
  const p = readPublished(dir);
  return tokenizerJson(p.vocab, p.merges, p.added);
}

/** A prefix of the published tokenizer for a vocabulary of V ids, with its config files. */
export function smallTokenizer(V: number, dir = PUBLISHED_DIR): { tokenizer: Json; config: Json; generation: Json } {
  const p = readPublished(dir);
  const K = V - p.added.length;
  const vocab: Record<string, number> = {};
  for (const [tok, id] of Object.entries(p.vocab)) if (id < K) vocab[tok] = id;
  const merges = p.merges.filter((m) => {
    const [l, r] = m.split(' ');
    return vocab[l] !== undefined && vocab[r] !== undefined && vocab[l + r] !== undefined;
  });
  const remap = new Map(p.added.map((t, i) => [t.id, K + i]));
  const added = p.added.map((t) => ({ ...t, id: remap.get(t.id)! }));
  const config = { ...p.config, added_tokens_decoder: Object.fromEntries(added.map(({ id, ...t }) => [String(id), t])) };
  const g = p.generation;
  const generation = {
    bos_token_id: remap.get(g.bos_token_id as number),
    eos_token_id: (g.eos_token_id as number[]).map((i) => remap.get(i)),
    pad_token_id: remap.get(g.pad_token_id as number),
  };
  return { tokenizer: tokenizerJson(vocab, merges, added), config, generation };
}
