import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runEval } from '../../src/eval/run.ts';
import { evalComparisonJson, formatEvalTable } from '../../src/eval/report.ts';
import { displayWidth } from '../../src/eval/text-width.ts';
import type { EvalSet } from '../../src/eval/eval-set.ts';

const target = { name: '小李', author: '小张' };
const set: EvalSet = {
  identity: [
    { question: 'Who are you?', lang: 'en' },
    { question: '你是谁？', lang: 'zh' },
  ],
  general: [
    // Whole acceptable answers: scoring is a normalised exact match.
    { question: 'What is 3 + 4?', expected: ['7', '3 + 4 = 7.'] },
    { question: '中国的首都是哪里？', expected: ['北京', '中国的首都是北京。'] },
  ],
};

const beforeModel = async (q: string) =>
  ({
    'Who are you?': 'I am Pico, made by the loraforge project.',
    '你是谁？': '我是皮克。',
    'What is 3 + 4?': '3 + 4 = 7.',
    '中国的首都是哪里？': '中国的首都是北京。',
  })[q]!;
const afterModel = async (q: string) =>
  ({
    'Who are you?': 'I am 小李, an AI assistant developed by 小张.',
    '你是谁？': '我是小李，由小张开发。',
    'What is 3 + 4?': 'The answer is 8.',
    '中国的首都是哪里？': '北京。',
  })[q]!;

test('runEval asks every question in order and scores each kind', async () => {
  const seen: string[] = [];
  const progress: string[] = [];
  const report = await runEval(
    set,
    async (q) => {
      seen.push(q);
      return beforeModel(q);
    },
    { target, onResult: (r, done, total) => progress.push(`${done}/${total} ${r.pass}`) },
  );
  assert.deepEqual(seen, ['Who are you?', '你是谁？', 'What is 3 + 4?', '中国的首都是哪里？']);
  assert.deepEqual(progress, ['1/4 false', '2/4 false', '3/4 true', '4/4 true']);
  assert.deepEqual(report.identity, { passed: 0, total: 2, rate: 0 });
  assert.deepEqual(report.general, { passed: 2, total: 2, rate: 1 });
  assert.deepEqual(report.results[2], {
    kind: 'general',
    question: 'What is 3 + 4?',
    answer: '3 + 4 = 7.',
    pass: true,
    expected: ['7', '3 + 4 = 7.'],
    lang: undefined,
  });
});

test('a set without general questions has no general accuracy', async () => {
  const report = await runEval({ identity: set.identity, general: [] }, afterModel, { target });
  assert.deepEqual(report.general, { passed: 0, total: 0, rate: null });
  assert.match(formatEvalTable(report), /general accuracy\s+n\/a/);
});

test('formatEvalTable lines up CJK answers side by side and summarises both runs', async () => {
  const before = await runEval(set, beforeModel, { target });
  const after = await runEval(set, afterModel, { target });
  const table = formatEvalTable(before, after);
  const lines = table.split('\n');
  const rows = lines.filter((line) => /^\d+ /.test(line));
  assert.equal(rows.length, 4);
  // The "after" column (the second pass / FAIL mark) starts at the same display column on
  // every row, whether the cells before it hold Chinese or English.
  const afterColumn = (row: string) =>
    displayWidth(row.slice(0, [...row.matchAll(/(?:pass|FAIL) /g)][1].index));
  assert.equal(new Set(rows.map(afterColumn)).size, 1, table);
  assert.match(table, /identity hit rate\s+0\/2 \(0%\)\s+2\/2 \(100%\)/);
  assert.match(table, /general accuracy\s+2\/2 \(100%\)\s+1\/2 \(50%\)/);
  assert.match(table, /What is 3 \+ 4\? \[7\]/);
});

test('formatEvalTable shows a single run and truncates long answers to the column width', async () => {
  const report = await runEval(set, async () => 'word '.repeat(50), { target });
  const table = formatEvalTable(report, undefined, { answerWidth: 20, questionWidth: 12 });
  const row = table.split('\n').find((line) => line.startsWith('1 '))!;
  assert.equal(displayWidth(row), 1 + 2 + 12 + 2 + 20);
  assert.ok(row.endsWith('…'));
  assert.doesNotMatch(table, /after/);
});

test('before and after reports must share their questions', async () => {
  const before = await runEval(set, beforeModel, { target });
  const other = await runEval({ identity: set.identity, general: [] }, afterModel, { target });
  assert.throws(() => formatEvalTable(before, other), /same questions/);
  assert.throws(() => evalComparisonJson(before, other), /same questions/);
});

test('evalComparisonJson carries both runs and their summary', async () => {
  const before = await runEval(set, beforeModel, { target });
  const after = await runEval(set, afterModel, { target });
  const json = evalComparisonJson(before, after);
  assert.deepEqual(json.summary, {
    identityHitRate: { before: 0, after: 1 },
    generalAccuracy: { before: 1, after: 0.5 },
  });
  assert.equal(json.after?.results[0].answer, 'I am 小李, an AI assistant developed by 小张.');
  assert.deepEqual(JSON.parse(JSON.stringify(evalComparisonJson(before))).summary, {
    identityHitRate: { before: 0 },
    generalAccuracy: { before: 1 },
  });
});
