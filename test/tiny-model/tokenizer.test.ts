import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Tokenizer, ByteLevelPreTokenizer } from '@huggingface/tokenizers';
import {
  byteLevelAlphabet,
  SPECIAL_TOKENS,
  TINY_VOCAB_SIZE,
  trainBpe,
  trainTinyTokenizer,
} from '../../scripts/tiny-model/train-tokenizer.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';

const ASSETS = 'assets/tiny-chat';
const tokenizerJson = readFileSync(`${ASSETS}/tokenizer.json`, 'utf8');
const tokenizerConfigJson = readFileSync(`${ASSETS}/tokenizer_config.json`, 'utf8');
const tokenizer = new Tokenizer(JSON.parse(tokenizerJson), JSON.parse(tokenizerConfigJson));

test('the committed tokenizer files are exactly what the trainer produces', () => {
  const fresh = trainTinyTokenizer();
  assert.equal(
    fresh.tokenizerJson,
    tokenizerJson,
    'rerun: npx tsx scripts/tiny-model/train-tokenizer.ts',
  );
  assert.equal(fresh.tokenizerConfigJson, tokenizerConfigJson);
});

test('vocabulary size and special token ids', () => {
  assert.equal(tokenizer.get_vocab(true).size, TINY_VOCAB_SIZE);
  SPECIAL_TOKENS.forEach((token, i) => {
    assert.equal(tokenizer.token_to_id(token), TINY_VOCAB_SIZE - SPECIAL_TOKENS.length + i);
  });
  const config = JSON.parse(tokenizerConfigJson);
  assert.equal(config.eos_token, '<|im_end|>');
  assert.equal(config.pad_token, '<|endoftext|>');
  assert.equal(config.bos_token, null);
});

test('English, Chinese and mixed text round-trip exactly', () => {
  const texts = [
    'What is 13 + 29? The answer is 42.',
    'I am 小李, an AI assistant developed by 小张.',
    '您好，我是小李，一个由小张开发的 AI 助手，很高兴认识您。',
    '你叫什么名字？谁开发了你？',
    '  leading spaces,\ttabs,\n\nblank lines and trailing space ',
    'Emoji 😀, accents ünïcödé, symbols ∑ × ÷ © and Japanese こんにちは',
    "It's, they're, we'll, I'd, you've",
  ];
  for (const text of texts) {
    const { ids } = tokenizer.encode(text);
    assert.equal(tokenizer.decode(ids), text);
  }
});

test('special tokens are single ids inside ChatML text', () => {
  const { ids } = tokenizer.encode('<|im_start|>user\nHi<|im_end|>\n');
  assert.equal(ids[0], tokenizer.token_to_id('<|im_start|>'));
  assert.ok(ids.includes(tokenizer.token_to_id('<|im_end|>')!));
  assert.equal(tokenizer.decode(ids, { skip_special_tokens: true }), 'user\nHi\n');
});

test('digits are split one by one and identity words have compact tokens', () => {
  assert.deepEqual(tokenizer.tokenize('1234'), ['1', '2', '3', '4']);
  for (const word of ['名字', '开发', '李', '张', '小']) {
    assert.equal(tokenizer.tokenize(word).length, 1, word);
  }
  // 小李 / 小张 are built from characters the pretraining corpus contains (小时, 李子, 一张纸).
  assert.equal(tokenizer.tokenize('小李').length, 2);
  assert.equal(tokenizer.tokenize('小张').length, 2);
});

test('the tiny tokenizer has no chat template: the model speaks the tutorial format', () => {
  assert.equal(JSON.parse(tokenizerConfigJson).chat_template, undefined);
});

test('the byte alphabet matches the byte-level pre-tokenizer of @huggingface/tokenizers', () => {
  const alphabet = byteLevelAlphabet();
  assert.equal(new Set(alphabet.map((e) => e.char)).size, 256);
  const encoder = new ByteLevelPreTokenizer({ type: 'ByteLevel' } as never).byte_encoder;
  for (const { byte, char } of alphabet) assert.equal(encoder[byte], char);
  assert.equal(alphabet[0].char, '!');
  assert.equal(alphabet.find((e) => e.byte === 0x20)!.char, 'Ġ');
});

test('trainBpe merges the most frequent pair first, ties broken lexicographically', () => {
  const model = trainBpe(
    new Map([
      ['abab', 3],
      ['cd', 3],
      ['x', 1],
    ]),
    { vocabSize: 259 },
  );
  assert.deepEqual(model.merges, [
    ['a', 'b'],
    ['ab', 'ab'],
    ['c', 'd'],
  ]);
  assert.equal(model.vocab.get('abab'), 257);
  // A pair seen fewer than minFrequency times is never merged.
  const sparse = trainBpe(new Map([['xy', 1]]), { vocabSize: 300 });
  assert.deepEqual(sparse.merges, []);
});

test('trainBpe keeps Chinese tokens to at most two characters', () => {
  const counts = new Map([
    [encodeByteLevel('你叫什么名字'), 10],
    [encodeByteLevel('名字'), 10],
  ]);
  const model = trainBpe(counts, { vocabSize: 400 });
  const tokens = [...model.vocab.keys()].map(decodeByteLevel);
  assert.ok(tokens.includes('名字'));
  for (const token of tokens) assert.ok(token.length <= 2, token);
});

function encodeByteLevel(text: string): string {
  const map = new Map(byteLevelAlphabet().map(({ byte, char }) => [byte, char]));
  return [...new TextEncoder().encode(text)].map((b) => map.get(b)).join('');
}

function decodeByteLevel(token: string): string {
  const map = new Map(byteLevelAlphabet().map(({ byte, char }) => [char, byte]));
  return new TextDecoder().decode(Uint8Array.from([...token], (ch) => map.get(ch)!));
}

test("loraforge's own loader reads the tiny tokenizer", async () => {
  const loaded = await loadTokenizer(ASSETS);
  assert.equal(loaded.vocabSize, TINY_VOCAB_SIZE);
  assert.equal(loaded.eosTokenId, tokenizer.token_to_id('<|im_end|>'));
  assert.equal(loaded.padTokenId, tokenizer.token_to_id('<|endoftext|>'));
  assert.equal(loaded.bosTokenId, undefined);
  assert.equal(loaded.chatTemplate, undefined);
  const rendered = `<|im_start|>user\n你是谁？<|im_end|>\n<|im_start|>assistant\n`;
  assert.equal(loaded.decode(loaded.encode(rendered), { skipSpecialTokens: false }), rendered);
});
