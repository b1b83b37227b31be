/**
 * Turns a dispatch's buffer arguments into storage bindings the WebGPU validation accepts.
 *
 * - Each argument is bound as the byte range the kernel touches, from its offset rounded down to
 *   `minStorageBufferOffsetAlignment`; the remainder becomes the `<name>_off` element offset.
 * - WebGPU rejects a GPUBuffer bound both read-only and writable in one dispatch, even disjointly,
 *   so every binding of a buffer the kernel writes becomes read_write in the kernel variant.
 * - It also rejects overlapping writable bindings (in-place kernels, or neighbouring tensors of
 *   one arena whose rounded-down ranges touch). Those arguments share one binding covering all of
 *   them: the variant declares only the first and reads the others through it (their `_off`
 *   offsets are relative to the shared range). Sharing needs the same WGSL element type, so an
 *   allocator should align tensors to `minStorageBufferOffsetAlignment`.
 */
import { bytesPerElement, wgslArrayType, type BufferDecl, type KernelDef } from './kernel-def.ts';
import { refBuffer, refOffset, type BufferArg } from './buffer-ref.ts';

export interface Binding {
  buffer: GPUBuffer;
  base: number;
  size: number;
}

export interface BindingPlan {
  /** The kernel variant to run (the original when nothing needed changing). */
  def: KernelDef;
  /** One entry per buffer the variant declares, in declaration order. */
  bindings: Binding[];
  /** `<name>_off` uniform values. */
  offsets: Record<string, number>;
}

interface Range extends Binding {
  decl: BufferDecl;
  offset: number;
  /** Index of the range whose binding this one reads through (itself when it owns one). */
  owner: number;
}

const overlaps = (a: Binding, b: Binding) => a.base < b.base + b.size && b.base < a.base + a.size;

export function planBindings(
  def: KernelDef,
  buffers: Record<string, BufferArg>,
  alignment: number,
  maxBindingBytes: number,
): BindingPlan {
  const ranges: Range[] = def.buffers.map((decl, index) => {
    const arg = buffers[decl.name];
    if (!arg) throw new Error(`${def.key}: missing buffer ${decl.name}`);
    const buffer = refBuffer(arg.ref);
    const offset = refOffset(arg.ref);
    const elementBytes = bytesPerElement(decl.dtype);
    if (offset % elementBytes !== 0)
      throw new Error(`${def.key}: ${decl.name} offset ${offset} is not element-aligned`);
    const base = offset - (offset % alignment);
    // Halves are read as u32 words, so the range is rounded out to whole words.
    const end = Math.min(
      Math.ceil((offset + Math.max(arg.elements, 1) * elementBytes) / 4) * 4,
      buffer.size,
    );
    return { decl, buffer, offset, base, size: end - base, owner: index };
  });

  // Every binding of a written buffer ends up writable, so any two of them that overlap must
  // share one binding; merging grows a range, which can make it overlap another, hence the loop.
  const written = new Set(
    ranges.filter((r) => r.decl.access === 'read_write').map((r) => r.buffer),
  );
  for (let merged = true; merged;) {
    merged = false;
    for (const [j, owner] of ranges.entries()) {
      if (owner.owner !== j || !written.has(owner.buffer)) continue;
      for (const [i, other] of ranges.entries()) {
        if (i <= j || other.owner !== i || other.buffer !== owner.buffer || !overlaps(owner, other))
          continue;
        mergeInto(def.key, owner, j, other, i, ranges);
        merged = true;
      }
    }
  }

  const owners = ranges.filter((r, i) => r.owner === i);
  for (const r of owners) {
    if (r.size > maxBindingBytes) {
      throw new Error(
        `${def.key}: ${r.decl.name} needs a ${r.size}-byte binding, over the device limit of ${maxBindingBytes} bytes`,
      );
    }
  }
  const accessOf = (r: Range): BufferDecl['access'] =>
    written.has(r.buffer) ? 'read_write' : 'read';

  const aliases = Object.fromEntries(
    ranges.filter((r, i) => r.owner !== i).map((r) => [r.decl.name, ranges[r.owner]!.decl.name]),
  );
  const changed = owners.filter((r) => accessOf(r) !== r.decl.access).map((r) => r.decl.name);
  const variant: KernelDef =
    changed.length === 0 && Object.keys(aliases).length === 0
      ? def
      : {
          ...def,
          key: `${def.key}|rw:${changed.join(',')}|alias:${Object.entries(aliases).join(',')}`,
          buffers: def.buffers.map((b, i) => ({ ...b, access: accessOf(ranges[i]!) })),
          aliases,
        };
  const offsets = Object.fromEntries(
    ranges.map((r) => [
      `${r.decl.name}_off`,
      (r.offset - ranges[r.owner]!.base) / bytesPerElement(r.decl.dtype),
    ]),
  );
  return {
    def: variant,
    bindings: owners.map(({ buffer, base, size }) => ({ buffer, base, size })),
    offsets,
  };
}

/** Makes range `i` (and the ranges reading through it) read through range `j`'s binding. */
function mergeInto(
  kernel: string,
  owner: Range,
  j: number,
  other: Range,
  i: number,
  ranges: Range[],
): void {
  for (const member of ranges.filter((r) => r.owner === i)) {
    if (wgslElement(owner.decl) !== wgslElement(member.decl)) {
      throw new Error(
        `${kernel}: ${member.decl.name} overlaps ${owner.decl.name} with a different element type`,
      );
    }
    member.owner = j;
  }
  const end = Math.max(owner.base + owner.size, other.base + other.size);
  owner.base = Math.min(owner.base, other.base);
  owner.size = end - owner.base;
}

function wgslElement(decl: BufferDecl): string {
  return wgslArrayType(decl.dtype);
}
