/**
 * Which attention kernels a runner uses: the row kernels (attention.ts: one thread per query or
 * key) or the block-tiled ones (attention-tiled.ts) of one shape. The tuner (tuner.ts) picks a
 * plan per adapter and `useAttentionPlan` attaches it to the runner the registry kernels receive;
 * `LORAFORGE_WEBGPU_ATTENTION` (or the `attention` option) forces one by name.
 */
import { LoraforgeError } from '../../util/errors.ts';
import { tiledShapeName, type TiledShape } from './attention-tiled.ts';
import type { KernelRunner } from './runner.ts';

export type AttentionPlan = { kind: 'row' } | { kind: 'tiled'; shape: TiledShape };

export const ROW_ATTENTION: AttentionPlan = { kind: 'row' };

/** The tiled shapes the tuner may pick (a staged one for every adapter, `.s8` for subgroups of 8). */
export const TILED_SHAPES: TiledShape[] = [
  { rowGroups: 4, rowsPerThread: 4, colsPerThread: 2, sg8: false },
  { rowGroups: 4, rowsPerThread: 8, colsPerThread: 2, sg8: true },
];

export function attentionPlanName(plan: AttentionPlan): string {
  return plan.kind === 'row' ? 'row' : `tiled.${tiledShapeName(plan.shape)}`;
}

/**
 * A plan from its name: `row`, `tiled` (the staged default), `tiled.s8` (the subgroup one) or
 * `tiled.<groups>x<rows>x<cols>[.s8]`.
 */
export function parseAttentionPlan(name: string): AttentionPlan {
  if (name === 'row') return ROW_ATTENTION;
  if (name === 'tiled') return { kind: 'tiled', shape: TILED_SHAPES[0]! };
  if (name === 'tiled.s8') return { kind: 'tiled', shape: TILED_SHAPES[1]! };
  const match = /^tiled\.(\d+)x(\d+)x(\d+)(\.s8)?$/.exec(name);
  if (!match) {
    throw new LoraforgeError(
      `LORAFORGE_WEBGPU_ATTENTION="${name}" is not an attention plan`,
      'use row, tiled, tiled.s8, tiled.<groups>x<rows>x<cols>[.s8] or tune',
    );
  }
  const [groups, rows, cols] = match.slice(1, 4).map(Number) as [number, number, number];
  if (groups < 1 || rows < 1 || cols < 1) {
    throw new LoraforgeError(`attention plan ${name}: every tile extent must be at least 1`);
  }
  return {
    kind: 'tiled',
    shape: { rowGroups: groups, rowsPerThread: rows, colsPerThread: cols, sg8: !!match[4] },
  };
}

/** Why an adapter cannot run a plan, or null when it can. */
export function whyAttentionCannotRun(
  context: { subgroups: boolean; fixedSubgroupSize: number | null; limits: GPUSupportedLimits },
  plan: AttentionPlan,
): string | null {
  if (plan.kind === 'row') return null;
  if (plan.shape.sg8 && context.fixedSubgroupSize !== 8)
    return 'the .s8 attention kernels need subgroups of exactly 8 invocations';
  if (plan.shape.rowGroups * 8 > context.limits.maxComputeInvocationsPerWorkgroup)
    return 'too many invocations per workgroup';
  return null;
}

const plans = new WeakMap<KernelRunner, AttentionPlan>();

/** Makes `runner`'s attention kernels follow `plan` (the row kernels until called). */
export function useAttentionPlan(runner: KernelRunner, plan: AttentionPlan): void {
  plans.set(runner, plan);
}

export function attentionPlanOf(runner: KernelRunner): AttentionPlan {
  return plans.get(runner) ?? ROW_ATTENTION;
}
