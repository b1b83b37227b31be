import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectFormat, parseColumnMapping, toConversation } from '../../src/data/formats.ts';
import {
  fillConversation,
  fillPlaceholders,
  parseAssignments,
} from '../../src/data/placeholders.ts';
import type { RawRecord } from '../../src/data/records.ts';

const rec = (fields: Record<string, unknown>, where = 'data.jsonl:17'): RawRecord => ({
  fields,
  where,
});

function rejectsWith(fn: () => unknown, message: string) {
  assert.throws(fn, { name: 'LoraforgeError', message });
}

test('alpaca: instruction and input joined by a newline, history before, system kept', () => {
  assert.deepEqual(
    toConversation(rec({ instruction: 'Translate', input: 'Hi', output: 'Salut' }), 'alpaca'),
    {
      system: undefined,
      messages: [
        { role: 'user', content: 'Translate\nHi' },
        { role: 'assistant', content: 'Salut' },
      ],
    },
  );
  const conv = toConversation(
    rec({ instruction: 'Q2', input: '', output: 'A2', system: 'S', history: [['Q1', 'A1']] }),
    'alpaca',
  );
  assert.deepEqual(conv, {
    system: 'S',
    messages: [
      { role: 'user', content: 'Q1' },
      { role: 'assistant', content: 'A1' },
      { role: 'user', content: 'Q2' },
      { role: 'assistant', content: 'A2' },
    ],
  });
});

test('alpaca errors name the record, the field and the format', () => {
  rejectsWith(
    () => toConversation(rec({ instruction: 'x' }), 'alpaca'),
    'data.jsonl:17: missing "output" (alpaca format)',
  );
  rejectsWith(
    () => toConversation(rec({ instruction: 'x', output: 3 }), 'alpaca'),
    'data.jsonl:17: "output" must be a string, got number (alpaca format)',
  );
  rejectsWith(
    () => toConversation(rec({ instruction: 'x', output: 'y', history: [['a']] }), 'alpaca'),
    'data.jsonl:17: "history"[0] must be a [user, assistant] pair of strings (alpaca format)',
  );
  rejectsWith(
    () =>
      toConversation(rec({ question: 'x' }), 'alpaca', {
        instruction: 'question',
        output: 'answer',
      }),
    'data.jsonl:17: missing "answer" (mapped from output) (alpaca format)',
  );
});

test('column mapping renames fields; unknown fields are refused', () => {
  const columns = parseColumnMapping({ instruction: 'question', output: 'answer' });
  const record = rec({ question: 'Why?', answer: 'Because.' });
  assert.equal(detectFormat(record, columns), 'alpaca');
  assert.deepEqual(toConversation(record, 'alpaca', columns).messages[1], {
    role: 'assistant',
    content: 'Because.',
  });
  rejectsWith(() => parseColumnMapping({ prompt: 'q' }), 'column mapping: unknown field "prompt"');
});

test('sharegpt: roles human/gpt/user/assistant, leading system becomes the system prompt', () => {
  const conv = toConversation(
    rec({
      conversations: [
        { from: 'system', value: 'Be kind.' },
        { from: 'human', value: 'Hi' },
        { from: 'gpt', value: 'Hello!' },
        { from: 'user', value: 'Bye' },
        { from: 'assistant', value: 'Goodbye!' },
      ],
    }),
    'sharegpt',
  );
  assert.equal(conv.system, 'Be kind.');
  assert.deepEqual(
    conv.messages.map((m) => m.role),
    ['user', 'assistant', 'user', 'assistant'],
  );
  rejectsWith(
    () => toConversation(rec({ conversations: [{ from: 'tool', value: 'x' }] }), 'sharegpt'),
    'data.jsonl:17: conversations[0]: unsupported "from" "tool"; expected human, gpt, system, user or assistant (sharegpt format)',
  );
  rejectsWith(
    () =>
      toConversation(
        rec({
          conversations: [
            { from: 'human', value: 'a' },
            { from: 'human', value: 'b' },
          ],
        }),
        'sharegpt',
      ),
    'data.jsonl:17: conversations[1]: expected an assistant message, got user (turns must alternate user, assistant) (sharegpt format)',
  );
});

test('openai messages: text parts are joined; the last message must be the assistant', () => {
  const conv = toConversation(
    rec({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Hi ' },
            { type: 'text', text: 'there' },
          ],
        },
        { role: 'assistant', content: 'Hello' },
      ],
    }),
    'openai',
  );
  assert.deepEqual(conv.messages[0], { role: 'user', content: 'Hi there' });
  rejectsWith(
    () => toConversation(rec({ messages: [{ role: 'user', content: 'x' }] }), 'openai'),
    'data.jsonl:17: messages must end with an assistant message (the part that is learned) (openai format)',
  );
});

test('detectFormat by fields, with a helpful error', () => {
  assert.equal(detectFormat(rec({ messages: [] })), 'openai');
  assert.equal(detectFormat(rec({ conversations: [] })), 'sharegpt');
  assert.equal(detectFormat(rec({ instruction: '', output: '' })), 'alpaca');
  rejectsWith(
    () => detectFormat(rec({ q: 1, a: 2 })),
    'data.jsonl:17: cannot tell the dataset format from the fields "q", "a"',
  );
});

test('placeholders: known names filled, unknown left alone, --set parsing', () => {
  assert.equal(
    fillPlaceholders('我是{{name}}，{{ name }}。{{other}}', { name: '小李' }),
    '我是小李，小李。{{other}}',
  );
  const conv = fillConversation(
    { system: 'You are {{name}}.', messages: [{ role: 'assistant', content: '{{name}}' }] },
    { name: 'Ann' },
  );
  assert.deepEqual(conv, {
    system: 'You are Ann.',
    messages: [{ role: 'assistant', content: 'Ann' }],
  });
  assert.deepEqual(parseAssignments(['name=小李', 'eq=a=b']), { name: '小李', eq: 'a=b' });
  rejectsWith(() => parseAssignments(['name']), '--set name: expected name=value');
});
