/**
 * WGSL helper `fn <name>(tid: u32, value: f32) -> f32`: combines one value per invocation of a
 * `size`-wide workgroup (tree reduction in workgroup memory) and returns the result to every
 * invocation. All invocations must call it (it contains barriers); it may be called repeatedly.
 */
export function workgroupReduce(name: string, size: number, combine: 'sum' | 'max'): string {
  const combined =
    combine === 'sum'
      ? `${name}Tmp[tid] + ${name}Tmp[tid + stride]`
      : `max(${name}Tmp[tid], ${name}Tmp[tid + stride])`;
  return `
var<workgroup> ${name}Tmp: array<f32, ${size}>;
fn ${name}(tid: u32, value: f32) -> f32 {
  ${name}Tmp[tid] = value;
  workgroupBarrier();
  for (var stride = ${size / 2}u; stride > 0u; stride >>= 1u) {
    if (tid < stride) { ${name}Tmp[tid] = ${combined}; }
    workgroupBarrier();
  }
  let result = ${name}Tmp[0];
  // Keeps a following call from overwriting slot 0 before every invocation has read it.
  workgroupBarrier();
  return result;
}
`;
}
