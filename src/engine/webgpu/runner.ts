/**
 * Runs KernelDefs on a device: caches pipelines (per generated source), uniform buffers (per exact
 * parameter bytes, so they are never rewritten while a dispatch that reads them is pending) and
 * bind groups (per buffers + ranges + uniforms), and records dispatches into one command encoder
 * that is submitted by `flush()`.
 *
 * Ordering contract: queue.writeBuffer / mapAsync run relative to *submitted* work, so anything
 * that touches buffers outside this runner must go through `write` / `read` (or call `flush()`
 * first) to see the effects of every kernel issued before it.
 *
 * Binding limits: each buffer argument is bound as the byte range the kernel touches, starting at
 * the offset rounded down to `minStorageBufferOffsetAlignment`; the remainder becomes the
 * `<name>_off` uniform. A range larger than `maxStorageBufferBindingSize` throws here; GEMM splits
 * its problem so that every range fits (gemm.ts), other kernels take per-layer tensors that do.
 */
import { bytesPerElement, generateWgsl, paramLayout, type KernelDef } from './kernel-def.ts';

/** A buffer, or a buffer plus a byte offset into it. */
export type BufferRef = GPUBuffer | { buffer: GPUBuffer; offset: number };

export function refBuffer(ref: BufferRef): GPUBuffer {
  return 'buffer' in ref ? ref.buffer : ref;
}

export function refOffset(ref: BufferRef): number {
  return 'buffer' in ref ? ref.offset : 0;
}

/** `ref` advanced by `bytes`. */
export function advance(ref: BufferRef, bytes: number): BufferRef {
  return { buffer: refBuffer(ref), offset: refOffset(ref) + bytes };
}

/** One buffer argument of a dispatch: where it is and how many elements the kernel touches. */
export interface BufferArg {
  ref: BufferRef;
  elements: number;
}

const CACHE_ENTRIES = 1024;

/**
 * WebGPU rejects a dispatch that binds one GPUBuffer both read-only and writable (even disjoint
 * ranges, e.g. tensors sub-allocated from one arena, or in-place ops), so such reads get a
 * read_write variant of the kernel.
 */
function promoteAliasedReads(def: KernelDef, buffers: Record<string, BufferArg>): KernelDef {
  const written = new Set(
    def.buffers.filter((b) => b.access === 'read_write').map((b) => refBuffer(buffers[b.name]!.ref)),
  );
  const promoted = def.buffers.filter((b) => b.access === 'read' && written.has(refBuffer(buffers[b.name]!.ref)));
  if (promoted.length === 0) return def;
  return {
    ...def,
    key: `${def.key}|rw:${promoted.map((b) => b.name).join(',')}`,
    buffers: def.buffers.map((b) => (promoted.includes(b) ? { ...b, access: 'read_write' } : b)),
  };
}

/** Insertion-ordered Map used as an LRU: `get` refreshes, `set` evicts the oldest entry. */
class LruCache<V> {
  private readonly map = new Map<string, V>();
  constructor(
    private readonly capacity: number,
    private readonly onEvict: (value: V) => void = () => {},
  ) {}
  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: string, value: V): void {
    this.map.set(key, value);
    if (this.map.size > this.capacity) {
      const [oldestKey, oldest] = this.map.entries().next().value as [string, V];
      this.map.delete(oldestKey);
      this.onEvict(oldest);
    }
  }
}

export class KernelRunner {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly uniforms: LruCache<GPUBuffer>;
  private readonly bindGroups = new LruCache<GPUBindGroup>(CACHE_ENTRIES);
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private encoder: GPUCommandEncoder | undefined;
  /** Evicted uniform buffers, destroyed once the commands that may use them are submitted. */
  private retired: GPUBuffer[] = [];
  private readonly scratch = new Map<string, GPUBuffer>();
  readonly bindingAlignment: number;
  readonly maxBindingBytes: number;
  readonly maxWorkgroupsPerDimension: number;

  /** `maxBindingBytes` below the device limit exercises the splitting paths in tests. */
  constructor(
    readonly device: GPUDevice,
    options: { maxBindingBytes?: number } = {},
  ) {
    this.uniforms = new LruCache<GPUBuffer>(CACHE_ENTRIES, (buffer) => this.retired.push(buffer));
    this.bindingAlignment = device.limits.minStorageBufferOffsetAlignment;
    this.maxBindingBytes = Math.min(options.maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
    this.maxWorkgroupsPerDimension = device.limits.maxComputeWorkgroupsPerDimension;
  }

  /**
   * Records one dispatch. `buffers` follows `def.buffers` by name; `params` gives every declared
   * param. `workgroups` is [x, y, z] counts (see `grid1d` for large 1-D launches).
   */
  dispatch(
    def: KernelDef,
    buffers: Record<string, BufferArg>,
    params: Record<string, number>,
    workgroups: [number, number?, number?],
  ): void {
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    for (const decl of def.buffers) {
      if (!buffers[decl.name]) throw new Error(`${def.key}: missing buffer ${decl.name}`);
    }
    def = promoteAliasedReads(def, buffers);
    const pipeline = this.pipeline(def);
    const ranges = def.buffers.map((decl) =>
      this.bindingRange(def.key, decl.name, buffers[decl.name]!, bytesPerElement(decl.dtype)),
    );
    const values: Record<string, number> = { ...params };
    def.buffers.forEach((decl, i) => (values[`${decl.name}_off`] = ranges[i]!.elementOffset));
    const uniform = this.uniform(def, values);
    const bindGroup = this.bindGroup(def.key, pipeline, uniform, ranges);
    const pass = this.commandEncoder().beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
  }

  /** Workgroup counts covering `groups` workgroups when that exceeds one dimension's limit. */
  grid1d(groups: number): [number, number] {
    const max = this.maxWorkgroupsPerDimension;
    if (groups <= max) return [groups, 1];
    const y = Math.ceil(groups / max);
    return [Math.ceil(groups / y), y];
  }

  /** A device buffer owned by the runner, reused across calls with the same name (grown on demand). */
  scratchBuffer(name: string, bytes: number): GPUBuffer {
    const existing = this.scratch.get(name);
    if (existing && existing.size >= bytes) return existing;
    if (existing) this.retired.push(existing);
    const buffer = this.device.createBuffer({
      label: `scratch:${name}`,
      size: Math.max(16, Math.ceil(bytes / 16) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.scratch.set(name, buffer);
    return buffer;
  }

  /** Submits every recorded dispatch. */
  flush(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = undefined;
    }
    for (const buffer of this.retired) buffer.destroy();
    this.retired = [];
  }

  /** Uploads after every issued kernel (writeBuffer needs 4-byte multiples). */
  write(ref: BufferRef, data: ArrayBufferView): void {
    this.flush();
    this.device.queue.writeBuffer(refBuffer(ref), refOffset(ref), data.buffer, data.byteOffset, data.byteLength);
  }

  /** Downloads `bytes` bytes (a multiple of 4) once every issued kernel has run. */
  async read(ref: BufferRef, bytes: number): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
    });
    this.commandEncoder().copyBufferToBuffer(refBuffer(ref), refOffset(ref), staging, 0, bytes);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0);
    staging.destroy();
    return copy;
  }

  private commandEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private pipeline(def: KernelDef): GPUComputePipeline {
    let pipeline = this.pipelines.get(def.key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label: def.key, code: generateWgsl(def) });
      pipeline = this.device.createComputePipeline({
        label: def.key,
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
      });
      this.pipelines.set(def.key, pipeline);
    }
    return pipeline;
  }

  private bindingRange(kernel: string, name: string, arg: BufferArg, elementBytes: number) {
    const buffer = refBuffer(arg.ref);
    const offset = refOffset(arg.ref);
    if (offset % elementBytes !== 0) throw new Error(`${kernel}: ${name} offset ${offset} is not element-aligned`);
    const base = offset - (offset % this.bindingAlignment);
    // Halves are read as u32 words, so the range is rounded out to whole words.
    const end = Math.min(Math.ceil((offset + Math.max(arg.elements, 1) * elementBytes) / 4) * 4, buffer.size);
    const size = end - base;
    if (size > this.maxBindingBytes) {
      throw new Error(
        `${kernel}: ${name} needs a ${size}-byte binding, over the device limit of ${this.maxBindingBytes} bytes`,
      );
    }
    return { buffer, base, size, elementOffset: (offset - base) / elementBytes };
  }

  private uniform(def: KernelDef, values: Record<string, number>): GPUBuffer {
    const layout = paramLayout(def);
    const words = new ArrayBuffer(Math.ceil((layout.length * 4) / 16) * 16);
    const u32 = new Uint32Array(words);
    const i32 = new Int32Array(words);
    const f32 = new Float32Array(words);
    layout.forEach(([name, type], i) => {
      const value = values[name];
      if (value === undefined) throw new Error(`${def.key}: missing param ${name}`);
      if (type === 'f32') f32[i] = value;
      else if (type === 'i32') i32[i] = value;
      else u32[i] = value;
    });
    const key = `${def.key}|${Array.from(u32).join(',')}`;
    let buffer = this.uniforms.get(key);
    if (!buffer) {
      buffer = this.device.createBuffer({
        size: words.byteLength,
        usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true,
      });
      new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(words));
      buffer.unmap();
      this.uniforms.set(key, buffer);
    }
    return buffer;
  }

  private bindGroup(
    kernel: string,
    pipeline: GPUComputePipeline,
    uniform: GPUBuffer,
    ranges: { buffer: GPUBuffer; base: number; size: number }[],
  ): GPUBindGroup {
    const key = [kernel, this.id(uniform), ...ranges.map((r) => `${this.id(r.buffer)}@${r.base}+${r.size}`)].join('|');
    let group = this.bindGroups.get(key);
    if (!group) {
      group = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uniform } },
          ...ranges.map((r, i) => ({ binding: i + 1, resource: { buffer: r.buffer, offset: r.base, size: r.size } })),
        ],
      });
      this.bindGroups.set(key, group);
    }
    return group;
  }

  private id(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(buffer, id);
    }
    return id;
  }
}
