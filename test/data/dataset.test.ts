import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDataset } from '../../src/data/dataset.ts';
import { createTemplate } from '../../src/data/templates.ts';
import { CharTokenizer } from '../fixtures/data/fake-tokenizer.ts';

const fixture = (name: string) => new URL(`../fixtures/data/${name}`, import.meta.url).pathname;
const tok = new CharTokenizer();
const tutorial = createTemplate('tutorial', tok);

test('loadDataset: alpaca JSON with placeholders, no validation split', async () => {
  const { train, validation, stats } = await loadDataset({
    files: fixture('alpaca.json'),
    template: tutorial,
    valSize: 0,
    placeholders: { name: '小李' },
  });
  assert.equal(train.length, 3);
  assert.equal(validation.length, 0);
  assert.equal(
    tok.decode([...train[0]!.inputIds]),
    'Human: 你是谁？\n\nAssistant: 我是小李，你的助手。<eos>',
  );
  assert.equal(
    tok.decode([...train[2]!.inputIds]),
    'You are terse.\nHuman: Hello\n\nAssistant: Hello there.<eos>\nHuman: Say hi\n\nAssistant: Hi!<eos>',
  );
  assert.equal(stats.records, 3);
  assert.equal(stats.train.examples, 3);
  assert.equal(
    stats.train.tokens,
    train.reduce((s, e) => s + e.inputIds.length, 0),
  );
});

test('loadDataset: several files of different formats, seeded split', async () => {
  const files = [fixture('sharegpt.jsonl'), fixture('openai.jsonl'), fixture('wrapped.json')];
  const opts = {
    files,
    template: createTemplate('chatml', tok),
    valSize: 2,
    seed: 3,
    placeholders: { name: 'Ann' },
  };
  const a = await loadDataset(opts);
  assert.equal(a.stats.records, 6);
  assert.equal(a.train.length, 4);
  assert.equal(a.validation.length, 2);
  const b = await loadDataset(opts);
  assert.deepEqual(b.validation, a.validation);
  const texts = [...a.train, ...a.validation].map((e) => tok.decode([...e.inputIds]));
  assert.ok(texts.some((t) => t.includes('<|im_start|>system\nYou are Ann.<|im_end|>')));
});

test('loadDataset: CSV with a column mapping', async () => {
  const { train } = await loadDataset({
    files: fixture('qa.csv'),
    template: tutorial,
    columns: { instruction: 'question', output: 'answer' },
    valSize: 0,
  });
  assert.equal(
    tok.decode([...train[1]!.inputIds]),
    'Human: Write two lines\n\nAssistant: line one\nline two<eos>',
  );
});

test('loadDataset: a bad record is reported by file and line', async () => {
  const file = fixture('bad-record.json');
  await assert.rejects(loadDataset({ files: file, template: tutorial }), {
    name: 'LoraforgeError',
    message: `${file}:record 2 (line 3): missing "output" (alpaca format)`,
  });
});

test('loadDataset: empty or fully truncated datasets are refused before training', async () => {
  await assert.rejects(loadDataset({ files: fixture('empty.jsonl'), template: tutorial }), {
    name: 'LoraforgeError',
    message: /the dataset has no records/,
  });
  await assert.rejects(
    loadDataset({ files: fixture('alpaca.json'), template: tutorial, cutoffLen: 10, valSize: 0 }),
    {
      name: 'LoraforgeError',
      message: 'no training example left: all 3 have nothing to learn within cutoff_len 10',
    },
  );
});
