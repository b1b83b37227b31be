import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsWriter, readMetrics, truncateMetricsAfter } from '../../src/train/metrics.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'loraforge-metrics-'));

test('records round-trip one JSON object per line, NaN and Infinity included', () => {
  const path = join(tmp(), 'logs', 'metrics.jsonl');
  const w = new MetricsWriter(path);
  w.write({ step: 1, epoch: 0.1, loss: 2.5, lr: 1e-4, grad_norm: 0.8, tokens_per_s: 1234.5 });
  w.write({ step: 2, loss: NaN, grad_norm: Infinity });
  w.write({ step: 2, eval_loss: 2.1, eval_ppl: Math.exp(2.1), time: '2026-01-01T00:00:00Z' });
  assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 3);
  const back = readMetrics(path);
  assert.deepEqual(back[0], {
    step: 1,
    epoch: 0.1,
    loss: 2.5,
    lr: 1e-4,
    grad_norm: 0.8,
    tokens_per_s: 1234.5,
  });
  assert.ok(Number.isNaN(back[1]!.loss));
  assert.equal(back[1]!.grad_norm, Infinity);
  assert.equal(back[2]!.eval_ppl, Math.exp(2.1));
});

test('a new writer appends (resume) unless asked to truncate (fresh run)', () => {
  const path = join(tmp(), 'm.jsonl');
  new MetricsWriter(path).write({ step: 1, loss: 1 });
  new MetricsWriter(path).write({ step: 2, loss: 2 });
  assert.deepEqual(
    readMetrics(path).map((r) => r.step),
    [1, 2],
  );
  new MetricsWriter(path, { truncate: true }).write({ step: 9 });
  assert.deepEqual(
    readMetrics(path).map((r) => r.step),
    [9],
  );
});

test('a torn last line is skipped; a bad line in the middle is an error naming the line', () => {
  const path = join(tmp(), 'm.jsonl');
  new MetricsWriter(path).write({ step: 1, loss: 1 });
  appendFileSync(path, '{"step": 2, "lo');
  assert.deepEqual(readMetrics(path), [{ step: 1, loss: 1 }]);
  writeFileSync(path, '{"step":1}\nnot json\n{"step":3}\n');
  assert.throws(() => readMetrics(path), /m\.jsonl:2/);
  assert.throws(() => readMetrics(join(tmp(), 'absent.jsonl')), LoraforgeError);
});

test('truncateMetricsAfter drops events logged after a resumed checkpoint', () => {
  const path = join(tmp(), 'm.jsonl');
  const w = new MetricsWriter(path);
  for (let step = 1; step <= 6; step++) w.write({ step, loss: step });
  truncateMetricsAfter(path, 4);
  assert.deepEqual(
    readMetrics(path).map((r) => r.step),
    [1, 2, 3, 4],
  );
});
