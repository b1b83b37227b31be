/**
 * Declarative description of one compute kernel, turned into WGSL with a uniform `P` struct and
 * one storage binding per buffer. Every buffer `x` gets a `P.x_off` element offset: buffers are
 * bound from an offset aligned down to the device's minimum binding alignment and the shader adds
 * the remainder, so callers may pass any element-aligned offset (see binding-plan.ts).
 */
import type { AnySpec, BufferSpec, ParamKind } from '../kernels/spec.ts';

export type ParamType = 'u32' | 'i32' | 'f32';

/**
 * How elements are stored: f16/bf16 are read as u32 words holding two halves (no shader-f16
 * needed); `f32x4` binds f32 data as vec4<f32> (16-byte elements: offsets and extents count vec4s).
 */
export type StorageDtype = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32' | 'f32x4';

export interface BufferDecl {
  name: string;
  dtype: StorageDtype;
  access: 'read' | 'read_write';
}

export interface KernelDef {
  /** Unique per generated source (include every template choice); keys the pipeline cache. */
  key: string;
  params: Record<string, ParamType>;
  buffers: BufferDecl[];
  workgroupSize: [number, number?, number?];
  /** Global directives, e.g. `enable f16;` (placed before every declaration). */
  directives?: string[];
  /** Extra entry-point parameters, e.g. `@builtin(subgroup_size) sgSize: u32`. */
  builtins?: string[];
  /** Module-scope WGSL placed before the entry point (helpers, workgroup arrays, constants). */
  prelude?: string;
  /**
   * Buffers read through another buffer's binding (name -> binding name), set by binding-plan.ts
   * when their ranges overlap: they get no declaration and `name[` is rewritten to `binding[`.
   */
  aliases?: Record<string, string>;
  /** Body of `fn main(@builtin(global_invocation_id) gid, local_invocation_id lid, workgroup_id wid, num_workgroups nwg)`. */
  body: string;
}

/**
 * The params and buffers of a kernel whose WGSL takes exactly its registry spec's arguments, so
 * that the list is written once (flags and name lists arrive as u32; f32 / i32 buffers only).
 */
export function specBindings(spec: AnySpec): Pick<KernelDef, 'params' | 'buffers'> {
  const kinds = spec.params as Record<string, ParamKind>;
  const buffers = spec.buffers as Record<string, BufferSpec>;
  return {
    params: Object.fromEntries(
      Object.entries(kinds).map(([name, kind]) => [
        name,
        typeof kind === 'string' && kind !== 'bool' ? kind : 'u32',
      ]),
    ),
    buffers: Object.entries(buffers).map(([name, { dtype, access }]) => {
      if (dtype !== 'f32' && dtype !== 'i32') throw new Error(`${spec.name}: ${name} is ${dtype}`);
      return { name, dtype, access: access === 'read' ? 'read' : 'read_write' };
    }),
  };
}

export function bytesPerElement(dtype: StorageDtype): number {
  if (dtype === 'f32x4') return 16;
  return dtype === 'f16' || dtype === 'bf16' ? 2 : 4;
}

export function wgslArrayType(dtype: StorageDtype): string {
  if (dtype === 'f32x4') return 'vec4<f32>';
  if (dtype === 'f32') return 'f32';
  if (dtype === 'i32') return 'i32';
  return 'u32';
}

/** Field order of the uniform struct: declared params, then one offset per buffer. */
export function paramLayout(def: KernelDef): [string, ParamType][] {
  return [
    ...Object.entries(def.params),
    ...def.buffers.map((b): [string, ParamType] => [`${b.name}_off`, 'u32']),
  ];
}

export function generateWgsl(def: KernelDef): string {
  const fields = paramLayout(def)
    .map(([name, type]) => `  ${name}: ${type},`)
    .join('\n');
  const aliases = def.aliases ?? {};
  const bindings = def.buffers
    .filter((b) => !(b.name in aliases))
    .map(
      (b, i) =>
        `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${wgslArrayType(b.dtype)}>;`,
    )
    .join('\n');
  const rename = (code: string) =>
    Object.entries(aliases).reduce(
      (text, [name, target]) => text.replace(new RegExp(`\\b${name}\\[`, 'g'), `${target}[`),
      code,
    );
  const [x, y = 1, z = 1] = def.workgroupSize;
  const directives = (def.directives ?? []).map((d) => `${d}\n`).join('');
  const builtins = (def.builtins ?? []).map((b) => `,\n        ${b}`).join('');
  return `${directives}struct Params {
${fields}
}
@group(0) @binding(0) var<uniform> P: Params;
${bindings}
${rename(def.prelude ?? '')}
@compute @workgroup_size(${x}, ${y}, ${z})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>${builtins}) {
${rename(def.body)}
}
`;
}

/**
 * WGSL function `fn <name>(i: u32) -> f32` reading element i (offset already applied) of a buffer
 * stored as `dtype`. Halves are unpacked from u32 words: f16 via unpack2x16float, bf16 by moving
 * its 16 bits into the top of an f32.
 */
/** 0 .. count - 1: the unrolled indices of WGSL written out by generation. */
export const range = (count: number) => Array.from({ length: count }, (_, i) => i);

export function wgslLoader(name: string, buffer: string, dtype: StorageDtype): string {
  switch (dtype) {
    case 'f32':
      return `fn ${name}(i: u32) -> f32 { return ${buffer}[i]; }`;
    case 'f16':
      return `fn ${name}(i: u32) -> f32 { return unpack2x16float(${buffer}[i >> 1u])[i & 1u]; }`;
    case 'bf16':
      return `fn ${name}(i: u32) -> f32 { return bitcast<f32>((${buffer}[i >> 1u] >> ((i & 1u) * 16u)) << 16u); }`;
    default:
      throw new Error(`no float loader for ${dtype}`);
  }
}
