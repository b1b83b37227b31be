/**
 * `loraforge eval` modes through the real bin: general QA without an identity to check, scored
 * by normalised exact match; held-out loss and perplexity on a dataset, before and after the
 * demo adapter; the identity check still asks for its name and author.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'loraforge.js');
const MODEL = join(ROOT, 'assets', 'tiny-chat');
const ADAPTER = join(ROOT, 'test', 'fixtures', 'demo-adapter');
const root = mkdtempSync(join(tmpdir(), 'lf-eval-'));
after(() => rmSync(root, { recursive: true, force: true }));

function evalRun(...args: string[]) {
  return spawnSync(process.execPath, [BIN, 'eval', '--model', MODEL, '--threads', '1', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
}

test('a general question file needs no --name/--author; answers are matched whole', () => {
  const questions = join(root, 'general.json');
  writeFileSync(
    questions,
    JSON.stringify({
      general: [
        { question: '5加6等于多少？', expected: ['11', '5加6等于11。'] },
        // The tiny model answers 3米等于300厘米。, which contains 3 but is not the answer 3.
        { question: '3米等于多少厘米？', expected: ['3'] },
      ],
    }),
  );
  const json = join(root, 'general-result.json');
  const r = evalRun('--data', questions, '--json', json);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /general accuracy +1\/2 \(50%\)/);
  const results = JSON.parse(readFileSync(json, 'utf8')).before.results;
  assert.deepEqual(
    results.map((x: { pass: boolean }) => x.pass),
    [true, false],
  );
});

test("held-out loss and perplexity on a dataset, base and adapter, on the run's validation split", () => {
  const json = join(root, 'loss.json');
  // The adapter's own training files: --split validation is then exactly its held-out 10 %.
  const data = ['identity.json', 'tiny-general.json']
    .map((f) => join(ROOT, 'examples', f))
    .join(',');
  const r = evalRun('--adapter', ADAPTER, '--data', data, '--split', 'validation', '--json', json);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /held-out loss on .*tiny-general\.json \(validation, template tutorial\): 45 examples/,
  );
  const { base, adapter } = JSON.parse(readFileSync(json, 'utf8'));
  assert.equal(base.examples, 45, 'the validation split of 450 records');
  assert.doesNotMatch(r.stderr, /warning/);
  // The held-out identity records were never seen, yet the adapter learned the pattern.
  assert.ok(adapter.loss < base.loss * 0.6, `${adapter.loss} vs ${base.loss}`);
  assert.ok(Math.abs(adapter.perplexity - Math.exp(adapter.loss)) < 1e-9);
});

test('the identity check still names what it needs', () => {
  const r = evalRun('--data', join(ROOT, 'examples', 'identity-eval.json'), '--mode', 'identity');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /the identity check needs the name and author/);
});
