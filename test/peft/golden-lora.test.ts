import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { backward } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { TINY, readGolden, relativeError } from '../helpers.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

forEachCpuBackend(() => {
  let model: DecoderModel;
  before(async () => {
    model = loadModel(TINY);
  });

  test('LoRA loss and gradients match PEFT (adapter_randB)', () => {
    const adapter = loadAdapter(join(TINY, 'lora', 'adapter_randB'), model);
    adapter.attach(model);
    adapter.setTrainable(true);
    const batch = readGolden(join(TINY, 'lora', 'batch.safetensors'));
    const ids = batch.i32('input_ids');
    const [b, t] = ids.shape as [number, number];
    const loss = tidy(() => {
      const { loss } = model.loss(
        { batch: b, seq: t, inputIds: ids.data, attentionMask: batch.i32('attention_mask').data },
        batch.i32('labels').data,
      );
      const value = (loss.readSync() as Float32Array)[0]!;
      backward(loss);
      return value;
    });
    assert.ok(Math.abs(loss - 6.919614791870117) < 1e-4, `loss ${loss}`);
    const grads = readGolden(join(TINY, 'lora', 'grads_randB.safetensors'));
    for (const [name, param] of adapter.namedParameters()) {
      const err = relativeError(param.grad!.readSync() as Float32Array, grads.f32(name).data);
      assert.ok(err < 1e-4, `${name}: relative error ${err}`);
    }
    adapter.dispose();
  });

  test('merging adapter_randB reproduces PEFT merge_and_unload', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { mergeToFolder } = await import('../../src/peft/merge.ts');
    const { noGrad } = await import('../../src/engine/tape.ts');
    const { maxAbsDiff } = await import('../helpers.ts');
    const adapter = loadAdapter(join(TINY, 'lora', 'adapter_randB'), model);
    const out = join(mkdtempSync(join(tmpdir(), 'lf-merge-')), 'merged');
    await mergeToFolder(TINY, adapter, out);
    const mine = readGolden(join(out, 'model.safetensors'));
    const ref = readGolden(join(TINY, 'lora', 'merged', 'model.safetensors'));
    assert.deepEqual(mine.names().sort(), ref.names().sort());
    for (const name of ref.names()) {
      const diff = maxAbsDiff(mine.f32(name).data, ref.f32(name).data);
      assert.ok(diff < 1e-6, `${name}: ${diff}`);
    }
    // Unmerged base + adapter and the merged model give the reference logits.
    const fwd = readGolden(join(TINY, 'lora', 'merged_logits.safetensors'));
    const ids = fwd.i32('input_ids');
    const [b, t] = ids.shape as [number, number];
    const input = {
      batch: b,
      seq: t,
      inputIds: ids.data,
      attentionMask: fwd.i32('attention_mask').data,
    };
    const logitsOf = (m: DecoderModel) =>
      noGrad(() => tidy(() => m.logits(m.forwardHidden(input)).readSync() as Float32Array));
    adapter.attach(model);
    assert.ok(maxAbsDiff(logitsOf(model), fwd.f32('logits_unmerged').data) < 1e-4);
    const merged = loadModel(out);
    assert.ok(maxAbsDiff(logitsOf(merged), fwd.f32('logits').data) < 1e-4);
    merged.dispose();
    adapter.dispose();
    rmSync(out, { recursive: true, force: true });
  });
});
