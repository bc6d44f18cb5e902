// Writes the small tokenizer of every bundled checkpoint (golden/models/*/tokenizer.json,
// tokenizer_config.json, generation_config.json) from Phi-4-mini's published files, as
// src/text/tokenizer-build.ts describes. Run after a build:  npx tsc && node golden/tokenizer/build.mjs
// (test/published-tokenizer.test.ts fails when the committed files differ from what this makes).

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { smallTokenizer } from '../../dist/src/text/tokenizer-build.js';

const MODELS = join(dirname(fileURLToPath(import.meta.url)), '..', 'models');
for (const name of readdirSync(MODELS)) {
  const dir = join(MODELS, name);
  const V = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).vocab_size;
  const { tokenizer, config, generation } = smallTokenizer(V);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer, null, 1) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(generation, null, 2) + '\n');
  console.log(`${name}: ${Object.keys(tokenizer.model.vocab).length} tokens, ${tokenizer.model.merges.length} merges, ${tokenizer.added_tokens.length} added`);
}
