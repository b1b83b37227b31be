// The model path on the WebGPU backend against the Hugging Face references that the CPU golden
// tests use (test/models/golden-forward.test.ts, test/peft/golden-lora.test.ts).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { backward, noGrad } from '../../src/engine/tape.ts';
import { Tensor, tidy } from '../../src/engine/tensor.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { TINY, maxAbsDiff, readGolden, relativeError } from '../helpers.ts';
import { greedyDecodeDiff } from '../models/golden-package.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const gpu = await useWebGpuBackend();
const { skip } = gpu;

let model: DecoderModel;
before(() => {
  if (!skip) model = loadModel(TINY);
});

test('qwen2-tiny logits match transformers on a padded batch', { skip }, async () => {
  const g = readGolden(join(TINY, 'forward.safetensors'));
  const ids = g.i32('input_ids');
  const [batch, seq] = ids.shape as [number, number];
  const input = { batch, seq, inputIds: ids.data, attentionMask: g.i32('attention_mask').data };
  const logits = noGrad(() => tidy(() => model.logits(model.forwardHidden(input))));
  const diff = maxAbsDiff(await logits.toFloat32(), g.f32('logits').data);
  logits.dispose();
  console.log(`# logits max abs diff ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-4, `max abs diff ${diff}`);
});

test('greedy KV-cache decoding reproduces the transformers step logits', { skip }, async () => {
  // Both prompts; every cached step is also checked against a full forward pass.
  const diff = await greedyDecodeDiff(model, TINY);
  console.log(`# step logits max abs diff ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-4, `step logits differ by ${diff}`);
});

/** Loss and backward of the golden LoRA batch; the caller disposes the returned loss. */
function loraLossAndBackward(): Tensor {
  const batch = readGolden(join(TINY, 'lora', 'batch.safetensors'));
  const ids = batch.i32('input_ids');
  const [b, t] = ids.shape as [number, number];
  const input = {
    batch: b,
    seq: t,
    inputIds: ids.data,
    attentionMask: batch.i32('attention_mask').data,
  };
  return tidy(() => {
    const { loss } = model.loss(input, batch.i32('labels').data);
    backward(loss);
    return loss;
  });
}

test('LoRA loss and gradients match PEFT (adapter_randB)', { skip }, async () => {
  const adapter = loadAdapter(join(TINY, 'lora', 'adapter_randB'), model);
  adapter.attach(model);
  adapter.setTrainable(true);
  const loss = loraLossAndBackward();
  const value = (await loss.toFloat32())[0]!;
  loss.dispose();
  const grads = readGolden(join(TINY, 'lora', 'grads_randB.safetensors'));
  let worst = 0;
  for (const [name, param] of adapter.namedParameters()) {
    const err = relativeError(await param.grad!.toFloat32(), grads.f32(name).data);
    worst = Math.max(worst, err);
    assert.ok(err < 1e-4, `${name}: relative error ${err}`);
  }
  const lossError = Math.abs(value - 6.919614791870117);
  assert.ok(lossError < 1e-4, `loss ${value}`);
  console.log(
    `# loss error ${lossError.toExponential(2)}, worst gradient relative error ${worst.toExponential(2)}`,
  );

  // Later steps reuse pooled buffers: once warm, a step creates no GPUBuffer and leaks nothing.
  loraLossAndBackward().dispose();
  const backend = gpu.backend();
  const created = backend.createdBuffers;
  const live = backend.allocatedBytes();
  loraLossAndBackward().dispose();
  assert.equal(backend.createdBuffers, created);
  assert.equal(backend.allocatedBytes(), live);
  adapter.dispose();
});
