/**
 * Start-up GEMM tuner: times a few tile shapes per problem class (gemm.ts's `shapeClass`) on a
 * representative problem and keeps the fastest, as the tuned GPU engines do. Results are cached by
 * adapter (vendor, architecture, device, description, features) and candidate set, in a store the
 * caller provides: a file in the user cache directory under Node (tune-store-file.ts), memory in
 * the browser.
 *
 * `LORAFORGE_WEBGPU_GEMM` (or the `gemm` option) forces a plan instead: `legacy` (the first kernel,
 * the benchmark baseline), a tile name for every class (`8x16.8x8.k16`), or per class
 * (`large=8x16.8x8.k16,rows=32x4.4x4.k16,cols=4x32.4x4.k16`); `tune` retunes ignoring the cache.
 *
 * The attention kernels are chosen the same way (`chooseAttentionPlan`): the row kernels or a
 * block-tiled shape (attention-plan.ts), timed on a training-shaped forward + backward, cached
 * beside the GEMM plan; `LORAFORGE_WEBGPU_ATTENTION` (or the `attention` option) forces one.
 */
import { LoraforgeError } from '../../util/errors.ts';
import { f32ToBf16Scalar } from '../half.ts';
import { isHardwareAdapter, type WebGpuContext } from './device.ts';
import {
  DEFAULT_GEMM_PLAN,
  DEFAULT_TILES,
  LEGACY_GEMM_PLAN,
  gemm,
  singleTilePlan,
  type GemmPlan,
  type GemmShapeClass,
} from './gemm.ts';
import {
  needsF16,
  needsSubgroups,
  parseTileName,
  subgroupSizeNeeded,
  tileName,
  tileThreads,
  type GemmTile,
} from './gemm-tiled.ts';
import { matrixWorkgroupBytes, type MatrixTile } from './gemm-matrix.ts';
import type { KernelRunner } from './runner.ts';
import { attention } from './attention.ts';
import {
  attentionPlanName,
  parseAttentionPlan,
  useAttentionPlan,
  whyAttentionCannotRun,
  type AttentionPlan,
} from './attention-plan.ts';

export interface TuneStore {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

export function memoryTuneStore(): TuneStore {
  const entries = new Map<string, string>();
  return { get: (key) => entries.get(key), set: (key, value) => void entries.set(key, value) };
}

const CLASSES: GemmShapeClass[] = ['large', 'rows', 'cols'];

/** Candidate tiles per class (names as in tileName). Bump CANDIDATES_VERSION when editing. */
const CANDIDATES: Record<GemmShapeClass, string[]> = {
  large: [
    '16x16.4x4.k16',
    '16x16.8x4.k16',
    '8x16.8x8.k16',
    '16x8.8x8.k16',
    '8x16.8x8.k16.sg',
    '8x16.8x8.k16.f16',
    'd16.8x4',
    'd16.16x4.s8',
  ],
  rows: [
    '32x4.4x4.k16',
    '64x2.4x4.k16',
    '16x2.8x8.k16',
    '32x4.4x4.k16.sg',
    '32x4.4x4.k16.f16',
    'd16.4x4',
    'd8.4x4.s8',
  ],
  cols: ['4x32.4x4.k16', '4x16.8x4.k16', '4x16.8x4.k16.sg'],
};
const CANDIDATES_VERSION = 6;

/**
 * Subgroup-matrix tiles per class, as (subgroups along m x n, fragments per subgroup along m x n),
 * instantiated for each shape the adapter offers (matrixCandidates); those whose workgroup memory
 * exceeds the adapter's are dropped.
 */
const MATRIX_LAYOUTS: Record<GemmShapeClass, [number, number, number, number][]> = {
  large: [
    [2, 2, 2, 2],
    [2, 2, 4, 2],
    [2, 4, 2, 2],
  ],
  rows: [[1, 4, 1, 2]],
  cols: [[4, 1, 2, 1]],
};
/** k staged per step of a subgroup-matrix tile (rounded up to the fragment's K). */
const MATRIX_K_STEP = 32;

export function matrixCandidates(
  context: Pick<TileContext, 'subgroupMatrixConfigs' | 'maxSubgroupSize'>,
  cls: GemmShapeClass,
): MatrixTile[] {
  return context.subgroupMatrixConfigs.flatMap((config) =>
    MATRIX_LAYOUTS[cls].map(([sgRows, sgCols, fm, fn]) => ({
      kind: 'matrix' as const,
      ...config,
      sgRows,
      sgCols,
      fm,
      fn,
      bk: Math.ceil(MATRIX_K_STEP / config.K) * config.K,
      lanes: context.maxSubgroupSize,
    })),
  );
}

/**
 * What software adapters (lavapipe, SwiftShader) run without tuning: there a shader compile takes
 * seconds of CPU, so timing every candidate would cost minutes per process. On lavapipe the direct
 * kernels (no workgroup memory: gemm-direct.ts) beat every staged tile on the large and few-row
 * classes, and sharing A through subgroups of 8 (its only size) beats loading it in every lane
 * (2-3x); LORAFORGE_WEBGPU_GEMM=tune retunes.
 */
const SOFTWARE_PLANS = [
  'large=d16.16x4.s8,rows=d8.4x4.s8,cols=4x16.8x4.k16',
  'large=d16.8x4,rows=d16.4x4,cols=4x16.8x4.k16',
];

/** One representative problem per class (k as in a 0.5B model's projections; sized for seconds, not minutes, on a CPU adapter). */
const PROBLEMS: Record<GemmShapeClass, { m: number; n: number; k: number }> = {
  large: { m: 256, n: 512, k: 896 },
  rows: { m: 4, n: 2048, k: 896 },
  cols: { m: 512, n: 8, k: 896 },
};

/**
 * The tiles a device can run: f16 tiles need `shader-f16`, subgroup tiles `subgroups`; f16 tiles
 * round f32 operands to f16 (11-bit mantissa, range ±65504), so they are only candidates when
 * the caller allows that precision.
 */
export function candidateTiles(
  context: TileContext,
  cls: GemmShapeClass,
  allowF16: boolean,
): GemmTile[] {
  return [
    ...CANDIDATES[cls].map((name) => parseTileName(name)!),
    ...matrixCandidates(context, cls),
  ].filter((t) => (!needsF16(t) || allowF16) && whyTileCannotRun(context, t) === null);
}

type TileContext = Pick<
  WebGpuContext,
  | 'shaderF16'
  | 'subgroups'
  | 'fixedSubgroupSize'
  | 'maxSubgroupSize'
  | 'subgroupMatrixConfigs'
  | 'limits'
>;

/** Why a device cannot run a tile, or null when it can. */
export function whyTileCannotRun(context: TileContext, t: GemmTile): string | null {
  if (needsF16(t) && !context.shaderF16) return 'the adapter has no shader-f16';
  if (needsSubgroups(t) && !context.subgroups) return 'the adapter has no subgroups';
  const size = subgroupSizeNeeded(t);
  if (size && context.fixedSubgroupSize !== size)
    return `the tile needs subgroups of exactly ${size} invocations`;
  if (tileThreads(t) > context.limits.maxComputeInvocationsPerWorkgroup)
    return 'too many invocations per workgroup';
  return t.kind === 'matrix' ? whyMatrixTileCannotRun(context, t) : null;
}

function whyMatrixTileCannotRun(context: TileContext, t: MatrixTile): string | null {
  const offered = context.subgroupMatrixConfigs.some(
    (c) => c.component === t.component && c.M === t.M && c.N === t.N && c.K === t.K,
  );
  if (!offered) {
    const shapes = context.subgroupMatrixConfigs.map((c) => `${c.M}x${c.N}x${c.K} ${c.component}`);
    return `the adapter offers no ${t.M}x${t.N}x${t.K} ${t.component} subgroup matrices with f32 results (it offers ${shapes.join(', ') || 'none'})`;
  }
  if (t.lanes !== context.maxSubgroupSize)
    return `the tile is planned for subgroups of ${t.lanes}, the adapter's largest is ${context.maxSubgroupSize}`;
  if (matrixWorkgroupBytes(t) > context.limits.maxComputeWorkgroupStorageSize)
    return 'the tile needs more workgroup memory than the adapter has';
  return null;
}

export interface GemmChoiceOptions {
  /** What LORAFORGE_WEBGPU_GEMM takes; the environment variable wins when set. */
  gemm?: string;
  store?: TuneStore;
  /**
   * Lets the tuner consider tiles that round f32 operands to f16 (f16 staged tiles, f16 subgroup
   * matrices); `LORAFORGE_WEBGPU_F16=1` sets it too.
   */
  allowF16?: boolean;
  /** What LORAFORGE_WEBGPU_ATTENTION takes (a plan name or `tune`); the variable wins when set. */
  attention?: string;
}

function env(name: string): string | undefined {
  return typeof process !== 'undefined' ? process.env?.[name] : undefined;
}

/** A forced plan from a spec string, or null for "tune". */
export function parseGemmSpec(spec: string): GemmPlan | null {
  if (spec === 'tune') return null;
  if (spec === 'legacy') return LEGACY_GEMM_PLAN;
  if (spec === 'default') return DEFAULT_GEMM_PLAN;
  const bad = () =>
    new LoraforgeError(
      `LORAFORGE_WEBGPU_GEMM="${spec}" is not a GEMM plan`,
      'use legacy, tune, default, a tile such as 8x16.8x8.k16, or large=...,rows=...,cols=...',
    );
  const single = parseTileName(spec);
  if (single) return singleTilePlan(single);
  const tiles = { ...DEFAULT_TILES };
  for (const part of spec.split(',')) {
    const [cls, name] = part.split('=') as [string, string | undefined];
    const tile = name ? parseTileName(name) : null;
    if (!tile || !CLASSES.includes(cls as GemmShapeClass)) throw bad();
    tiles[cls as GemmShapeClass] = tile;
  }
  return { legacy: false, tiles };
}

/** The plan for this device: forced, cached, or measured now (and cached). */
export async function chooseGemmPlan(
  context: WebGpuContext,
  runner: KernelRunner,
  options: GemmChoiceOptions = {},
): Promise<GemmPlan> {
  const spec = env('LORAFORGE_WEBGPU_GEMM') ?? options.gemm;
  const forced = spec ? parseGemmSpec(spec) : null;
  if (forced) {
    for (const tile of forced.legacy ? [] : Object.values(forced.tiles)) {
      const why = whyTileCannotRun(context, tile);
      if (why) throw new LoraforgeError(`GEMM tile ${tileName(tile)}: ${why}`);
    }
    return forced;
  }
  if (spec !== 'tune' && !isHardwareAdapter(context.adapterInfo)) {
    return SOFTWARE_PLANS.map((name) => parseGemmSpec(name)!).find(
      (plan) =>
        plan.legacy || Object.values(plan.tiles).every((t) => !whyTileCannotRun(context, t)),
    )!;
  }
  const allowF16 = env('LORAFORGE_WEBGPU_F16') === '1' || (options.allowF16 ?? false);
  const store = options.store ?? memoryTuneStore();
  const key = tuneKey(context, allowF16);
  const cached = spec === 'tune' ? undefined : store.get(key);
  if (cached) {
    try {
      const plan = parseGemmSpec(cached);
      if (plan) return plan;
    } catch {
      // A cache written by other code: retune below.
    }
  }
  const tiles = {} as Record<GemmShapeClass, GemmTile>;
  for (const cls of CLASSES) {
    tiles[cls] = await fastestTile(runner, candidateTiles(context, cls, allowF16), cls);
  }
  store.set(key, CLASSES.map((cls) => `${cls}=${tileName(tiles[cls])}`).join(','));
  return { legacy: false, tiles };
}

function tuneKey(context: WebGpuContext, allowF16: boolean): string {
  const { vendor, architecture, device, description } = context.adapterInfo;
  return JSON.stringify({
    v: CANDIDATES_VERSION,
    vendor,
    architecture,
    device,
    description,
    shaderF16: context.shaderF16,
    subgroups: context.subgroups,
    maxSubgroupSize: context.maxSubgroupSize,
    subgroupMatrix: context.subgroupMatrixConfigs,
    allowF16,
  });
}

const USAGE = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;

/** Seconds `work` takes on the GPU: one untimed run compiles and warms it, then the best of two. */
async function bestOfTwo(runner: KernelRunner, work: () => void): Promise<number> {
  const run = async () => {
    const start = performance.now();
    work();
    runner.flush();
    await runner.device.queue.onSubmittedWorkDone();
    return (performance.now() - start) / 1000;
  };
  await run();
  return Math.min(await run(), await run());
}

/** A deterministic spread of values in [-0.5, 0.5) (the same problem on every adapter). */
function tuningValues(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  });
}

/** The tuning problem of a class: A f32, B the models' bf16 weights used as x W^T, C f32. */
export interface TuningProblem {
  product(plan: GemmPlan): void;
  /** C of the last product. */
  result(): Promise<Float32Array>;
  destroy(): void;
}

export function tuningProblem(runner: KernelRunner, cls: GemmShapeClass): TuningProblem {
  const { m, n, k } = PROBLEMS[cls];
  const device = runner.device;
  const usage = USAGE() | GPUBufferUsage.COPY_SRC;
  const a = device.createBuffer({ size: m * k * 4, usage });
  const b = device.createBuffer({ size: n * k * 2, usage });
  const c = device.createBuffer({ size: m * n * 4, usage });
  runner.write(a, tuningValues(m * k, 1));
  runner.write(b, Uint16Array.from(tuningValues(n * k, 2), f32ToBf16Scalar));
  return {
    product: (plan) => gemm(runner, { a, b, c, m, n, k, transB: true, bDtype: 'bf16' }, plan),
    result: async () => new Float32Array(await runner.read(c, m * n * 4)),
    destroy: () => [a, b, c].forEach((buffer) => buffer.destroy()),
  };
}

/**
 * Why a tile cannot be trusted on this device, or null: its pipeline or dispatch raises a WebGPU
 * error, or its product differs from the default tiles' (a driver that miscompiles a kernel, an
 * experimental feature that misbehaves). A broken kernel must not win the timing by doing
 * nothing. The bound allows f16 operands (relative 2^-11 per product over k terms).
 */
export async function whyTileFailsHere(
  runner: KernelRunner,
  problem: TuningProblem,
  expected: Float32Array,
  tile: GemmTile,
): Promise<string | null> {
  const device = runner.device;
  device.pushErrorScope('internal');
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  problem.product(singleTilePlan(tile));
  runner.flush();
  const errors = await Promise.all([
    device.popErrorScope(),
    device.popErrorScope(),
    device.popErrorScope(),
  ]);
  const error = errors.find((e) => e !== null);
  if (error) return error.message.split('\n')[0]!;
  const actual = await problem.result();
  const scale = expected.reduce((max, x) => Math.max(max, Math.abs(x)), 0);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i]! - expected[i]!) <= 1e-2 * (1 + scale))) {
      return `element ${i} is ${actual[i]}, the default tiles give ${expected[i]}`;
    }
  }
  return null;
}

/** Checks each candidate (whyTileFailsHere), times the sound ones (bestOfTwo) and keeps the fastest. */
async function fastestTile(
  runner: KernelRunner,
  candidates: GemmTile[],
  cls: GemmShapeClass,
): Promise<GemmTile> {
  const problem = tuningProblem(runner, cls);
  let best: GemmTile = DEFAULT_TILES[cls];
  let bestSeconds = Infinity;
  try {
    problem.product(DEFAULT_GEMM_PLAN);
    const expected = await problem.result();
    for (const tile of candidates) {
      const why = await whyTileFailsHere(runner, problem, expected, tile);
      if (why) {
        console.warn(
          `loraforge: GEMM tile ${tileName(tile)} fails on this adapter (${why}); not used`,
        );
        continue;
      }
      const seconds = await bestOfTwo(runner, () => problem.product(singleTilePlan(tile)));
      if (seconds < bestSeconds) {
        bestSeconds = seconds;
        best = tile;
      }
    }
  } finally {
    problem.destroy();
  }
  return best;
}

/** Attention kernels the tuner times for each pass (names as in attentionPlanName). Bump the version when editing. */
const ATTENTION_CANDIDATES = ['row', 'tiled', 'tiled.s8'];
const ATTENTION_CANDIDATES_VERSION = 2;

/**
 * What software adapters run without timing: the subgroup-of-8 tiles where the adapter has them
 * (lavapipe: 1.7-2.9x the row kernels per call, bench:ops), else the row kernels. A cold shader
 * cache compiles the tiles' three pipelines once per head-size width (about 30 s for D <= 64 on
 * lavapipe, then Mesa's disk cache keeps them).
 */
const SOFTWARE_ATTENTION = ['tiled.s8', 'row'];

export interface AttentionProblem {
  B: number;
  T: number;
  H: number;
  KVH: number;
  D: number;
}

/** A training-shaped problem (0.5B heads, sized for seconds on a CPU adapter). */
const ATTENTION_PROBLEM: AttentionProblem = { B: 2, T: 256, H: 14, KVH: 2, D: 64 };

/** The attention plan for this device: forced, cached, or measured now (and cached). */
export async function chooseAttentionPlan(
  context: WebGpuContext,
  runner: KernelRunner,
  options: GemmChoiceOptions = {},
  problem = ATTENTION_PROBLEM,
): Promise<AttentionPlan> {
  const spec = env('LORAFORGE_WEBGPU_ATTENTION') ?? options.attention;
  if (spec && spec !== 'tune') {
    const plan = parseAttentionPlan(spec);
    const why = whyAttentionCannotRun(context, plan);
    if (why) throw new LoraforgeError(`attention plan ${spec}: ${why}`);
    return plan;
  }
  const runnable = (names: string[]) =>
    names.map(parseAttentionPlan).filter((plan) => !whyAttentionCannotRun(context, plan));
  if (spec !== 'tune' && !isHardwareAdapter(context.adapterInfo)) {
    return runnable(SOFTWARE_ATTENTION)[0]!;
  }
  const store = options.store ?? memoryTuneStore();
  const key = JSON.stringify({
    attention: ATTENTION_CANDIDATES_VERSION,
    gemm: JSON.parse(tuneKey(context, false)),
    fixedSubgroupSize: context.fixedSubgroupSize,
  });
  const cached = spec === 'tune' ? undefined : store.get(key);
  if (cached) {
    try {
      const plan = parseAttentionPlan(cached);
      if (!whyAttentionCannotRun(context, plan)) return plan;
    } catch {
      // A cache written by other code: retune below.
    }
  }
  const plan = await fastestAttention(runner, runnable(ATTENTION_CANDIDATES), problem);
  store.set(key, attentionPlanName(plan));
  return plan;
}

/**
 * Times each candidate's forward and backward apart (bestOfTwo) and keeps the fastest kernels of each pass. Leaves `runner` on the last candidate: the
 * caller attaches the result.
 */
async function fastestAttention(
  runner: KernelRunner,
  candidates: AttentionPlan[],
  { B, T, H, KVH, D }: AttentionProblem,
): Promise<AttentionPlan> {
  const device = runner.device;
  const arg = (elements: number) => {
    const buffer = device.createBuffer({ size: elements * 4, usage: USAGE() });
    return { buffer, offset: 0, dtype: 'f32' as const, bytes: elements * 4 };
  };
  const [q, out, dout, dq] = [0, 1, 2, 3].map(() => arg(B * T * H * D));
  const [k, v, dk, dv] = [0, 1, 2, 3].map(() => arg(B * T * KVH * D));
  const lse = arg(B * H * T);
  // Zero-filled inputs: every score is 0, so every key is weighed (no early-outs to flatter a kernel).
  const shape = { B, H, KVH, D, scale: 1 / Math.sqrt(D), window: 0 };
  const masks = { keyMask: null, segIds: null };
  const passes = {
    forward: () =>
      attention.attentionForward(
        { q, k, v, out, lse, ...masks },
        { ...shape, Tq: T, Tk: T, kvCap: T },
        runner,
      ),
    backward: () =>
      attention.attentionBackward(
        { q, k, v, out, lse, dout, dq, dk, dv, ...masks },
        { ...shape, T },
        runner,
      ),
  };
  const best = { ...candidates[0]! };
  try {
    for (const pass of ['forward', 'backward'] as const) {
      let bestSeconds = Infinity;
      for (const plan of candidates) {
        useAttentionPlan(runner, plan);
        const seconds = await bestOfTwo(runner, passes[pass]);
        if (seconds < bestSeconds) {
          bestSeconds = seconds;
          best[pass] = plan[pass];
        }
      }
    }
  } finally {
    for (const { buffer } of [q, out, dout, dq, k, v, dk, dv, lse]) buffer.destroy();
  }
  return best;
}
