// Phi-4-mini's published tokenizer, built from its slow-tokenizer files (golden/phi-4-mini-instruct/
// vocab.json + merges.txt, by golden/tokenizer/src/tokenizer-build.ts) with o200k's pre-tokenizer and the
// published added-token flags, against js-tiktoken's o200k and against the tokenizer test/o200k.ts
// builds from the ranks; and the small tokenizers of the bundled checkpoints, which are prefixes of it.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Tiktoken } from 'js-tiktoken/lite';
import o200k from 'js-tiktoken/ranks/o200k_base';
import { modelDir } from '../src/oracle/golden.js';
import { type ChatMessage, Phi4Tokenizer, loadTokenizer, parseToolCalls } from '../src/text/tokenizer.js';
import { ROOT, expectBadInput, phi4 } from './cli-helpers.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PHI4_SPECIAL_TOKENS, phi4StyleTokenizer } from './o200k.js';
import { CORPUS } from './tokenizer.test.js';
import { O200K_PATTERN, fullTokenizer, smallTokenizer } from '../src/text/tokenizer-build.js';

type Json = Record<string, unknown>;
const PUB = path.join(ROOT, 'golden', 'phi-4-mini-instruct');
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Json;
const build = { fullTokenizer, smallTokenizer };

describe('tokenizer: the published Phi-4-mini files (vocab.json + merges.txt + added-token flags)', function () {
  this.timeout(120_000);
  let tok: Phi4Tokenizer;
  let fromRanks: Phi4Tokenizer;
  let ref: Tiktoken;
  before(() => {
    tok = new Phi4Tokenizer(build.fullTokenizer(), readJson(path.join(PUB, 'tokenizer_config.json')));
    const r = phi4StyleTokenizer();
    fromRanks = new Phi4Tokenizer(r.tokenizer, r.config);
    ref = new Tiktoken(o200k, PHI4_SPECIAL_TOKENS);
  });

  it('gives the ids of js-tiktoken o200k and of the ranks-built tokenizer on every corpus text, and decodes back', () => {
    for (const [name, text] of [...CORPUS, ['whole corpus', CORPUS.map(([, t]) => t).join('\n\n')] as [string, string]]) {
      const ids = tok.encode(text);
      expect(ids, name).to.deep.equal(ref.encode(text));
      expect(ids, name).to.deep.equal(fromRanks.encode(text));
      expect(tok.decode(ids), name).to.equal(text);
    }
  });

  it("uses o200k's own pre-tokenizer pattern", () => {
    expect(O200K_PATTERN).to.equal(o200k.pat_str);
  });

  it('has the published added-token ids (added_tokens.json, special_tokens_map.json)', () => {
    for (const [t, id] of Object.entries(readJson(path.join(PUB, 'added_tokens.json')))) expect(tok.tokenId(t), t).to.equal(id);
    expect(tok.tokenId('<|endoftext|>')).to.equal(199999);
    expect(Object.keys(PHI4_SPECIAL_TOKENS).map((t) => tok.tokenId(t))).to.deep.equal(Object.values(PHI4_SPECIAL_TOKENS));
  });

  it('rstrip: whitespace after <|user|>, <|end|>, <|tool_call|> is absorbed; not after <|endoftext|> (rstrip false)', () => {
    const hi = ref.encode('hi');
    expect(tok.encode('<|user|>  \nhi')).to.deep.equal([200021, ...hi]);
    expect(tok.encode('<|tool_call|> hi')).to.deep.equal([200025, ...hi]);
    expect(tok.encode('<|endoftext|> hi')).to.deep.equal([199999, ...ref.encode(' hi')]);
  });

  it('decode skipping special tokens drops <|end|> and <|assistant|> but keeps the tool tokens (special: false)', () => {
    const ids = tok.encode('<|assistant|><|tool_call|>[{"name": "f", "arguments": {}}]<|/tool_call|><|end|>');
    expect(tok.decode(ids, true)).to.equal('<|tool_call|>[{"name": "f", "arguments": {}}]<|/tool_call|>');
    expect(tok.decode(ids, false)).to.equal('<|assistant|><|tool_call|>[{"name": "f", "arguments": {}}]<|/tool_call|><|end|>');
  });
});

describe('tokenizer: the bundled checkpoints', () => {
  for (const name of ['phi4-mini-tiny', 'phi4-mini-geometry', 'phi3-mini-tiny', 'phi35-mini-tiny', 'phi3-medium-tiny']) {
    it(`${name}: tokenizer files are what golden/tokenizer/build.mjs makes, cover every text, and render the published chat format`, () => {
      const dir = modelDir(name);
      const V = readJson(path.join(dir, 'config.json')).vocab_size as number;
      const want = build.smallTokenizer(V);
      expect(readJson(path.join(dir, 'tokenizer.json'))).to.deep.equal(want.tokenizer);
      expect(readJson(path.join(dir, 'tokenizer_config.json'))).to.deep.equal(want.config);
      expect(readJson(path.join(dir, 'generation_config.json'))).to.deep.equal(want.generation);
      const tok = loadTokenizer(dir)!;
      const text = CORPUS.map(([, t]) => t).join('\n');
      const ids = tok.encode(text);
      expect(Math.max(...ids)).to.be.lessThan(V - 12);
      expect(tok.decode(ids)).to.equal(text);
      const chat = tok.encodeChat([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }]);
      expect(tok.decode(chat)).to.equal('<|system|>Be brief.<|end|><|user|>hi<|end|><|assistant|>');
      expect(chat.filter((i) => i >= V - 12)).to.deep.equal([V - 7, V - 9, V - 8, V - 9, V - 10]); // system end user end assistant
    });
  }
});

describe('chat with tools: the published template, byte for byte as Python jinja2 renders it', () => {
  const cfg = readJson(path.join(PUB, 'tokenizer_config.json'));
  // made once by test/fixtures/render-published-template.py (Python jinja2 3.1.6, as transformers renders)
  const expected = readJson(path.join(ROOT, 'test', 'fixtures', 'published-template.tools.expected.json')) as Record<string, string>;
  const messages = (readJson(path.join(ROOT, 'test', 'fixtures', 'published-template.tools.json')).messages) as ChatMessage[];
  const tok = new Phi4Tokenizer(build.smallTokenizer(1024).tokenizer, cfg);

  it('tools in the system message, with and without the generation prompt', () => {
    expect(tok.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: true })).to.equal(expected.with_generation_prompt);
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: false })).to.equal(expected.whole_conversation);
  });

  it('tools given as an option go into the system message, where this template reads them', () => {
    const plain = messages.slice(0, 2).map(({ tools, ...m }) => m);
    expect(tok.applyChatTemplate(plain, { tools: messages[0].tools })).to.equal(expected.with_generation_prompt);
    expect(tok.applyChatTemplate(plain.slice(1), { tools: JSON.parse(messages[0].tools!) as unknown[] })).to.equal(
      `<|system|><|tool|>${JSON.stringify(JSON.parse(messages[0].tools!))}<|/tool|><|end|><|user|>${plain[1].content}<|end|><|assistant|>`);
  });

  it('parses generated tool calls, and reports what it cannot parse', () => {
    expect(parseToolCalls(messages[2].content!)).to.deep.equal({ calls: [{ name: 'get_weather_updates', arguments: { city: 'Paris' } }], errors: [] });
    expect(parseToolCalls('a<|tool_call|>{"name": "f", "arguments": "{\\"x\\": 1}"}<|/tool_call|>b<|tool_call|>oops<|/tool_call|><|tool_call|>[1')).to.deep.equal({
      calls: [{ name: 'f', arguments: { x: 1 } }], errors: ['not JSON: oops', 'unterminated tool call: [1'],
    });
    expect(parseToolCalls('no calls')).to.deep.equal({ calls: [], errors: [] });
  });

  it('phi4 generate --chat --tools FILE --json: the tools reach the prompt; bad tools files are refused', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'phi4-tools-'));
    try {
      const tools = path.join(dir, 'tools.json');
      writeFileSync(tools, messages[0].tools!);
      const r = phi4(['generate', 'golden/models/phi4-mini-tiny', '--chat', 'hi', '--tools', tools, '--max-new-tokens', '2', '--json']);
      expect(r.status, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout) as { prompt_ids: number[]; ids: number[]; text: string; tool_calls: unknown[] };
      const small = loadTokenizer(path.join(ROOT, 'golden', 'models', 'phi4-mini-tiny'))!;
      expect(small.decode(out.prompt_ids)).to.equal(`<|system|><|tool|>${messages[0].tools}<|/tool|><|end|><|user|>hi<|end|><|assistant|>`);
      expect(out.ids).to.have.length(2);
      expect(out.text).to.equal(small.decode(out.ids, true));
      expect(out.tool_calls).to.deep.equal(parseToolCalls(out.text).calls);
      writeFileSync(tools, '{"name": "f"}');
      expectBadInput(phi4(['generate', 'golden/models/phi4-mini-tiny', '--chat', 'hi', '--tools', tools, '--max-new-tokens', '2']), ['--tools', 'JSON array']);
      writeFileSync(tools, '[{');
      expectBadInput(phi4(['generate', 'golden/models/phi4-mini-tiny', '--chat', 'hi', '--tools', tools, '--max-new-tokens', '2']), ['--tools', 'not JSON']);
      expectBadInput(phi4(['generate', 'golden/models/phi4-mini-tiny', '--prompt', 'hi', '--tools', tools, '--max-new-tokens', '2']), ['--tools goes with --chat']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
