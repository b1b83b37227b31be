import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEvalSet, parseEvalSet } from '../../src/eval/eval-set.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

test('parseEvalSet keeps questions, expected answers and languages', () => {
  const set = parseEvalSet(
    {
      identity: [{ question: 'Who are you?', lang: 'en' }],
      general: [{ question: '1 + 1?', expected: ['2', '二'] }],
    },
    'x.json',
  );
  assert.deepEqual(set, {
    identity: [{ question: 'Who are you?', lang: 'en' }],
    general: [{ question: '1 + 1?', expected: ['2', '二'], lang: undefined }],
  });
  assert.deepEqual(
    parseEvalSet({ general: [{ question: 'q', expected: ['a'] }] }, 'x').identity,
    [],
  );
});

test('parseEvalSet names the file and the bad field', () => {
  const cases: [unknown, RegExp][] = [
    [[], /x\.json: top level is not a JSON object/],
    [{ identity: {} }, /identity is not an array/],
    [{ identity: [{ question: '' }] }, /identity\[0\]\.question is missing or empty/],
    [{ general: [{ question: 'q' }] }, /general\[0\]\.expected must be a non-empty array/],
    [{ general: [{ question: 'q', expected: ['ok', 3] }] }, /general\[0\]\.expected/],
    [{ identity: [{ question: 'q', lang: 1 }] }, /identity\[0\]\.lang is not a string/],
    [{ identity: [], general: [] }, /has no questions/],
  ];
  for (const [data, message] of cases) {
    assert.throws(
      () => parseEvalSet(data, 'x.json'),
      (e) => e instanceof LoraforgeError && message.test(e.message),
    );
  }
});

test('loadEvalSet reports unreadable files and invalid JSON as user errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-set-'));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{ nope');
  assert.throws(
    () => loadEvalSet(bad),
    (e) => e instanceof LoraforgeError && e.message.includes('invalid JSON'),
  );
  assert.throws(() => loadEvalSet(join(dir, 'missing.json')), /missing\.json: file not found/);
});
