/** merge never deletes or overwrites what the user did not ask it to. */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import type { LoraAdapter } from '../../src/peft/adapter.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { mergeToFolder } from '../../src/peft/merge.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { TINY, useCpuBackend } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'lf-merge-target-'));
const base = join(root, 'base');
const adapterDir = join(root, 'adapter');
let model: DecoderModel;
let adapter: LoraAdapter;

before(async () => {
  await useCpuBackend();
  cpSync(TINY, base, { recursive: true, filter: (p) => !p.includes('/train') });
  cpSync(join(TINY, 'lora', 'adapter_randB'), adapterDir, { recursive: true });
  model = loadModel(base);
  adapter = loadAdapter(adapterDir, model);
});

test('merge refuses a non-empty folder and leaves it untouched', async () => {
  const out = join(root, 'user-folder');
  mkdirSync(out);
  writeFileSync(join(out, 'thesis.tex'), 'years of work');
  await assert.rejects(
    mergeToFolder(base, adapter, out),
    (err: Error) => err instanceof LoraforgeError && /not empty/.test(err.message),
  );
  assert.equal(readFileSync(join(out, 'thesis.tex'), 'utf8'), 'years of work');
});

test('merge --overwrite replaces its own files and keeps the others', async () => {
  const out = join(root, 'user-folder-2');
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'keep me');
  writeFileSync(join(out, 'model.safetensors'), 'stale');
  await mergeToFolder(base, adapter, out, { overwrite: true });
  assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'keep me');
  assert.ok(existsSync(join(out, 'config.json')));
  loadModel(out).dispose();
});

test('merge never writes over the model or adapter it reads, even with --overwrite', async () => {
  const before = readFileSync(join(base, 'model.safetensors'));
  for (const out of [base, join(base, 'merged'), adapterDir, root]) {
    await assert.rejects(
      mergeToFolder(base, adapter, out, {
        overwrite: true,
        sources: { '--adapter': adapterDir },
      }),
      (err: Error) =>
        err instanceof LoraforgeError &&
        /which this command reads|refusing to overwrite an adapter/.test(err.message),
      out,
    );
  }
  assert.deepEqual(readFileSync(join(base, 'model.safetensors')), before);
});

test('merge into a path that is a file is one clear error', async () => {
  const out = join(root, 'a-file');
  writeFileSync(out, 'x');
  await assert.rejects(
    mergeToFolder(base, adapter, out),
    (err: Error) => err instanceof LoraforgeError && /is a file/.test(err.message),
  );
});
