/**
 * Workgroup reductions: WGSL helpers `fn <name>(tid: u32, value: f32) -> f32` that combine one
 * value per invocation of a `size`-wide one-dimensional workgroup and return the result to every
 * invocation. All invocations must call them (they contain barriers); they may be called
 * repeatedly.
 *
 * Two implementations, chosen per device by `KernelRunner.subgroups`:
 * - workgroup memory: a tree of log2(size) halving steps, one barrier each;
 * - subgroups: subgroupAdd / subgroupMax inside each subgroup, one partial per subgroup in
 *   workgroup memory, which the first subgroup combines the same way (two barriers in all). Partials
 *   are indexed by `tid / subgroup_size`, i.e. subgroups are runs of consecutive invocation indices,
 *   which is how Vulkan, D3D12 and Metal drivers lay out one-dimensional workgroups.
 */
import type { KernelDef } from './kernel-def.ts';

export type Combine = 'sum' | 'max';

/** WebGPU's smallest subgroup size: bounds the number of per-subgroup partials. */
const MIN_SUBGROUP_SIZE = 4;

function combined(combine: Combine, a: string, b: string): string {
  return combine === 'sum' ? `${a} + ${b}` : `max(${a}, ${b})`;
}

function treeReduce(name: string, size: number, combine: Combine): string {
  return `
var<workgroup> ${name}Tmp: array<f32, ${size}>;
fn ${name}(tid: u32, value: f32) -> f32 {
  ${name}Tmp[tid] = value;
  workgroupBarrier();
  for (var stride = ${size / 2}u; stride > 0u; stride >>= 1u) {
    if (tid < stride) { ${name}Tmp[tid] = ${combined(combine, `${name}Tmp[tid]`, `${name}Tmp[tid + stride]`)}; }
    workgroupBarrier();
  }
  let result = ${name}Tmp[0];
  // Keeps a following call from overwriting slot 0 before every invocation has read it.
  workgroupBarrier();
  return result;
}
`;
}

function subgroupReduce(name: string, size: number, combine: Combine): string {
  const identity = combine === 'sum' ? '0.0' : '-3.0e38';
  const op = combine === 'sum' ? 'subgroupAdd' : 'subgroupMax';
  return `
var<workgroup> ${name}Tmp: array<f32, ${size / MIN_SUBGROUP_SIZE}>;
var<workgroup> ${name}Total: f32;
fn ${name}(tid: u32, value: f32) -> f32 {
  let partial = ${op}(value);
  if (reduceLane == 0u) { ${name}Tmp[tid / reduceWidth] = partial; }
  workgroupBarrier();
  // The first subgroup combines the partials (a few each) and publishes the result.
  if (tid < reduceWidth) {
    var mine = ${identity};
    for (var s = tid; s * reduceWidth < ${size}u; s += reduceWidth) {
      mine = ${combined(combine, 'mine', `${name}Tmp[s]`)};
    }
    let total = ${op}(mine);
    if (tid == 0u) { ${name}Total = total; }
  }
  workgroupBarrier();
  // A following call writes the partials and the total only after its first barrier, which every
  // invocation reaches after this read: no third barrier needed.
  return ${name}Total;
}
`;
}

/**
 * Adds reduction helpers (name -> combine) to a kernel whose workgroup is `size` invocations
 * along x: the WGSL, and with subgroups the directive and builtins they need.
 */
export function withReductions(
  def: KernelDef,
  size: number,
  helpers: Record<string, Combine>,
  subgroups: boolean,
): KernelDef {
  const reduce = subgroups ? subgroupReduce : treeReduce;
  const code = Object.entries(helpers)
    .map(([name, combine]) => reduce(name, size, combine))
    .join('');
  if (!subgroups) return { ...def, prelude: code + (def.prelude ?? '') };
  return {
    ...def,
    key: `${def.key}:sg`,
    // The second-level subgroup operation runs in the first subgroup only, a branch the
    // uniformity analysis cannot see as subgroup-uniform.
    directives: [
      ...(def.directives ?? []),
      'enable subgroups;',
      'diagnostic(off, subgroup_uniformity);',
    ],
    builtins: [
      ...(def.builtins ?? []),
      '@builtin(subgroup_invocation_id) sgLane: u32',
      '@builtin(subgroup_size) sgSize: u32',
    ],
    prelude: `var<private> reduceLane: u32;\nvar<private> reduceWidth: u32;\n${code}${def.prelude ?? ''}`,
    body: `\n  reduceLane = sgLane;\n  reduceWidth = sgSize;${def.body}`,
  };
}
