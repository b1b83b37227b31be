import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRecords } from '../../src/data/record-file.ts';
import { parseRecords } from '../../src/data/records.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

const fixture = (name: string) => new URL(`../fixtures/data/${name}`, import.meta.url).pathname;

function rejects(fn: () => unknown, message: string | RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LoraforgeError, `expected LoraforgeError, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

test('JSON array: records with index and line', async () => {
  const file = fixture('alpaca.json');
  const records = await readRecords(file);
  assert.equal(records.length, 3);
  assert.equal(records[1]!.fields.input, 'Good morning');
  assert.deepEqual(
    records.map((r) => r.where),
    [`${file}:record 1 (line 2)`, `${file}:record 2 (line 7)`, `${file}:record 3 (line 12)`],
  );
});

test('JSON object with a data array', async () => {
  const file = fixture('wrapped.json');
  const records = await readRecords(file);
  assert.deepEqual(
    records.map((r) => r.fields.output),
    ['b', 'd'],
  );
  assert.equal(records[1]!.where, `${file}:record 2 (line 5)`);
});

test('JSON: a nested "data" key or strings with brackets do not confuse record lines', () => {
  const text = '{"meta": {"data": [1]}, "note": "[{,]}", "data": [\n{"a": "]"},\n\n{"b": 1}]}';
  assert.deepEqual(
    parseRecords(text, 'x.json').map((r) => r.where),
    ['x.json:record 1 (line 2)', 'x.json:record 2 (line 4)'],
  );
});

test('JSON: syntax errors and wrong shapes name the file and line', () => {
  rejects(
    () => parseRecords('[\n{"a": 1},\n{"a": }\n]', 'd.json'),
    'd.json:3: invalid JSON: unexpected "}"',
  );
  rejects(
    () => parseRecords('[\n{"a": 1},\n{"a": 2},\n]', 'd.json'),
    'd.json:3: invalid JSON: trailing comma before "]"',
  );
  rejects(
    () => parseRecords('[{"a": "x\ny"}]', 'd.json'),
    'd.json:1: invalid JSON: unterminated string',
  );
  rejects(
    () => parseRecords('[{"a": 1}\n{"a": 2}]', 'd.json'),
    'd.json:2: invalid JSON: expected "," or "]", found "{"',
  );
  rejects(
    () => parseRecords('{"rows": []}', 'd.json'),
    'd.json: expected a JSON array of records or an object with a "data" array',
  );
  rejects(
    () => parseRecords('[{"a": 1},\n "text"]', 'd.json'),
    'd.json:record 2 (line 2): expected a record (JSON object), got string',
  );
});

test('JSONL: line numbers count blank lines; errors name the line', async () => {
  const file = fixture('sharegpt.jsonl');
  const records = await readRecords(file);
  assert.deepEqual(
    records.map((r) => r.where),
    [`${file}:1`, `${file}:3`],
  );
  rejects(
    () => parseRecords('{"a": 1}\n{"a": 2\n', 'd.jsonl'),
    'd.jsonl:2: invalid JSON: unexpected end of file',
  );
  rejects(
    () => parseRecords('{"a": 1}\n[1]\n', 'd.jsonl'),
    'd.jsonl:2: expected a record (JSON object), got an array',
  );
});

test('CSV: quoted commas, newlines and quotes; records keep their starting line', async () => {
  const file = fixture('qa.csv');
  const records = await readRecords(file);
  assert.deepEqual(
    records.map((r) => r.fields),
    [
      { question: 'What is 1,000 + 1?', answer: '1,001', note: 'plain' },
      { question: 'Write two lines', answer: 'line one\nline two', note: 'multi' },
      { question: 'He said "hi"', answer: 'ok', note: '' },
    ],
  );
  assert.deepEqual(
    records.map((r) => r.where),
    [`${file}:2`, `${file}:3`, `${file}:5`],
  );
});

test('CSV: wrong field count, unterminated quote and stray quote are reported by line', async () => {
  const file = fixture('bad-fields.csv');
  await assert.rejects(readRecords(file), {
    message: `${file}:3: expected 2 fields (as in the header), found 3`,
  });
  rejects(() => parseRecords('a,b\n1,"2\n3,4\n', 'd.csv'), 'd.csv:2: unterminated quoted field');
  rejects(
    () => parseRecords('a,b\n"1"x,2\n', 'd.csv'),
    /^d\.csv:2: unexpected character after a closing quote/,
  );
  rejects(() => parseRecords('', 'd.csv'), 'd.csv: empty CSV file');
  rejects(() => parseRecords('a,a\n1,2', 'd.csv'), 'd.csv:1: duplicate column "a"');
});

test('a byte-order mark is ignored; unknown extensions and missing files are user errors', async () => {
  assert.equal(parseRecords('a\n1\n', 'd.csv')[0]!.fields.a, '1');
  rejects(() => parseRecords('', 'd.txt'), 'd.txt: unsupported dataset file type');
  await assert.rejects(readRecords('/nonexistent/d.json'), {
    name: 'LoraforgeError',
    message: '/nonexistent/d.json: dataset file not found',
  });
});
