// The block-tiled attention kernels (src/engine/webgpu/attention-tiled.ts), forced through a
// runner's attention plan: shapes aimed at the tiles (GQA 14/2 and 4/1, key masks, packing,
// windows, odd and tiny D, Tq < Tk < kvCap with NaN past Tk, rows that see no key), forward and
// gradients each compared with the spec's reference, and a check that the tiled kernels (not the
// row fallback) ran; and the registry's cases on the row kernels (the backend's own plan, which
// registry-kernels.test.ts uses, is the tuner's: the .s8 tiles on lavapipe). Few tiled pipelines
// (a cold shader cache compiles each one; the row kernels compile one per head size and mask).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RegistryKernels } from '../../src/engine/kernels/registry.ts';
import { KernelRunner } from '../../src/engine/webgpu/runner.ts';
import {
  attentionPlanName,
  parseAttentionPlan,
  ROW_ATTENTION,
  TILED_SHAPES,
  useAttentionPlan,
  whyAttentionCannotRun,
  type AttentionPlan,
} from '../../src/engine/webgpu/attention-plan.ts';
import {
  fitTiledShape,
  narrowedShapes,
  tiledShapeName,
  tiledWidth,
  tiledWorkgroupBytes,
  type TiledShape,
} from '../../src/engine/webgpu/attention-tiled.ts';
import { chooseAttentionPlan } from '../../src/engine/webgpu/tuner.ts';
import { Tensor, tidyAsync } from '../../src/engine/tensor.ts';
import { Rng } from '../../src/util/rng.ts';
import { reference, registerKernelCases } from '../engine/kernel-cases.ts';
import { kernelsOnRunner } from './runner-kernels.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const setup = await useWebGpuBackend();
const TOLERANCE = { rtol: 1e-4, atol: 1e-5 };

/**
 * Every tiled plan the tuner can pick (TILED_SHAPES: the staged one, and `.s8` where subgroups
 * are exactly 8), every staged shape fitTiledShape narrows the staged one to when workgroup memory
 * is short (narrowedShapes: 4x4x1, 4x2x1, 4x1x1), and an odd block that only a user can force
 * (3 rows, 1 column, 2 groups). Each plan compiles 3 pipelines per width.
 */
const tiledPlan = (shape: TiledShape): AttentionPlan => ({
  forward: { kind: 'tiled', shape },
  backward: { kind: 'tiled', shape },
});
const PLANS: AttentionPlan[] = [
  ...TILED_SHAPES.map(tiledPlan),
  ...narrowedShapes(TILED_SHAPES[0]!).map(tiledPlan),
  parseAttentionPlan('tiled.2x3x1'),
];
const STAGED = PLANS[0]!;

/** Why this adapter cannot run `plan` (a skip reason), or false. */
function cannotRun(plan: AttentionPlan): string | false {
  if (setup.skip) return setup.skip;
  return whyAttentionCannotRun(setup.backend().gpu.context, plan) ?? false;
}

/** Registry kernels on a runner of their own that follows `plan`, recording the kernels dispatched. */
function kernelsWith(plan: AttentionPlan, dispatched: string[] = []): RegistryKernels {
  const runner = new KernelRunner(setup.backend().gpu.device);
  useAttentionPlan(runner, plan);
  const dispatch = runner.dispatch.bind(runner);
  runner.dispatch = (def, ...rest) => {
    dispatched.push(def.key);
    dispatch(def, ...rest);
  };
  return kernelsOnRunner(runner);
}

// The registry's cases on the row kernels (software adapters with subgroups of 8 default to the
// tiles, which registry-kernels.test.ts then runs).
let rowKernels: RegistryKernels | undefined;
registerKernelCases(
  'webgpu attention row',
  () => (rowKernels ??= kernelsWith(ROW_ATTENTION)),
  { exact: TOLERANCE, float: TOLERANCE, angles: TOLERANCE },
  { skip: cannotRun(ROW_ATTENTION), only: ['attentionForward', 'attentionBackward'] },
);

interface Shape {
  label: string;
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  KVH: number;
  D: number;
  /** Cache rows (>= Tk; the rows past Tk hold NaN, which must never be read). */
  kvCap?: number;
  window?: number;
  /** Keys masked out: row b masks its first `mask[b]` keys (all of a row's first queries then see none). */
  mask?: number[];
  /** Packing: segment lengths, the same in every row. */
  segments?: number[];
  /** A second width of pipelines: the staged plan only (the GPU one, where D 128 is common). */
  stagedOnly?: boolean;
}

const SHAPES: Shape[] = [
  { label: 'causal, GQA 14/2, D 64', B: 2, Tq: 64, Tk: 64, H: 14, KVH: 2, D: 64 },
  { label: 'GQA 4/1, D 37, window 9', B: 2, Tq: 45, Tk: 45, H: 4, KVH: 1, D: 37, window: 9 },
  {
    label: 'key mask with rows that see no key, packing',
    B: 2,
    Tq: 50,
    Tk: 50,
    H: 4,
    KVH: 2,
    D: 64,
    mask: [5, 0],
    segments: [20, 17, 13],
  },
  {
    label: 'D 6, key mask, packing, window 3',
    B: 2,
    Tq: 7,
    Tk: 7,
    H: 4,
    KVH: 2,
    D: 6,
    window: 3,
    mask: [2, 0],
    segments: [3, 4],
  },
  {
    label: 'Tq < Tk < kvCap (a cache, NaN past Tk), D 37',
    B: 2,
    Tq: 70,
    Tk: 100,
    kvCap: 104,
    H: 14,
    KVH: 2,
    D: 37,
  },
  {
    label: 'D 128, packing',
    B: 1,
    Tq: 40,
    Tk: 40,
    H: 4,
    KVH: 1,
    D: 128,
    segments: [25, 15],
    stagedOnly: true,
  },
];

const rng = new Rng(19);
const normals = (n: number) => Float32Array.from({ length: n }, () => rng.normal(0, 1));

/** Key mask and segment ids, [B, kvCap] each (or null). */
function maskInputs(s: Shape, kvCap: number) {
  const keyMask =
    s.mask &&
    Int32Array.from({ length: s.B * kvCap }, (_, i) =>
      i % kvCap < s.mask![Math.floor(i / kvCap)]! ? 0 : 1,
    );
  const segIds =
    s.segments &&
    Int32Array.from({ length: s.B * kvCap }, (_, i) => {
      let t = i % kvCap;
      let segment = 0;
      while (segment < s.segments!.length - 1 && t >= s.segments![segment]!)
        t -= s.segments![segment++]!;
      return segment + 1;
    });
  return { keyMask: keyMask ?? null, segIds: segIds ?? null };
}

/** [B, kvCap, KVH, D] normals, NaN in the rows past Tk. */
function cacheRows(B: number, Tk: number, kvCap: number, KVH: number, D: number) {
  const rows = normals(B * kvCap * KVH * D);
  for (let b = 0; b < B; b++) rows.fill(NaN, (b * kvCap + Tk) * KVH * D, (b + 1) * kvCap * KVH * D);
  return rows;
}

/** Uploads the host arrays, runs `run` on their operands, reads back `outputs`. */
async function onDevice(
  buffers: Record<string, Float32Array | Int32Array | null>,
  outputs: string[],
  run: (operands: Record<string, ReturnType<Tensor['operand']> | null>) => void,
): Promise<Record<string, Float32Array>> {
  return tidyAsync(async () => {
    const tensors = Object.fromEntries(
      Object.entries(buffers).map(([name, data]) => [
        name,
        data && Tensor.from(data, [data.length], data instanceof Int32Array ? 'i32' : 'f32'),
      ]),
    );
    run(Object.fromEntries(Object.entries(tensors).map(([n, t]) => [n, t && t.operand()])));
    const result: Record<string, Float32Array> = {};
    for (const name of outputs) result[name] = await tensors[name]!.toFloat32();
    return result;
  });
}

function assertClose(got: Float32Array, want: Float32Array, what: string) {
  const { rtol, atol } = TOLERANCE;
  for (let i = 0; i < want.length; i++) {
    const ok =
      got[i] === want[i] || Math.abs(got[i]! - want[i]!) <= atol + rtol * Math.abs(want[i]!);
    if (!ok) assert.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

for (const plan of PLANS) {
  for (const s of SHAPES.filter((s) => !s.stagedOnly || plan === STAGED)) {
    test(
      `tiled attention ${attentionPlanName(plan)}: ${s.label}`,
      { skip: cannotRun(plan) },
      async () => {
        const dispatched: string[] = [];
        const kernels = kernelsWith(plan, dispatched);
        const { B, Tq, Tk, H, KVH, D, kvCap = Tk, window = 0 } = s;
        const masks = maskInputs(s, kvCap);
        const inputs = {
          q: normals(B * Tq * H * D),
          k: cacheRows(B, Tk, kvCap, KVH, D),
          v: cacheRows(B, Tk, kvCap, KVH, D),
        };
        const params = { B, Tq, Tk, kvCap, H, KVH, D, scale: 1 / Math.sqrt(D), window };
        const want = { out: new Float32Array(B * Tq * H * D), lse: new Float32Array(B * H * Tq) };
        reference('attentionForward', { ...inputs, ...want, ...masks }, params);
        const got = await onDevice(
          {
            ...inputs,
            out: new Float32Array(want.out.length).fill(NaN),
            lse: new Float32Array(want.lse.length),
            ...masks,
          },
          ['out', 'lse'],
          (o) => kernels.attentionForward(o as never, params),
        );
        assertClose(got.out!, want.out, 'out');
        assertClose(got.lse!, want.lse, 'lse');
        if (s.mask)
          assert.equal(got.lse![0], Infinity, 'a query that sees no key stores +inf as its lse');
        if (Tq === Tk) {
          const dout = normals(want.out.length);
          const grads = {
            dq: new Float32Array(inputs.q.length),
            dk: new Float32Array(inputs.k.length),
            dv: new Float32Array(inputs.v.length),
          };
          const backward = { B, T: Tq, H, KVH, D, scale: params.scale, window };
          reference(
            'attentionBackward',
            { ...inputs, ...want, dout, ...grads, ...masks },
            backward,
          );
          const nan = (n: number) => new Float32Array(n).fill(NaN);
          const gotGrads = await onDevice(
            {
              ...inputs,
              ...want,
              dout,
              dq: nan(grads.dq.length),
              dk: nan(grads.dk.length),
              dv: nan(grads.dv.length),
              ...masks,
            },
            ['dq', 'dk', 'dv'],
            (o) => kernels.attentionBackward(o as never, backward),
          );
          for (const name of ['dq', 'dk', 'dv'] as const)
            assertClose(gotGrads[name]!, grads[name], name);
        }
        const kinds = [
          ...(plan.forward.kind === 'tiled' ? ['forward'] : []),
          ...(plan.backward.kind === 'tiled' && Tq === Tk ? ['dq', 'dkdv'] : []),
        ];
        for (const kind of kinds) {
          assert.ok(
            dispatched.some((key) => key.startsWith(`attention-tiled-${kind}:`)),
            `the tiled ${kind} kernel ran (dispatched: ${dispatched.join(', ')})`,
          );
        }
      },
    );
  }
}

test('attention plans parse by name and refuse what they cannot be', () => {
  assert.equal(attentionPlanName(parseAttentionPlan('tiled')), 'tiled.4x4x2');
  assert.equal(attentionPlanName(parseAttentionPlan('tiled.2x4x1.s8')), 'tiled.2x4x1.s8');
  assert.equal(attentionPlanName(parseAttentionPlan('row')), 'row');
  const mixed = 'forward=tiled.4x8x2.s8,backward=row';
  assert.equal(attentionPlanName(parseAttentionPlan(mixed)), mixed);
  assert.equal(parseAttentionPlan(mixed).backward.kind, 'row');
  assert.throws(() => parseAttentionPlan('tiled.4x0x2'), /at least 1/);
  // Tiles narrow their register blocks to fit workgroup memory, or give way to the row kernels.
  const [staged, s8] = TILED_SHAPES as [TiledShape, TiledShape];
  const fitted = fitTiledShape('dkdv', 128, staged, 16384)!;
  assert.ok(
    fitted.rowsPerThread * fitted.colsPerThread < staged.rowsPerThread * staged.colsPerThread,
  );
  assert.ok(tiledWorkgroupBytes('dkdv', 128, fitted) <= 16384);
  assert.deepEqual(
    narrowedShapes(staged).map((shape) => tiledShapeName(shape)),
    ['4x4x1', '4x2x1', '4x1x1'],
  );
  assert.deepEqual(fitTiledShape('forward', 64, s8, 16384), s8);
  assert.equal(fitTiledShape('forward', 4096, staged, 16384), null);
  // One pipeline width serves every head size up to 64, the next ones every 32 more.
  assert.deepEqual([6, 37, 64, 65, 128].map(tiledWidth), [16, 16, 16, 24, 32]);
  assert.throws(() => parseAttentionPlan('flash'), /not an attention plan/);
});

const forcedByEnvironment = process.env.LORAFORGE_WEBGPU_ATTENTION
  ? 'LORAFORGE_WEBGPU_ATTENTION is set'
  : false;

test(
  'the tuner times each pass, stores its choice, and refuses plans the adapter cannot run',
  { skip: setup.skip || forcedByEnvironment },
  async () => {
    const { context, device } = setup.backend().gpu;
    const entries = new Map<string, string>();
    const store = {
      get: (key: string) => entries.get(key),
      set: (key: string, value: string) => void entries.set(key, value),
    };
    // A small problem (the mechanics, not the choice), whose pipelines the tests above compiled.
    const problem = { B: 1, T: 64, H: 2, KVH: 1, D: 6 };
    const plan = await chooseAttentionPlan(
      context,
      new KernelRunner(device),
      { attention: 'tune', store },
      problem,
    );
    assert.equal(whyAttentionCannotRun(context, plan), null);
    assert.deepEqual([...entries.values()], [attentionPlanName(plan)]);
    const noS8 = { ...context, fixedSubgroupSize: null };
    await assert.rejects(
      chooseAttentionPlan(noS8, new KernelRunner(device), { attention: 'tiled.s8' }),
      /exactly 8/,
    );
    const forced = await chooseAttentionPlan(noS8, new KernelRunner(device), {
      attention: 'tiled',
    });
    assert.equal(attentionPlanName(forced), 'tiled.4x4x2');
  },
);
