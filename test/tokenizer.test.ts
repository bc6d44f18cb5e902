// Our tokenizer path (@huggingface/tokenizers on a Phi-4-mini-style tokenizer.json built from the
// o200k_base ranks) against js-tiktoken, an independent o200k implementation; the chat template
// (@huggingface/jinja) against a hand-written expected string; repo ids through a fake HF cache.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Tiktoken } from 'js-tiktoken/lite';
import o200k from 'js-tiktoken/ranks/o200k_base';
import { modelDir } from '../src/oracle/golden.js';
import { hubCacheDir, resolveCheckpoint } from '../src/checkpoint/hub.js';
import { type ChatMessage, Phi4Tokenizer, TextStreamer, loadTokenizer } from '../src/text/tokenizer.js';
import { PHI4_SPECIAL_TOKENS, phi4StyleTokenizer } from './o200k.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHAT_TEMPLATE = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'phi4-mini-style.chat_template.jinja'), 'utf8');

export const CORPUS: [string, string][] = [
  ['English prose', 'The quick brown fox jumps over the lazy dog. It\'s 3:45pm; they\'ve left, and WE\'LL follow—won\'t we? "Yes," she said.'],
  ['uppercase contractions', "I'M SURE IT'S FINE, THEY'D SAY. Don'T mIx'Ll CaSeS'S"],
  ['numbers', 'Pi is 3.14159265358979; 1234567890 items cost $1,299.99 (or 1e-10, 0x1F, 2^64 = 18446744073709551616).'],
  ['Chinese', '机器学习是人工智能的一个分支。它使计算机能够从数据中学习，而无需明确编程。你好，世界！'],
  ['Japanese and Korean', '東京は日本の首都です。カタカナとひらがな。안녕하세요, 세계! 한국어 문장입니다.'],
  ['accents, combining marks, RTL, Devanagari', 'Crème brûlée, naïve café, Ångström; e\u0301 (combining); مرحبا بالعالم; नमस्ते दुनिया; Ελληνικά; Привет, мир!'],
  ['Python code', 'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint([fib(i) for i in range(10)])  # [0, 1, 1, 2, ...]\n'],
  ['TypeScript code', 'export const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);\nif (x !== null && y?.z) { console.log(`v=${x}`); }\r\n'],
  ['emoji', 'Emoji: 🙂😀👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️‍🔥 🧑🏿‍💻 and a 🦄🌈✨.'],
  ['whitespace runs', '   three leading spaces\n\n\n\ttab\t\tdouble tab    four spaces    \r\n\r\n  trailing   \n \n  \u00a0nbsp\u3000ideographic space     '],
  ['only whitespace', ' \n\t  \n\n   '],
  ['markup and URLs', '<div class="x">Hi &amp; bye</div> https://example.com/a/b?c=1&d=2#frag user@example.org C:\\path\\to\\file.txt'],
  ['symbols', '∀x∈ℝ: x²≥0 → √(x²)=|x|; ½ ¾ ™ © ® § ¶ • … ‰ ← ↑ ⇒ ∞ ≠ ≈'],
];

describe('tokenizer: Phi-4-mini-style tokenizer.json from o200k_base against js-tiktoken', () => {
  let tok: Phi4Tokenizer;
  let ref: Tiktoken;
  before(() => {
    const { tokenizer, config } = phi4StyleTokenizer(CHAT_TEMPLATE); // loading from a directory: test/cli-generate.test.ts
    tok = new Phi4Tokenizer(tokenizer, config);
    ref = new Tiktoken(o200k, PHI4_SPECIAL_TOKENS);
  });

  for (const [name, text] of CORPUS) {
    it(`${name}: identical ids, and decodes back to the text`, () => {
      const ids = tok.encode(text);
      expect(ids).to.deep.equal(ref.encode(text));
      expect(tok.decode(ids)).to.equal(text);
    });
  }

  it('the whole corpus at once (cross-boundary whitespace and newlines)', () => {
    const text = CORPUS.map(([, t]) => t).join('\n\n');
    const ids = tok.encode(text);
    expect(ids.length).to.be.greaterThan(400);
    expect(ids).to.deep.equal(ref.encode(text));
    expect(tok.decode(ids)).to.equal(text);
  });

  it("Phi-4-mini's special tokens are single ids in text, and are kept or skipped on decode", () => {
    const text = '<|system|>Be brief.<|end|><|user|>Hi 你好<|end|><|assistant|>';
    const ids = tok.encode(text);
    expect(ids).to.deep.equal(ref.encode(text, 'all'));
    expect(ids[0]).to.equal(200022);
    expect(ids.at(-1)).to.equal(200019);
    expect(ids.filter((i) => i >= 199999)).to.deep.equal([200022, 200020, 200021, 200020, 200019]);
    expect(tok.decode(ids)).to.equal(text);
    expect(tok.decode(ids, true)).to.equal('Be brief.Hi 你好');
    for (const [t, id] of Object.entries(PHI4_SPECIAL_TOKENS)) expect(tok.tokenId(t), t).to.equal(id);
  });

  it('streams text token by token, holding back half a character', () => {
    const text = 'Emoji 👨‍👩‍👧 and 机器学习.';
    const ids = tok.encode(text);
    const pieces: string[] = [];
    const s = new TextStreamer(tok, (p) => pieces.push(p));
    for (const id of ids) s.push(id);
    s.flush();
    expect(pieces.join('')).to.equal(text);
    expect(pieces.some((p) => p.includes('\uFFFD'))).to.equal(false);
  });

  it('every bundled tokenizer streams a character split into one token per byte without U+FFFD, and any id sequence as its whole decode', () => {
    const text = '€ 日本 héllo 🙂 👨‍👩‍👧';
    // GPT-2's byte alphabet (byte-level BPE) or <0xNN> byte-fallback tokens: one token per UTF-8 byte
    const gpt2 = new Map<number, string>();
    let extra = 0;
    for (let b = 0; b < 256; b++) {
      const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      gpt2.set(b, String.fromCodePoint(printable ? b : 256 + extra++));
    }
    let checked = 0;
    for (const name of ['phi4-mini-tiny', 'phi3-mini-tiny', 'phi35-mini-tiny', 'phi3-medium-tiny']) {
      const t = loadTokenizer(modelDir(name))!;
      const byteId = (b: number) => t.tokenId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? t.tokenId(gpt2.get(b)!);
      const ids = [...Buffer.from(text, 'utf8')].map(byteId);
      expect(ids.every((id) => id !== undefined), `${name}: a token for every byte`).to.equal(true);
      for (const skip of [false, true]) {
        const pieces: string[] = [];
        const s = new TextStreamer(t, (p) => pieces.push(p), skip);
        for (const id of ids) s.push(id!);
        s.flush();
        expect(pieces.join(''), name).to.equal(t.decode(ids as number[], skip));
        expect(t.decode(ids as number[], skip).trim(), name).to.equal(text.trim());
        expect(pieces.filter((p) => p.includes('\uFFFD')), `${name}: a piece with U+FFFD`).to.deep.equal([]);
      }
      // random ids (what a random-weight model samples): the streamed text is the whole sequence's decode
      let seed = 12345;
      const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
      const vocab = JSON.parse(fs.readFileSync(path.join(modelDir(name), 'config.json'), 'utf8')).vocab_size as number;
      for (let k = 0; k < 20; k++) {
        const rand = Array.from({ length: 40 }, () => next() % vocab);
        const pieces: string[] = [];
        const s = new TextStreamer(t, (p) => pieces.push(p), true);
        for (const id of rand) s.push(id);
        s.flush();
        expect(pieces.join(''), `${name}: ${rand.join(',')}`).to.equal(t.decode(rand, true));
        checked++;
      }
    }
    expect(checked).to.equal(80);
  });

  it('renders system + tools + user + tool call + tool response + assistant exactly', () => {
    const tools = [{
      type: 'function',
      function: {
        name: 'get_weather', description: 'Current weather in a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
    }];
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', content: '{"temp_c": 18}' },
      { role: 'assistant', content: 'It is 18 °C in Paris.' },
      { role: 'user', content: 'Thanks!' },
    ];
    const expected =
      '<|system|>You are a helpful assistant.' +
      '<|tool|>[{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", ' +
      '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]<|/tool|><|end|>' +
      '<|user|>Weather in Paris?<|end|>' +
      '<|assistant|><|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|/tool_call|><|end|>' +
      '<|tool_response|>{"temp_c": 18}<|end|>' +
      '<|assistant|>It is 18 °C in Paris.<|end|>' +
      '<|user|>Thanks!<|end|>' +
      '<|assistant|>';
    expect(tok.applyChatTemplate(messages, { tools })).to.equal(expected);
    expect(tok.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: false })).to.equal(
      '<|system|>You are a helpful assistant.<|end|><|user|>Weather in Paris?<|end|>');
    const ids = tok.encodeChat([{ role: 'user', content: 'Hi' }]);
    expect(ids).to.deep.equal([200021, ...ref.encode('Hi'), 200020, 200019]);
  });

  it('a checkpoint without tokenizer.json has no tokenizer; one without chat_template says so', () => {
    const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-notok-'));
    fs.copyFileSync(path.join(modelDir('phi4-mini-tiny'), 'config.json'), path.join(bare, 'config.json'));
    expect(loadTokenizer(bare)).to.equal(null);
    fs.rmSync(bare, { recursive: true });
    const { tokenizer, config } = phi4StyleTokenizer();
    const t = new Phi4Tokenizer(tokenizer, config, '/x/tokenizer_config.json');
    expect(() => t.applyChatTemplate([{ role: 'user', content: 'Hi' }])).to.throw('/x/tokenizer_config.json: no chat_template');
  });
});

describe('checkpoint by repo id (fake Hugging Face cache)', () => {
  let home: string;
  before(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'phi4-hf-'));
    const repo = path.join(home, 'hub', 'models--microsoft--Phi-4-mini-instruct');
    for (const rev of ['aaaa1111', 'bbbb2222']) {
      fs.mkdirSync(path.join(repo, 'snapshots', rev), { recursive: true });
      fs.writeFileSync(path.join(repo, 'snapshots', rev, 'config.json'), '{}');
    }
    fs.mkdirSync(path.join(repo, 'refs'));
    fs.writeFileSync(path.join(repo, 'refs', 'main'), 'aaaa1111\n');
    const other = path.join(home, 'hub', 'models--someone--no-ref', 'snapshots', 'cccc3333');
    fs.mkdirSync(other, { recursive: true });
    fs.writeFileSync(path.join(other, 'config.json'), '{}');
  });
  after(() => fs.rmSync(home, { recursive: true, force: true }));

  it('resolves through $HF_HOME/hub to the revision refs/main names', () => {
    const env = { HF_HOME: home };
    expect(hubCacheDir(env)).to.equal(path.join(home, 'hub'));
    expect(resolveCheckpoint('microsoft/Phi-4-mini-instruct', env)).to.equal(
      path.join(home, 'hub', 'models--microsoft--Phi-4-mini-instruct', 'snapshots', 'aaaa1111'));
    expect(resolveCheckpoint('someone/no-ref', env)).to.equal(path.join(home, 'hub', 'models--someone--no-ref', 'snapshots', 'cccc3333'));
    expect(resolveCheckpoint('microsoft/Phi-4-mini-instruct', { HF_HUB_CACHE: path.join(home, 'hub') })).to.match(/aaaa1111$/);
  });

  it('defaults to ~/.cache/huggingface/hub; a directory path wins', () => {
    expect(hubCacheDir({})).to.equal(path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    expect(resolveCheckpoint(modelDir('phi4-mini-tiny'), { HF_HOME: home })).to.equal(path.resolve(modelDir('phi4-mini-tiny')));
  });

  it('an unknown repo id says where it looked', () => {
    const where = path.join(home, 'hub', 'models--microsoft--Phi-5', 'snapshots');
    expect(() => resolveCheckpoint('microsoft/Phi-5', { HF_HOME: home })).to.throw(`microsoft/Phi-5: not a directory, and not in the local Hugging Face cache (looked in ${where})`);
    expect(() => resolveCheckpoint('./no/such/dir/here', { HF_HOME: home })).to.throw('no such file or directory');
  });
});
