/**
 * Which attention kernels a runner uses, for the forward and for the backward: the row kernels
 * (attention.ts: one thread per query or key) or the block-tiled ones (attention-tiled.ts) of
 * one shape. The tuner (tuner.ts) picks a plan per adapter and `useAttentionPlan` attaches it to
 * the runner the registry kernels receive; `LORAFORGE_WEBGPU_ATTENTION` (or the `attention`
 * option) forces one by name.
 */
import { LoraforgeError } from '../../util/errors.ts';
import { tiledShapeName, type TiledShape } from './attention-tiled.ts';
import type { KernelRunner } from './runner.ts';

export type AttentionKernels = { kind: 'row' } | { kind: 'tiled'; shape: TiledShape };

export interface AttentionPlan {
  forward: AttentionKernels;
  backward: AttentionKernels;
}

const ROW: AttentionKernels = { kind: 'row' };
export const ROW_ATTENTION: AttentionPlan = { forward: ROW, backward: ROW };

/** The tiled shapes the tuner may pick (a staged one for every adapter, `.s8` for subgroups of 8). */
export const TILED_SHAPES: TiledShape[] = [
  { rowGroups: 4, rowsPerThread: 4, colsPerThread: 2, sg8: false },
  { rowGroups: 4, rowsPerThread: 8, colsPerThread: 2, sg8: true },
];

function kernelsName(k: AttentionKernels): string {
  return k.kind === 'row' ? 'row' : `tiled.${tiledShapeName(k.shape)}`;
}

/** `row`, `tiled.<shape>`, or `forward=<name>,backward=<name>` when the passes differ. */
export function attentionPlanName(plan: AttentionPlan): string {
  const [forward, backward] = [kernelsName(plan.forward), kernelsName(plan.backward)];
  return forward === backward ? forward : `forward=${forward},backward=${backward}`;
}

function parseKernels(name: string, spec: string): AttentionKernels {
  if (name === 'row') return ROW;
  if (name === 'tiled') return { kind: 'tiled', shape: TILED_SHAPES[0]! };
  if (name === 'tiled.s8') return { kind: 'tiled', shape: TILED_SHAPES[1]! };
  const match = /^tiled\.(\d+)x(\d+)x(\d+)(\.s8)?$/.exec(name);
  if (!match) {
    throw new LoraforgeError(
      `LORAFORGE_WEBGPU_ATTENTION="${spec}" is not an attention plan`,
      'use row, tiled, tiled.s8, tiled.<groups>x<rows>x<cols>[.s8], forward=<one>,backward=<one> or tune',
    );
  }
  const [groups, rows, cols] = match.slice(1, 4).map(Number) as [number, number, number];
  if (groups < 1 || rows < 1 || cols < 1) {
    throw new LoraforgeError(`attention plan ${spec}: every tile extent must be at least 1`);
  }
  return {
    kind: 'tiled',
    shape: { rowGroups: groups, rowsPerThread: rows, colsPerThread: cols, sg8: !!match[4] },
  };
}

/**
 * A plan from its name: one kernel set for both passes — `row`, `tiled` (the staged default),
 * `tiled.s8` (the subgroup one), `tiled.<groups>x<rows>x<cols>[.s8]` — or
 * `forward=<one>,backward=<one>`.
 */
export function parseAttentionPlan(spec: string): AttentionPlan {
  const split = /^forward=([^,]+),backward=([^,]+)$/.exec(spec);
  if (split)
    return { forward: parseKernels(split[1]!, spec), backward: parseKernels(split[2]!, spec) };
  const both = parseKernels(spec, spec);
  return { forward: both, backward: both };
}

type PlanContext = {
  fixedSubgroupSize: number | null;
  limits: Pick<GPUSupportedLimits, 'maxComputeInvocationsPerWorkgroup'>;
};

/** Why an adapter cannot run a plan, or null when it can. */
export function whyAttentionCannotRun(context: PlanContext, plan: AttentionPlan): string | null {
  for (const k of [plan.forward, plan.backward]) {
    if (k.kind === 'row') continue;
    if (k.shape.sg8 && context.fixedSubgroupSize !== 8)
      return 'the .s8 attention kernels need subgroups of exactly 8 invocations';
    if (k.shape.rowGroups * 8 > context.limits.maxComputeInvocationsPerWorkgroup)
      return 'too many invocations per workgroup';
  }
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
