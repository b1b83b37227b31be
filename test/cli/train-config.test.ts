/** `loraforge train` rejects a bad config or flag with one line, before it loads anything. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'loraforge.js');
const root = mkdtempSync(join(tmpdir(), 'lf-train-config-'));
after(() => rmSync(root, { recursive: true, force: true }));

function train(args: string[]): { code: number; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'train', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stderr: r.stderr };
}

test('a YAML typo is one error line with the nearest key, before the model is looked at', () => {
  const config = join(root, 'typo.yaml');
  // The model does not exist: an error about it would mean the config was not checked first.
  writeFileSync(config, 'model: ./no-such-model\ndataset: d.json\nlearnig_rate: 1e-4\n');
  const r = train([config]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /typo\.yaml: unknown key "learnig_rate"/);
  assert.match(r.stderr, /did you mean learning_rate\?/);
  assert.doesNotMatch(r.stderr, /no-such-model/);
});

test('a mistyped flag gets a suggestion too', () => {
  const r = train(['--model', 'm', '--dataset', 'd.json', '--lora-rnak', '8']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /unknown option '--lora-rnak'/);
  assert.match(r.stderr, /--lora-rank/);
});

test('a missing dataset file is reported before the model is looked at', () => {
  const r = train(['--model', './no-such-model', '--dataset', join(root, 'missing.json')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /missing\.json: dataset file not found/);
  assert.doesNotMatch(r.stderr, /no-such-model/);
});
