import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collate } from '../../src/data/batch.ts';
import { countTargets, encodeExamples, type EncodedExample } from '../../src/data/examples.ts';
import { DataLoader, padIdOf } from '../../src/data/loader.ts';
import { packIndices } from '../../src/data/packing.ts';
import { splitIndices } from '../../src/data/split.ts';
import { createTemplate } from '../../src/data/templates.ts';
import { CharTokenizer } from '../fixtures/data/fake-tokenizer.ts';

const X = -100;
const ex = (inputIds: number[], labels: number[]): EncodedExample => ({
  inputIds: Int32Array.from(inputIds),
  labels: Int32Array.from(labels),
});
/** An example of `n` tokens whose ids encode the example number, learning all but the first. */
const numbered = (id: number, n: number) => ex(Array(n).fill(id), [X, ...Array(n - 1).fill(id)]);

test('encodeExamples truncates at cutoffLen and drops examples with nothing left to learn', () => {
  const template = createTemplate('tutorial', new CharTokenizer());
  const conv = (user: string, reply: string) => ({
    messages: [
      { role: 'user' as const, content: user },
      { role: 'assistant' as const, content: reply },
    ],
  });
  // "Human: q\n\nAssistant: " is 21 tokens with the char tokenizer, the reply adds eos.
  const { examples, stats } = encodeExamples(
    [conv('q', 'abc'), conv('q'.repeat(30), 'x'), conv('q', 'abcdefgh')],
    template,
    {
      cutoffLen: 25,
      trainOnPrompt: false,
    },
  );
  assert.equal(examples.length, 2);
  assert.deepEqual(stats, {
    examples: 2,
    dropped: 1,
    truncated: 1,
    tokens: 25 + 25,
    supervisedTokens: 4 + 4,
  });
  assert.deepEqual(
    [...examples[0]!.labels.slice(21)],
    [...'abc'].map((c) => c.codePointAt(0)! + 100).concat(1),
  );
  assert.deepEqual(
    [...examples[1]!.labels.slice(21)],
    [...'abcd'].map((c) => c.codePointAt(0)! + 100),
  );
});

test('countTargets skips position 0 (nothing predicts it)', () => {
  assert.equal(countTargets([5, X, 6, 7]), 2);
  assert.equal(countTargets([X, X]), 0);
});

test('splitIndices: seeded, fraction or count, file order within each part', () => {
  const a = splitIndices(20, 0.1, 42);
  assert.equal(a.validation.length, 2);
  assert.equal(a.train.length, 18);
  assert.deepEqual(
    [...a.train, ...a.validation].sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.deepEqual(splitIndices(20, 0.1, 42), a);
  assert.notDeepEqual(splitIndices(20, 0.1, 7).validation, a.validation);
  assert.equal(splitIndices(20, 5, 42).validation.length, 5);
  assert.equal(splitIndices(3, 0.1, 42).validation.length, 0);
  assert.deepEqual(splitIndices(5, 0, 1), { train: [0, 1, 2, 3, 4], validation: [] });
  assert.throws(() => splitIndices(5, 5, 1), {
    name: 'LoraforgeError',
    message: /leaves no training examples/,
  });
  assert.throws(() => splitIndices(5, 1.5, 1), { name: 'LoraforgeError' });
});

test('collate pads rows to the longest row of the batch', () => {
  const batch = collate([[ex([10, 11, 12], [X, 11, 12])], [ex([20], [X])]], 0, false);
  assert.equal(batch.batchSize, 2);
  assert.equal(batch.seqLen, 3);
  assert.deepEqual([...batch.inputIds], [10, 11, 12, 20, 0, 0]);
  assert.deepEqual([...batch.labels], [X, 11, 12, X, X, X]);
  assert.deepEqual([...batch.attentionMask], [1, 1, 1, 1, 0, 0]);
  assert.deepEqual([...batch.positionIds], [0, 1, 2, 0, 0, 0]);
  assert.equal(batch.segmentIds, undefined);
  assert.equal(batch.numTargets, 2);
});

test('collate packs examples: segments, restarting positions, no cross-document target', () => {
  const batch = collate(
    [[ex([10, 11], [10, 11]), ex([20, 21, 22], [20, 21, 22])], [ex([30], [30])]],
    0,
    true,
  );
  assert.equal(batch.seqLen, 5);
  assert.deepEqual([...batch.inputIds], [10, 11, 20, 21, 22, 30, 0, 0, 0, 0]);
  assert.deepEqual([...batch.labels], [X, 11, X, 21, 22, X, X, X, X, X]);
  assert.deepEqual([...batch.segmentIds!], [1, 1, 2, 2, 2, 1, 0, 0, 0, 0]);
  assert.deepEqual([...batch.positionIds], [0, 1, 0, 1, 2, 0, 0, 0, 0, 0]);
  assert.deepEqual([...batch.attentionMask], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
  assert.equal(batch.numTargets, 3);
});

test('packIndices fills rows first-fit without exceeding the row length', () => {
  const lengths = [5, 4, 3, 2, 6, 1];
  const rows = packIndices([0, 1, 2, 3, 4, 5], (i) => lengths[i]!, 8);
  assert.deepEqual(rows, [[0, 2], [1, 3, 5], [4]]);
  for (const row of rows) assert.ok(row.reduce((s, i) => s + lengths[i]!, 0) <= 8);
});

test('DataLoader: every example once per epoch, reshuffled per epoch, deterministic by seed', () => {
  const examples = Array.from({ length: 10 }, (_, i) => numbered(i + 1, 2 + (i % 3)));
  const epochOrder = (loader: DataLoader) => [...loader.restOfEpoch()].flatMap((b) => firstIds(b));
  const loader = new DataLoader(examples, { batchSize: 3, padId: 0, seed: 1 });
  assert.equal(loader.batchesPerEpoch, 4);
  const e0 = epochOrder(loader);
  const e1 = epochOrder(loader);
  assert.deepEqual(
    [...e0].sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  assert.notDeepEqual(e0, e1);
  assert.equal(loader.epoch, 2);
  assert.deepEqual(epochOrder(new DataLoader(examples, { batchSize: 3, padId: 0, seed: 1 })), e0);
  const unshuffled = new DataLoader(examples, { batchSize: 4, padId: 0, shuffle: false });
  assert.deepEqual(epochOrder(unshuffled), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

test('DataLoader state() / restore() resumes mid-epoch with identical batches', () => {
  const examples = Array.from({ length: 7 }, (_, i) => numbered(i + 1, 3));
  const opts = { batchSize: 2, padId: 0, seed: 9 };
  const a = new DataLoader(examples, opts);
  for (let i = 0; i < 5; i++) a.next();
  const saved = JSON.parse(JSON.stringify(a.state()));
  assert.deepEqual(saved, { seed: 9, epoch: 1, index: 1, examples: 7 });
  const expected = Array.from({ length: 6 }, () => a.next());
  const b = new DataLoader(examples, opts);
  b.restore(saved);
  assert.deepEqual(
    Array.from({ length: 6 }, () => b.next()),
    expected,
  );
  assert.throws(() => new DataLoader(examples.slice(1), opts).restore(saved), {
    name: 'LoraforgeError',
    message: /cannot resume/,
  });
});

test('groupByLength: batches hold similar lengths, the longest batch comes first', () => {
  const examples = Array.from({ length: 40 }, (_, i) => numbered(i + 1, 2 + ((i * 7) % 40)));
  const loader = new DataLoader(examples, { batchSize: 4, padId: 0, groupByLength: true, seed: 3 });
  const batches = [...loader.restOfEpoch()];
  assert.equal(batches[0]!.seqLen, 41);
  // One mega-batch covers all 40 distinct lengths, so each batch holds 4 consecutive lengths.
  const padding = batches.reduce((s, b) => s + b.attentionMask.filter((m) => m === 0).length, 0);
  assert.equal(padding, 10 * (1 + 2 + 3));
  assert.deepEqual(
    batches.flatMap(firstIds).sort((a, b) => a - b),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
});

test('packing loader: rows up to packLength, each example exactly once, segment ids', () => {
  const examples = Array.from({ length: 12 }, (_, i) => numbered(i + 1, 2 + (i % 4)));
  const loader = new DataLoader(examples, {
    batchSize: 2,
    padId: 0,
    packing: true,
    packLength: 8,
    seed: 5,
  });
  const seen: number[] = [];
  for (const batch of loader.restOfEpoch()) {
    assert.ok(batch.seqLen <= 8);
    assert.ok(batch.segmentIds);
    for (let i = 0; i < batch.inputIds.length; i++) {
      if (batch.attentionMask[i] && batch.positionIds[i] === 0) seen.push(batch.inputIds[i]!);
    }
  }
  assert.deepEqual(
    seen.sort((a, b) => a - b),
    Array.from({ length: 12 }, (_, i) => i + 1),
  );
  assert.throws(
    () => new DataLoader(examples, { batchSize: 2, padId: 0, packing: true, packLength: 4 }),
    {
      name: 'LoraforgeError',
      message: /pack length 4 is shorter than the longest example \(5 tokens\)/,
    },
  );
});

test('an empty loader (e.g. no validation set) has no batches', () => {
  const loader = new DataLoader([], { batchSize: 2, padId: 0 });
  assert.equal(loader.batchesPerEpoch, 0);
  assert.deepEqual([...loader.restOfEpoch()], []);
});

test('padIdOf prefers pad, then eos, then 0', () => {
  assert.equal(padIdOf(new CharTokenizer()), 0);
  assert.equal(padIdOf(new CharTokenizer(undefined, { pad: false })), 1);
});

/** The id of each example (its token value) at the start of every row. */
function firstIds(batch: { batchSize: number; seqLen: number; inputIds: Int32Array }): number[] {
  return Array.from({ length: batch.batchSize }, (_, b) => batch.inputIds[b * batch.seqLen]!);
}
