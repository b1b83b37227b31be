/**
 * bf16 mixed precision (`bf16: true`, the native backend's gemmPrecision 'bf16') against the
 * exact path: one LoRA forward + backward on the tiny Qwen2 with bf16 weights, on the native
 * variant with bf16 dot products. Each bf16 product carries the rounding of both factors to 8
 * significant bits (relative error up to ~2^-8 per product, sums in float32). Measured here: the
 * loss (a mean over 72 positions) moves by ~6e-6, the LoRA gradients (relative L2) by up to
 * ~4e-3, about one product's 2^-8. So the loss must stay within 2^-10 and each gradient within
 * 2^-6 of the exact path (a shifted bf16 pair in the GEMM's packing gives 0.2), and the two
 * paths must differ (the bf16 products ran).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nativeVariants } from '../../src/engine/native/addon.ts';
import { NativeBackend } from '../../src/engine/native/backend.ts';
import type { GemmPrecision } from '../../src/engine/native/runtime.ts';
import { backward } from '../../src/engine/tape.ts';
import { setBackend, tidy } from '../../src/engine/tensor.ts';
import { loadModel } from '../../src/models/load.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { relativeError, TINY } from '../helpers.ts';
import { nativeTestVariants } from '../cpu-backends.ts';

const LOSS_TOLERANCE = 2 ** -10;
const GRADIENT_TOLERANCE = 2 ** -6;

/** The best native variant here with bf16 dot products, or why there is none. */
function bf16Variant(): { name?: string; skip: string | false } {
  const { variants, skip } = nativeTestVariants();
  if (skip) return { skip };
  const withBf16 = nativeVariants().filter(
    (v) => variants.includes(v.name) && v.cpu.includes('avx512bf16'),
  );
  const name = withBf16.at(-1)?.name;
  return name
    ? { name, skip: false }
    : { skip: 'this CPU has no bf16 dot products (AVX-512 BF16)' };
}

interface StepResult {
  loss: number;
  grads: Map<string, Float32Array>;
}

/** Loss and LoRA gradients of one step on a fresh native backend of that GEMM precision. */
function loraStep(variant: string, gemmPrecision: GemmPrecision): StepResult {
  const backend = NativeBackend.create({ threads: 2, variant, gemmPrecision });
  setBackend(backend);
  const model = loadModel(TINY, { dtype: 'bf16' });
  const adapter = LoraAdapter.create(
    model,
    makeLoraConfig({ r: 8, loraAlpha: 16, targetModules: 'all-linear' }),
    0,
  );
  adapter.attach(model);
  adapter.setTrainable(true);
  const params = adapter.namedParameters();
  // B starts at zero, which would leave A without gradient: give it values.
  for (const [name, t] of params) {
    if (!name.includes('lora_B')) continue;
    const values = Float32Array.from({ length: t.size }, (_, i) => 0.05 * Math.sin(i * 0.37 + 1));
    backend.upload(t.storage, t.operand().byteOffset, values);
  }
  const batch = 4;
  const seq = 24;
  const vocab = model.config.vocabSize;
  const inputIds = Int32Array.from(
    { length: batch * seq },
    (_, i) => 1 + ((i * 7919) % (vocab - 1)),
  );
  const labels = inputIds.map((id, i) => (i % seq < 6 ? -100 : id));
  const loss = tidy(() => {
    const { loss } = model.loss({ batch, seq, inputIds }, labels);
    backward(loss);
    return Number(loss.readSync()[0]);
  });
  const grads = new Map(params.map(([name, t]) => [name, Float32Array.from(t.grad!.readSync())]));
  adapter.dispose();
  model.dispose();
  backend.dispose();
  return { loss, grads };
}

const variant = bf16Variant();

test(
  'bf16 products stay within 2^-8 (loss) and 2^-5 (LoRA gradients) of exact ones',
  { skip: variant.skip },
  () => {
    const exact = loraStep(variant.name!, 'exact');
    const bf16 = loraStep(variant.name!, 'bf16');
    const lossError = Math.abs(bf16.loss - exact.loss) / Math.abs(exact.loss);
    assert.ok(
      lossError <= LOSS_TOLERANCE,
      `loss ${bf16.loss} vs exact ${exact.loss} (${lossError})`,
    );
    let largest = 0;
    for (const [name, g] of exact.grads) {
      const error = relativeError(bf16.grads.get(name)!, g);
      largest = Math.max(largest, error);
      assert.ok(error <= GRADIENT_TOLERANCE, `${name}: relative error ${error}`);
    }
    assert.ok(largest > 0 && lossError > 0, 'the bf16 path gave the exact results: it did not run');
    console.log(
      `# loss error ${lossError.toExponential(2)}, largest gradient error ${largest.toExponential(2)}`,
    );
  },
);
