// Builds Hugging Face tokenizer.json files from Phi-4-mini's published slow-tokenizer files
// (golden/phi-4-mini-instruct/: vocab.json, merges.txt, tokenizer_config.json):
//
//   node golden/tokenizer/build.mjs               a small tokenizer for every bundled checkpoint
//   node golden/tokenizer/build.mjs --full OUT    the whole Phi-4-mini tokenizer (about 15 MB)
//
// The whole one is byte-level BPE: vocab.json and merges.txt as published, o200k's
// pre-tokenizer pattern (js-tiktoken's pat_str, split then GPT-2 byte mapping, as the published
// tokenizer.json does), `ignore_merges` as tiktoken, and the added tokens of
// tokenizer_config.json's added_tokens_decoder with their published flags (special, rstrip, ...).
//
// A bundled checkpoint of vocabulary V gets the first V - 12 tokens of vocab.json (ids 0..255 are
// the single bytes, so every text encodes), the published merges whose parts and result all lie
// in that prefix (in published order), and the 12 added tokens at ids V-12 .. V-1 in id order,
// flags kept. Its tokenizer_config.json is the published one with the added-token ids remapped;
// its generation_config.json names the remapped <|end|> and <|endoftext|> as eos, as published.

import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import o200k from 'js-tiktoken/ranks/o200k_base';

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), '..');
const PUB = join(GOLDEN, 'phi-4-mini-instruct');
const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));

const vocab = readJson(join(PUB, 'vocab.json'));
const merges = readFileSync(join(PUB, 'merges.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#version'));
const tokConfig = readJson(join(PUB, 'tokenizer_config.json'));
const added = Object.entries(tokConfig.added_tokens_decoder).map(([id, t]) => ({ id: Number(id), ...t })).sort((a, b) => a.id - b.id);

function tokenizerJson(vocabObj, mergeList, addedTokens) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens.map((t) => ({
      id: t.id, content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: o200k.pat_str }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true,
      vocab: vocabObj, merges: mergeList.map((m) => m.split(' ')),
    },
  };
}

/** The whole published tokenizer as a tokenizer.json object. */
export function fullTokenizer() {
  // vocab.json also lists the added tokens that o200k itself has (<|endoftext|>, fillers): keep them in the vocab
  return tokenizerJson(vocab, merges, added);
}

/** A prefix of the published tokenizer for a vocabulary of V ids, and its config files. */
export function smallTokenizer(V) {
  const K = V - added.length;
  const small = {};
  for (const [tok, id] of Object.entries(vocab)) if (id < K) small[tok] = id;
  const kept = merges.filter((m) => {
    const [l, r] = m.split(' ');
    return small[l] !== undefined && small[r] !== undefined && small[l + r] !== undefined;
  });
  const remap = new Map(added.map((t, i) => [t.id, K + i]));
  const smallAdded = added.map((t) => ({ ...t, id: remap.get(t.id) }));
  const config = { ...tokConfig, added_tokens_decoder: Object.fromEntries(smallAdded.map(({ id, ...t }) => [String(id), t])) };
  const gen = readJson(join(PUB, 'generation_config.json'));
  const generation = {
    bos_token_id: remap.get(gen.bos_token_id), eos_token_id: gen.eos_token_id.map((i) => remap.get(i)), pad_token_id: remap.get(gen.pad_token_id),
  };
  return { tokenizer: tokenizerJson(small, kept, smallAdded), config, generation };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--full');
  if (i >= 0) {
    writeFileSync(process.argv[i + 1], JSON.stringify(fullTokenizer()));
  } else {
    for (const name of readdirSync(join(GOLDEN, 'models'))) {
      const dir = join(GOLDEN, 'models', name);
      const { tokenizer, config, generation } = smallTokenizer(readJson(join(dir, 'config.json')).vocab_size);
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer, null, 1) + '\n');
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
      writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(generation, null, 2) + '\n');
      console.log(`${name}: ${Object.keys(tokenizer.model.vocab).length} tokens, ${tokenizer.model.merges.length} merges, ${tokenizer.added_tokens.length} added`);
    }
  }
}
