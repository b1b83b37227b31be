/**
 * `npm run bench:… -- --help` (and build:native / build:wasm) prints the script's usage and runs
 * nothing: every such script is started through scripts/usage.mjs and opens with its usage.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
// @ts-expect-error: a plain .mjs script without type declarations
import { leadingComment } from '../../scripts/usage.mjs';

const ROOT = join(import.meta.dirname, '..', '..');
const scripts: Record<string, string> = JSON.parse(
  readFileSync(join(ROOT, 'package.json'), 'utf8'),
).scripts;
const withUsage = Object.entries(scripts).filter(
  ([name]) => name.startsWith('bench:') || name === 'build:native' || name === 'build:wasm',
);

test('a block comment or a run of line comments is the usage', () => {
  assert.equal(leadingComment('/**\n * Usage: a\n *   b\n */\ncode();'), 'Usage: a\n  b');
  assert.equal(leadingComment('#!/usr/bin/env node\n// one\n// two\nx();'), 'one\ntwo');
  assert.equal(leadingComment('code(); // late'), '');
});

test('every benchmark and build script is started through scripts/usage.mjs and has a usage', () => {
  assert.ok(withUsage.length >= 10, 'package.json lists the benchmarks');
  for (const [name, command] of withUsage) {
    assert.match(command, /--import \.\/scripts\/usage\.mjs /, name);
    const file = command.split(' ').at(-1)!;
    assert.ok(leadingComment(readFileSync(join(ROOT, file), 'utf8')).length > 40, `${name}: usage`);
  }
});

test('--help prints the usage and exits before the script runs', () => {
  const command = scripts['bench:train']!.split(' ');
  const run = spawnSync(command[0]!, [...command.slice(1), '--help'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /npm run bench:train/);
  assert.doesNotMatch(run.stdout, /machine:/, 'the benchmark did not start');
});
