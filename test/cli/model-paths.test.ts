/**
 * Wrong turns with model and adapter paths, through the real bin: a local path that does not
 * exist is "no such folder" (not a Hub download to resume), and an adapter applied to another
 * model of the same shape is loaded with a clear warning.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'loraforge.js');
const ADAPTER = join(ROOT, 'test', 'fixtures', 'demo-adapter');
const root = mkdtempSync(join(tmpdir(), 'lf-paths-'));
after(() => rmSync(root, { recursive: true, force: true }));

function generate(model: string, ...flags: string[]) {
  return spawnSync(
    process.execPath,
    [BIN, 'generate', '--model', model, '--threads', '1', '-p', '你是谁？', ...flags],
    // HF_ENDPOINT unreachable: a test must never reach the real Hub.
    {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: ROOT,
      env: { ...process.env, HF_ENDPOINT: 'http://127.0.0.1:9' },
    },
  );
}

test('a local path without ./ that does not exist is "no such folder", nothing to resume', () => {
  for (const missing of ['runs-that-never-were/merged', 'examples/merged']) {
    const r = generate(missing);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^error: ${missing}: no such folder`));
    assert.doesNotMatch(r.stderr, /resume/);
  }
});

test('an adapter on another model of the same shape loads with a warning naming both', () => {
  const other = join(root, 'other-model');
  cpSync(join(ROOT, 'assets', 'tiny-chat'), other, { recursive: true });
  const r = generate(other, '--adapter', ADAPTER, '--max-new-tokens', '4');
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: the adapter .*demo-adapter was trained on assets\/tiny-chat .* applied to .*other-model/,
  );
  const same = generate(
    join(ROOT, 'assets', 'tiny-chat'),
    '--adapter',
    ADAPTER,
    '--max-new-tokens',
    '4',
  );
  assert.equal(same.status, 0, same.stderr);
  assert.doesNotMatch(same.stderr, /warning/);
});
