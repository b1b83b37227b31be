/** Inputs far larger than usual are handled iteratively: clear errors or results, never a RangeError. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseRecords } from '../../src/data/records.ts';
import { createTemplate } from '../../src/data/templates.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

const userError = (pattern: RegExp) => (err: Error) =>
  err instanceof LoraforgeError && pattern.test(err.message);

test('a record of ~150k tokens encodes (no push(...ids) stack overflow)', async () => {
  const tokenizer = await loadTokenizer(
    join(import.meta.dirname, '..', '..', 'assets', 'tiny-chat'),
  );
  const reply = '一 二 三 四 '.repeat(19_000);
  const { inputIds, labels } = createTemplate('tutorial', tokenizer).encodeConversation(
    {
      messages: [
        { role: 'user', content: 'count' },
        { role: 'assistant', content: reply },
      ],
    },
    { trainOnPrompt: false },
  );
  assert.ok(inputIds.length > 150_000, `${inputIds.length} tokens`);
  assert.equal(labels.length, inputIds.length);
});

test('200k nested brackets: a clear error in .json and .jsonl, unclosed or closed', () => {
  const deep = '['.repeat(200_000);
  assert.throws(
    () => parseRecords(deep, 'deep.json'),
    userError(/deep\.json:1: invalid JSON: unexpected end of file/),
  );
  assert.throws(
    () => parseRecords(`{"a": 1}\n${deep}\n`, 'deep.jsonl'),
    userError(/deep\.jsonl:2: invalid JSON/),
  );
  const closed = deep + ']'.repeat(200_000);
  assert.throws(
    () => parseRecords(closed, 'closed.json'),
    userError(/record 1 .*expected a record/),
  );
});
