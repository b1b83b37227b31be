import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { backward } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { TINY, readGolden, relativeError, useCpuBackend } from '../helpers.ts';

let model: DecoderModel;
before(async () => {
  await useCpuBackend();
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
