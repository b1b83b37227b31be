import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, type NamedParameter } from '../../src/train/optimizer.ts';
import { SafetensorsFile, bytesToF32 } from '../../src/io/safetensors.ts';
import { Rng } from '../../src/util/rng.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { GOLDEN as GOLDEN_ROOT } from '../helpers.ts';

const GOLDEN = `${GOLDEN_ROOT}/qwen2-tiny/train`;

function readAll(path: string): Map<string, Float32Array> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map(file.names().map((n) => [n, bytesToF32(file.info(n).dtype, file.read(n), n)]));
  } finally {
    file.close();
  }
}

function randomParams(rng: Rng, sizes: number[]): NamedParameter[] {
  return sizes.map((n, i) => ({
    name: `p${i}`,
    data: Float32Array.from({ length: n }, () => rng.normal(0, 0.1)),
    grad: new Float32Array(n),
  }));
}

function fillGrads(rng: Rng, params: NamedParameter[], scale: number): void {
  for (const p of params) for (let i = 0; i < p.grad.length; i++) p.grad[i] = rng.normal(0, scale);
}

/** torch.optim.AdamW's formula in float64, the yardstick for the f32 implementation. */
function referenceStep(
  p: Float64Array,
  g: Float32Array,
  m: Float64Array,
  v: Float64Array,
  t: number,
  lr: number,
  wd: number,
): void {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - lr * wd;
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    p[i] -= (lr / (1 - b1 ** t)) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** t) + eps));
  }
}

test('AdamW matches the float64 PyTorch formula to 1e-5 over 10 steps with a warmup-cosine lr', () => {
  const rng = new Rng(1);
  const params = randomParams(rng, [64, 512, 7]);
  const ref = params.map((p) => ({
    p: Float64Array.from(p.data),
    m: new Float64Array(p.data.length),
    v: new Float64Array(p.data.length),
  }));
  const opt = new AdamW(params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  const lrs = [0, 2.5e-3, 5e-3, 4.8e-3, 4.3e-3, 3.5e-3, 2.5e-3, 1.5e-3, 7e-4, 2e-4];
  lrs.forEach((lr, s) => {
    fillGrads(rng, params, s % 3 === 0 ? 1e-4 : 0.3); // small and large gradients
    opt.step(lr);
    params.forEach((p, i) =>
      referenceStep(ref[i]!.p, p.grad, ref[i]!.m, ref[i]!.v, s + 1, lr, 0.01),
    );
  });
  assert.equal(opt.stepCount, 10);
  params.forEach((p, i) => {
    for (let j = 0; j < p.data.length; j++) {
      const want = ref[i]!.p[j]!;
      assert.ok(
        Math.abs(p.data[j]! - want) <= 1e-5 * Math.abs(want) + 1e-9,
        `${p.name}[${j}]: ${p.data[j]} vs ${want}`,
      );
    }
  });
});

test('golden run: lora_A is unchanged by the lr=0 step 1 and only decays in step 2 (zero gradient)', () => {
  const init = readAll(`${GOLDEN}/adapter_init/adapter_model.safetensors`);
  const perStep = readAll(`${GOLDEN}/params_per_step.safetensors`);
  const names = [...init.keys()].filter((n) => n.includes('lora_A'));
  assert.equal(names.length, 14);
  const params = names.map((name) => ({
    name,
    data: init.get(name)!.slice(),
    grad: new Float32Array(init.get(name)!.length),
  }));
  const opt = new AdamW(params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  for (const [step, lr] of [
    [1, 0],
    [2, 0.0025],
  ] as const) {
    opt.step(lr);
    for (const p of params) {
      const all = perStep.get(p.name)!;
      const expected = all.subarray((step - 1) * p.data.length, step * p.data.length);
      assert.deepEqual(p.data, expected, `${p.name} after step ${step}`);
    }
  }
});

test('stateDict / loadStateDict resume bit-exactly', () => {
  const make = () => randomParams(new Rng(7), [33, 100]);
  const gradsFor = (step: number, params: NamedParameter[]) =>
    fillGrads(new Rng(100 + step), params, 0.05);
  const straight = make();
  const a = new AdamW(straight, { weightDecay: 0.1 });
  for (let s = 0; s < 8; s++) {
    gradsFor(s, straight);
    a.step(1e-3 * (s + 1));
  }

  const first = make();
  const b = new AdamW(first, { weightDecay: 0.1 });
  for (let s = 0; s < 4; s++) {
    gradsFor(s, first);
    b.step(1e-3 * (s + 1));
  }
  const saved = b.stateDict();
  assert.equal(saved.meta.step, 4);
  assert.deepEqual(Object.keys(saved.tensors).sort(), [
    'p0.exp_avg',
    'p0.exp_avg_sq',
    'p1.exp_avg',
    'p1.exp_avg_sq',
  ]);

  const resumed = first.map((p) => ({
    ...p,
    data: p.data.slice(),
    grad: new Float32Array(p.grad.length),
  }));
  const c = new AdamW(resumed, { weightDecay: 0.1 });
  c.loadStateDict(saved);
  for (let s = 4; s < 8; s++) {
    gradsFor(s, resumed);
    c.step(1e-3 * (s + 1));
  }
  resumed.forEach((p, i) => assert.deepEqual(p.data, straight[i]!.data));
  // Hyperparameters come from the state, as with torch's load_state_dict.
  const other = new AdamW(make(), { weightDecay: 0.5, betas: [0.8, 0.99] });
  other.loadStateDict(saved);
  assert.deepEqual([other.weightDecay, other.betas], [0.1, [0.9, 0.999]]);
  assert.deepEqual(c.stateDict().tensors, a.stateDict().tensors);
});

test('loadStateDict rejects a state for other parameters and leaves the optimizer untouched', () => {
  const params = randomParams(new Rng(3), [4, 5]);
  const opt = new AdamW(params);
  const other = new AdamW(randomParams(new Rng(3), [4, 6]));
  assert.throws(() => opt.loadStateDict(other.stateDict()), LoraforgeError);
  const renamed = new AdamW([
    { name: 'q', data: new Float32Array(4), grad: new Float32Array(4) },
    params[1]!,
  ]);
  assert.throws(() => opt.loadStateDict(renamed.stateDict()), /missing: p0; unexpected: q/);
  assert.equal(opt.stepCount, 0);
});

test('constructor validates parameters and hyperparameters', () => {
  const p = { name: 'w', data: new Float32Array(3), grad: new Float32Array(2) };
  assert.throws(() => new AdamW([p]), LoraforgeError);
  const ok = { name: 'w', data: new Float32Array(3), grad: new Float32Array(3) };
  assert.throws(() => new AdamW([ok, ok]), /listed twice/);
  assert.throws(() => new AdamW([ok], { betas: [0.9, 1] }), LoraforgeError);
  assert.throws(() => new AdamW([ok]).step(NaN), LoraforgeError);
});

test('per-parameter weight decay override (no decay for biases / norms)', () => {
  const decayed = { name: 'w', data: Float32Array.of(1), grad: Float32Array.of(0) };
  const exempt = { name: 'b', data: Float32Array.of(1), grad: Float32Array.of(0), weightDecay: 0 };
  new AdamW([decayed, exempt], { weightDecay: 0.1 }).step(0.5);
  assert.equal(decayed.data[0], Math.fround(0.95));
  assert.equal(exempt.data[0], 1);
});

test('zeroGrad clears every gradient', () => {
  const params = randomParams(new Rng(9), [4]);
  params[0]!.grad.fill(3);
  new AdamW(params).zeroGrad();
  assert.deepEqual(params[0]!.grad, new Float32Array(4));
});
