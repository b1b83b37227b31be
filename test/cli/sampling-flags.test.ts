/** Sampling flags outside their range are refused with the range, through the real bin. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'loraforge.js');
const MODEL = join(ROOT, 'assets', 'tiny-chat');

function generate(...flags: string[]) {
  return spawnSync(
    process.execPath,
    [BIN, 'generate', '--model', MODEL, '--threads', '1', '-p', 'hi', ...flags],
    { encoding: 'utf8', timeout: 60_000 },
  );
}

test('generate --temperature -1, --top-p 0, --top-k -3 are refused with the valid range', () => {
  for (const [flags, range] of [
    [['--temperature', '-1'], /--temperature -1: must be a number in \[0, 2\]/],
    [['--top-p', '0'], /--top-p 0: must be a number in \(0, 1\]/],
    [['--top-k', '-3'], /--top-k -3: must be a whole number >= 0/],
    [['--repetition-penalty', '0'], /--repetition-penalty 0: must be a number in \(0, 2\]/],
  ] as const) {
    const r = generate(...flags);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, range);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('with no sampling flags, generate follows generation_config.json (greedy for tiny-chat)', () => {
  const a = generate('--max-new-tokens', '12');
  const b = generate('--max-new-tokens', '12', '--temperature', '0');
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
});
