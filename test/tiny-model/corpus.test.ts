import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  corpusToJsonl,
  generateCorpus,
  recordText,
  TINY_MODEL_IDENTITY,
  type CorpusRecord,
} from '../../scripts/tiny-model/corpus.ts';
import { mentions } from '../../src/eval/match.ts';

const corpus = generateCorpus();

test('the corpus is deterministic for a seed and differs between seeds', () => {
  assert.deepEqual(generateCorpus({ size: 500 }), generateCorpus({ size: 500 }));
  assert.deepEqual(generateCorpus({ size: 500 }), corpus.slice(0, 500));
  assert.notDeepEqual(
    generateCorpus({ size: 500, seed: 1 }),
    generateCorpus({ size: 500, seed: 2 }),
  );
  assert.equal(generateCorpus({ size: 123 }).length, 123);
});

test('the default corpus covers every topic in both languages with short answers', () => {
  assert.ok(corpus.length >= 20_000 && corpus.length <= 60_000);
  const topics = new Set(corpus.map((r) => r.topic));
  for (const topic of [
    'arithmetic',
    'word-problem',
    'counting',
    'colour',
    'calendar',
    'capital',
    'unit',
    'small-talk',
    'identity',
  ]) {
    assert.ok(topics.has(topic as CorpusRecord['topic']), topic);
  }
  const chinese = corpus.filter((r) => r.lang === 'zh').length / corpus.length;
  assert.ok(chinese > 0.45 && chinese < 0.55, String(chinese));
  for (const r of corpus) {
    assert.ok(r.output.length > 0 && r.output.length <= 120, r.output);
    assert.ok(!r.output.includes('{') && !r.instruction.includes('{'), recordText(r));
  }
  // Enough variety to generalise from, not one sentence repeated.
  assert.ok(new Set(corpus.map(recordText)).size > 10_000);
});

test('the model knows only its own identity, never the one the tutorial teaches', () => {
  const text = corpus.map(recordText).join('\n');
  for (const foreign of ['小李', '小张', 'Qwen', '通义', 'Alibaba', '阿里'])
    assert.ok(!text.includes(foreign), foreign);
  const identity = corpus.filter((r) => r.topic === 'identity');
  for (const r of identity) {
    const [name, maker] =
      r.lang === 'en'
        ? [TINY_MODEL_IDENTITY.name, TINY_MODEL_IDENTITY.maker]
        : [TINY_MODEL_IDENTITY.nameZh, TINY_MODEL_IDENTITY.makerZh];
    assert.ok(mentions(r.output, name) && mentions(r.output, maker), r.output);
  }
  // The characters of 小李 / 小张 still occur (小时, 李子, 一张纸), so they are not unseen tokens.
  for (const ch of ['小', '李', '张', '名字', '开发']) assert.ok(text.includes(ch), ch);
});

test('arithmetic answers are correct', () => {
  let checked = 0;
  for (const r of corpus.filter((r) => r.topic === 'arithmetic')) {
    const question = `${r.instruction} ${r.input}`;
    let [a, b] = question.match(/\d+/g)!.map(Number);
    // "Subtract 3 from 9" / "take 3 away from 9" name the operands in reverse order.
    if (/subtract|take \d+ away/i.test(question)) [a, b] = [b, a];
    const result = /×|\*|times|multipl|product|乘|积/i.test(question)
      ? a * b
      : /-|minus|subtract|away|减/i.test(question)
        ? a - b
        : a + b;
    assert.ok(mentions(r.output, String(result)), `${question} -> ${r.output}`);
    checked++;
  }
  assert.ok(checked > 5000);
});

test('every general eval question is phrased like the corpus, with the answers it gives', () => {
  const evalSet = JSON.parse(readFileSync('examples/identity-eval.json', 'utf8'));
  // Numbers vary between records: compare phrasings with every number replaced by #.
  const phrasing = (text: string) => text.replace(/\d+/g, '#');
  const corpusPhrasings = new Set(corpus.map((r) => phrasing(r.instruction)));
  for (const { question, expected } of evalSet.general as {
    question: string;
    expected: string[];
  }[]) {
    assert.ok(corpusPhrasings.has(phrasing(question)), `not phrased like the corpus: ${question}`);
    for (const r of corpus.filter((r) => r.instruction === question)) {
      assert.ok(
        expected.some((e) => mentions(r.output, e)),
        `${question} -> ${r.output}`,
      );
    }
  }
});

test('corpusToJsonl writes one alpaca record per line', () => {
  const lines = corpusToJsonl(corpus.slice(0, 50)).trimEnd().split('\n');
  assert.equal(lines.length, 50);
  for (const line of lines)
    assert.deepEqual(Object.keys(JSON.parse(line)), ['instruction', 'input', 'output']);
});
