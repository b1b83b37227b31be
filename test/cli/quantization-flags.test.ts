/** --quantization on a command that loads a model: made from the option table, checked by it. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeRandomChatModel } from '../helpers.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'loraforge.js');
const root = mkdtempSync(join(tmpdir(), 'lf-cli-quant-'));
const model = join(root, 'model');
before(async () => {
  await makeRandomChatModel(model);
});
after(() => rmSync(root, { recursive: true, force: true }));

function generate(...flags: string[]): { code: number; stdout: string; stderr: string } {
  const args = ['generate', '--model', model, '--prompt', 'hello', '--max-new-tokens', '4'];
  const r = spawnSync(process.execPath, [BIN, ...args, '--device', 'cpu', ...flags], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('generate --quantization nf4 --bnb-4bit-use-double-quant decodes on a 4-bit base', () => {
  const r = generate('--quantization', 'nf4', '--bnb-4bit-use-double-quant');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.trim().length > 0);
});

test('an unknown --quantization is one error line naming the choices', () => {
  const r = generate('--quantization', 'q3');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: command line: quantization must be one of none, nf4, fp4, int8/m);
});

test('train --dry-run prints the memory estimate and trains nothing', () => {
  const out = join(root, 'never-written');
  const r = spawnSync(
    process.execPath,
    [
      BIN,
      'train',
      '--model',
      model,
      '--dataset',
      'nowhere.json',
      '--output-dir',
      out,
      '--quantization',
      'nf4',
      '--gradient-checkpointing',
      '--dry-run',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /weights: projections nf4 +\d/);
  assert.match(r.stdout, /activations: .* \(checkpointing\)/);
  assert.match(r.stdout, /peak +\d/);
  assert.equal(existsSync(out), false);
});
