/**
 * Merging on the WebGPU backend (the merged weights computed on the device, read back tensor by
 * tensor) against the PEFT references the CPU merge tests use (test/peft/golden-lora.test.ts,
 * test/peft/peft-interop.test.ts): plain LoRA and DoRA.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { mergeToFolder } from '../../src/peft/merge.ts';
import { maxAbsDiff, readGolden, TINY } from '../helpers.ts';
import { baseDirOf, doraMergeDiffs, PEFT_FIXTURES } from '../peft/peft-fixtures.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const { skip } = await useWebGpuBackend();
const root = mkdtempSync(join(tmpdir(), 'lf-webgpu-merge-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Merges `adapterDir` into `baseDir` on the device; the merged model.safetensors. */
async function mergeOnDevice(baseDir: string, adapterDir: string, name: string): Promise<string> {
  const model = loadModel(baseDir, { dtype: 'f32' });
  const adapter = loadAdapter(adapterDir, model);
  const out = join(root, name);
  await mergeToFolder(baseDir, adapter, out);
  adapter.dispose();
  model.dispose();
  return join(out, 'model.safetensors');
}

test(
  'LoRA merge on WebGPU reproduces PEFT merge_and_unload (adapter_randB)',
  { skip },
  async () => {
    const mine = readGolden(await mergeOnDevice(TINY, join(TINY, 'lora', 'adapter_randB'), 'lora'));
    const ref = readGolden(join(TINY, 'lora', 'merged', 'model.safetensors'));
    assert.deepEqual(mine.names().sort(), ref.names().sort());
    for (const name of ref.names()) {
      const diff = maxAbsDiff(mine.f32(name).data, ref.f32(name).data);
      assert.ok(diff < 1e-6, `${name}: ${diff}`);
    }
  },
);

test('DoRA merge on WebGPU equals PEFT merge_and_unload', { skip }, async () => {
  const merged = await mergeOnDevice(baseDirOf('dora'), join(PEFT_FIXTURES, 'dora'), 'dora');
  for (const [name, diff] of doraMergeDiffs(merged)) {
    assert.ok(diff <= 1e-6, `${name}: ${diff}`);
  }
});
