import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseEvalSet } from '../../src/eval/eval-set.ts';
import { scoreIdentity } from '../../src/eval/match.ts';

interface AlpacaRecord {
  instruction: string;
  input: string;
  output: string;
}

const training: AlpacaRecord[] = JSON.parse(readFileSync('examples/identity.json', 'utf8'));
const evalSet = parseEvalSet(
  JSON.parse(readFileSync('examples/identity-eval.json', 'utf8')),
  'identity-eval.json',
);
const hasChinese = (text: string) => /\p{Script=Han}/u.test(text);
/** Case, spacing and punctuation do not make a question new. */
const canonical = (text: string) => text.toLowerCase().replace(/[\s\p{P}]+/gu, '');

test('identity.json: about 90 alpaca records in English and Chinese with placeholders', () => {
  assert.ok(training.length >= 80 && training.length <= 100, String(training.length));
  for (const record of training) {
    assert.deepEqual(Object.keys(record), ['instruction', 'input', 'output']);
    assert.ok(record.instruction.length > 0 && record.output.includes('{{name}}'), record.output);
  }
  const chinese = training.filter((r) => hasChinese(r.instruction)).length;
  assert.ok(chinese >= 35 && training.length - chinese >= 35);
  // Variants differing only in case or punctuation (你是谁 / 你是谁？) are deliberate; exact repeats are not.
  assert.equal(new Set(training.map((r) => r.instruction)).size, training.length);
});

test('identity.json teaches answers that the identity score accepts', () => {
  const target = { name: '小李', author: '小张' };
  for (const record of training) {
    const output = record.output
      .replaceAll('{{name}}', target.name)
      .replaceAll('{{author}}', target.author);
    assert.ok(scoreIdentity(output, target), output);
  }
});

test('identity-eval.json: held-out identity questions and general questions in both languages', () => {
  assert.ok(evalSet.identity.length >= 18 && evalSet.general.length >= 18);
  const trained = new Set(training.map((r) => canonical(r.instruction)));
  for (const { question } of evalSet.identity)
    assert.ok(!trained.has(canonical(question)), question);
  for (const questions of [evalSet.identity, evalSet.general]) {
    const chinese = questions.filter((q) => hasChinese(q.question)).length;
    assert.ok(chinese >= 5 && questions.length - chinese >= 5);
  }
});
