/**
 * Checks of a model against a golden package (the layout of shared/golden/README.md: forward
 * logits, KV-cache generation, LoRA loss and gradients, merge, the 10-step Trainer run), on the
 * active backend. Shared by the per-family golden tests on the CPU and on WebGPU.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backward, noGrad } from '../../src/engine/tape.ts';
import { tidy, type Tensor } from '../../src/engine/tensor.ts';
import type { DecoderModel, ModelInput } from '../../src/models/decoder.ts';
import { KVCache } from '../../src/models/kv-cache.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { mergeToFolder } from '../../src/peft/merge.ts';
import { maxAbsDiff, readGolden, relativeError } from '../helpers.ts';
import { finalAdapterDiffs, goldenSteps, relDiff, trainGolden } from '../train/golden-data.ts';

/** The qwen2-tiny tolerances (shared/golden/README.md: a few times the observed agreement). */
export const TOLERANCE = { logits: 1e-4, gradRelative: 1e-4, loss: 1e-4, adapter: 1e-4 };

function meta(pkg: string): { lora: { loss_randB: number } } {
  return JSON.parse(readFileSync(join(pkg, 'meta.json'), 'utf8'));
}

function batchInput(file: string): { input: ModelInput; labels: Int32Array | null } {
  const g = readGolden(file);
  const ids = g.i32('input_ids');
  const [batch, seq] = ids.shape as [number, number];
  return {
    input: { batch, seq, inputIds: ids.data, attentionMask: g.i32('attention_mask').data },
    labels: g.names().includes('labels') ? g.i32('labels').data : null,
  };
}

async function logitsOf(model: DecoderModel, input: ModelInput): Promise<Float32Array> {
  const logits = noGrad(() => tidy(() => model.logits(model.forwardHidden(input))));
  const values = await logits.toFloat32();
  logits.dispose();
  return values;
}

/**
 * Largest difference from transformers' logits on the padded forward batch, at real tokens: a
 * padded query whose sliding window holds only padding sees no key (loraforge outputs 0 there,
 * transformers a uniform average), and nothing reads those positions.
 */
export async function forwardLogitsDiff(model: DecoderModel, pkg: string): Promise<number> {
  const { input } = batchInput(join(pkg, 'forward.safetensors'));
  const expected = readGolden(join(pkg, 'forward.safetensors')).f32('logits').data;
  return realTokenDiff(await logitsOf(model, input), expected, input);
}

/** maxAbsDiff of two [rows, vocab] logit arrays over the rows that are real tokens of `input`. */
function realTokenDiff(mine: Float32Array, expected: Float32Array, input: ModelInput): number {
  const vocab = mine.length / input.attentionMask!.length;
  let worst = 0;
  input.attentionMask!.forEach((real, row) => {
    if (!real) return;
    const [from, to] = [row * vocab, (row + 1) * vocab];
    worst = Math.max(worst, maxAbsDiff(mine.subarray(from, to), expected.subarray(from, to)));
  });
  return worst;
}

/** Logits of the last position of `tokens` from a forward pass without a cache. */
async function lastLogits(model: DecoderModel, tokens: number[]): Promise<Float32Array> {
  const logits = noGrad(() =>
    tidy(() => {
      const input = { batch: 1, seq: tokens.length, inputIds: Int32Array.from(tokens) };
      return model.logits(model.forwardHidden(input), [tokens.length - 1]);
    }),
  );
  const values = await logits.toFloat32();
  logits.dispose();
  return values;
}

/**
 * Greedy decoding of each golden prompt with the KV cache (prefill, then one token a step);
 * asserts the ids and that every step equals a full forward pass of the sequence so far, and
 * returns the largest difference from transformers' step logits.
 */
export async function greedyDecodeDiff(model: DecoderModel, pkg: string): Promise<number> {
  const golden = JSON.parse(readFileSync(join(pkg, 'generate.json'), 'utf8')) as {
    prompts: { prompt_ids: number[]; output_ids_use_cache_true: number[] }[];
  };
  const stepLogits = readGolden(join(pkg, 'generate_logits.safetensors'));
  let worst = 0;
  for (const [
    p,
    { prompt_ids: prompt, output_ids_use_cache_true: expectedIds },
  ] of golden.prompts.entries()) {
    const expected = stepLogits.f32(`prompt${p}.step_logits`).data;
    const cache = new KVCache(model.config, 1, expectedIds.length);
    const vocab = model.config.vocabSize;
    const tokens = [...prompt];
    const mine = new Float32Array(expected.length);
    let next: Tensor = noGrad(() =>
      tidy(() => {
        const input = { batch: 1, seq: prompt.length, inputIds: Int32Array.from(prompt) };
        return model.logits(model.forwardHidden(input, cache), [prompt.length - 1]);
      }),
    );
    for (let step = 0; tokens.length < expectedIds.length; step++) {
      const logits = await next.toFloat32();
      next.dispose();
      mine.set(logits, step * vocab);
      // The cached step equals a full forward pass over the sequence so far (windows included).
      const full = await lastLogits(model, tokens);
      const drift = maxAbsDiff(logits, full);
      assert.ok(drift < 1e-5, `prompt ${p} step ${step}: cache vs full forward ${drift}`);
      const token = logits.indexOf(Math.max(...logits));
      tokens.push(token);
      if (tokens.length < expectedIds.length) {
        next = noGrad(() => tidy(() => model.logits(model.forwardDecode([token], [cache]))));
      }
    }
    cache.dispose();
    assert.deepEqual(tokens, expectedIds, `prompt ${p}: generated ids`);
    worst = Math.max(worst, maxAbsDiff(mine, expected));
  }
  return worst;
}

/** LoRA loss error and worst per-tensor gradient relative error for adapter_randB. */
export async function loraGradientErrors(
  model: DecoderModel,
  pkg: string,
): Promise<{ lossError: number; worstGrad: number }> {
  const adapter = loadAdapter(join(pkg, 'lora', 'adapter_randB'), model);
  adapter.attach(model);
  adapter.setTrainable(true);
  const { input, labels } = batchInput(join(pkg, 'lora', 'batch.safetensors'));
  const loss = tidy(() => {
    const { loss } = model.loss(input, labels!);
    backward(loss);
    return loss;
  });
  const value = (await loss.toFloat32())[0]!;
  loss.dispose();
  const grads = readGolden(join(pkg, 'lora', 'grads_randB.safetensors'));
  let worstGrad = 0;
  for (const [name, param] of adapter.namedParameters()) {
    const err = relativeError(await param.grad!.toFloat32(), grads.f32(name).data);
    worstGrad = Math.max(worstGrad, err);
  }
  adapter.dispose();
  return { lossError: Math.abs(value - meta(pkg).lora.loss_randB), worstGrad };
}

/**
 * PEFT's merged weights: lora/merged/model.safetensors, or where a package leaves that file out to
 * stay small, W + scale·B·A computed in float64 from the base and adapter files (PEFT's merge is
 * exactly that in float32: meta.json → lora.merged_weight_vs_W_plus_scaling_BA_max_abs_diff).
 */
function mergedReference(pkg: string): Map<string, Float32Array> {
  const mergedFile = join(pkg, 'lora', 'merged', 'model.safetensors');
  if (existsSync(mergedFile)) {
    const ref = readGolden(mergedFile);
    return new Map(ref.names().map((name) => [name, ref.f32(name).data]));
  }
  const base = readGolden(join(pkg, 'model.safetensors'));
  const adapterDir = join(pkg, 'lora', 'adapter_randB');
  const adapter = readGolden(join(adapterDir, 'adapter_model.safetensors'));
  const config = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'));
  const scale = config.lora_alpha / config.r;
  const out = new Map<string, Float32Array>();
  for (const name of base.names()) {
    const w = base.f32(name);
    const key = `base_model.model.${name.replace(/\.weight$/, '')}.lora_A.weight`;
    if (!adapter.names().includes(key)) {
      out.set(name, w.data);
      continue;
    }
    const a = adapter.f32(key);
    const b = adapter.f32(key.replace('lora_A', 'lora_B')).data;
    const cols = w.shape[1]!;
    const r = a.shape[0]!;
    out.set(
      name,
      w.data.map((value, i) => {
        const [o, c] = [Math.floor(i / cols), i % cols];
        let delta = 0;
        for (let k = 0; k < r; k++) delta += b[o * r + k]! * a.data[k * cols + c]!;
        return value + scale * delta;
      }),
    );
  }
  return out;
}

/**
 * Merges adapter_randB into a copy of the package's model (CPU: the merge reads tensors
 * synchronously) and compares weights and logits with PEFT's merge_and_unload.
 */
export async function mergeErrors(
  model: DecoderModel,
  pkg: string,
): Promise<{ weights: number; unmergedLogits: number; mergedLogits: number }> {
  const adapter = loadAdapter(join(pkg, 'lora', 'adapter_randB'), model);
  const out = join(mkdtempSync(join(tmpdir(), 'lf-merge-')), 'merged');
  await mergeToFolder(pkg, adapter, out);
  const mine = readGolden(join(out, 'model.safetensors'));
  const ref = mergedReference(pkg);
  assert.deepEqual(mine.names().sort(), [...ref.keys()].sort());
  let weights = 0;
  for (const [name, expected] of ref) {
    weights = Math.max(weights, maxAbsDiff(mine.f32(name).data, expected));
  }
  const fwd = readGolden(join(pkg, 'lora', 'merged_logits.safetensors'));
  const { input } = batchInput(join(pkg, 'lora', 'merged_logits.safetensors'));
  adapter.attach(model);
  const unmergedLogits = realTokenDiff(
    await logitsOf(model, input),
    fwd.f32('logits_unmerged').data,
    input,
  );
  adapter.dispose();
  const merged = loadModel(out);
  const mergedLogits = realTokenDiff(await logitsOf(merged, input), fwd.f32('logits').data, input);
  merged.dispose();
  rmSync(join(out, '..'), { recursive: true, force: true });
  return { weights, unmergedLogits, mergedLogits };
}

/** Runs the 10-step Trainer run and asserts its log and final adapter against the package's. */
export async function checkTrainerRun(model: DecoderModel, pkg: string): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'lf-train-'));
  const logs = await trainGolden(model, out, { pkg });
  const golden = goldenSteps(pkg);
  assert.equal(logs.length, golden.length);
  golden.forEach((g, i) => {
    const { loss, grad_norm: gradNorm, lr } = logs[i]!;
    assert.ok(relDiff(loss!, g.loss) < TOLERANCE.loss, `step ${i + 1} loss ${loss} vs ${g.loss}`);
    assert.ok(
      relDiff(gradNorm!, g.grad_norm) < TOLERANCE.loss,
      `step ${i + 1} grad norm ${gradNorm} vs ${g.grad_norm}`,
    );
    assert.ok(Math.abs(lr! - g.lr_after_scheduler_step) < 1e-9, `step ${i + 1} lr ${lr}`);
  });
  const diffs = finalAdapterDiffs(out, pkg);
  rmSync(out, { recursive: true, force: true });
  for (const { name, maxAbs } of diffs) {
    assert.ok(maxAbs < TOLERANCE.adapter, `${name}: max abs ${maxAbs}`);
  }
  const worstLoss = Math.max(...golden.map((g, i) => relDiff(logs[i]!.loss!, g.loss)));
  return `worst step-loss relative error ${worstLoss.toExponential(2)}, final adapter max abs diff ${Math.max(...diffs.map((d) => d.maxAbs)).toExponential(2)}`;
}

/** Every golden check but the merge, asserted at the qwen2-tiny tolerances; logs the figures. */
export async function assertGoldenPackage(
  model: DecoderModel,
  pkg: string,
  check: 'forward' | 'generate' | 'lora' | 'train',
): Promise<void> {
  if (check === 'forward') {
    const diff = await forwardLogitsDiff(model, pkg);
    console.log(`# logits max abs diff ${diff.toExponential(2)}`);
    assert.ok(diff < TOLERANCE.logits, `logits max abs diff ${diff}`);
  } else if (check === 'generate') {
    const diff = await greedyDecodeDiff(model, pkg);
    console.log(`# step logits max abs diff ${diff.toExponential(2)}`);
    assert.ok(diff < TOLERANCE.logits, `step logits max abs diff ${diff}`);
  } else if (check === 'lora') {
    const { lossError, worstGrad } = await loraGradientErrors(model, pkg);
    console.log(
      `# loss error ${lossError.toExponential(2)}, worst grad ${worstGrad.toExponential(2)}`,
    );
    assert.ok(lossError < TOLERANCE.loss, `loss error ${lossError}`);
    assert.ok(worstGrad < TOLERANCE.gradRelative, `worst gradient relative error ${worstGrad}`);
  } else {
    console.log(`# ${await checkTrainerRun(model, pkg)}`);
  }
}
