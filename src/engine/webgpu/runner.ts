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
 * Binding limits: each buffer argument is bound as just the byte range the kernel touches
 * (binding-plan.ts). A range larger than `maxStorageBufferBindingSize` throws; GEMM splits its
 * problem so that every range fits (gemm.ts), flat kernels run in binding-sized chunks
 * (elementwise.ts), and the other kernels take per-layer activations, which fit.
 */
import { planBindings, type Binding } from './binding-plan.ts';
import { refBuffer, refOffset, type BufferArg, type BufferRef } from './buffer-ref.ts';
import { generateWgsl, paramLayout, type KernelDef } from './kernel-def.ts';

export type { BufferArg, BufferRef } from './buffer-ref.ts';

const CACHE_ENTRIES = 1024;
/** Staged upload bytes that force a submit (so loading a model does not hold a second copy). */
const STAGING_FLUSH_BYTES = 64 << 20;

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
  /** Upload bytes staged since the last submit. */
  private stagedBytes = 0;
  /** Command buffers submitted so far (a training micro-step adds one: see `write`). */
  submits = 0;
  /** Evicted uniform buffers, destroyed once the commands that may use them are submitted. */
  private retired: GPUBuffer[] = [];
  private readonly scratch = new Map<string, GPUBuffer>();
  private deviceError: GPUError | undefined;
  readonly bindingAlignment: number;
  readonly maxBindingBytes: number;
  readonly maxWorkgroupsPerDimension: number;
  /** Reductions use subgroup operations (wgsl-reduce.ts): where the device has `subgroups`. */
  readonly subgroups: boolean;

  /** Limits below the device's exercise the splitting paths in tests; `subgroups: false` forces the workgroup-memory reductions. */
  constructor(
    readonly device: GPUDevice,
    options: {
      maxBindingBytes?: number;
      maxWorkgroupsPerDimension?: number;
      subgroups?: boolean;
    } = {},
  ) {
    this.subgroups =
      (options.subgroups ?? true) && device.features.has('subgroups' as GPUFeatureName);
    this.uniforms = new LruCache<GPUBuffer>(CACHE_ENTRIES, (buffer) => this.retired.push(buffer));
    device.addEventListener('uncapturederror', (event) => {
      this.deviceError ??= (event as GPUUncapturedErrorEvent).error;
    });
    this.bindingAlignment = device.limits.minStorageBufferOffsetAlignment;
    this.maxBindingBytes = Math.min(
      options.maxBindingBytes ?? Infinity,
      device.limits.maxStorageBufferBindingSize,
    );
    this.maxWorkgroupsPerDimension = Math.min(
      options.maxWorkgroupsPerDimension ?? Infinity,
      device.limits.maxComputeWorkgroupsPerDimension,
    );
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
    const plan = planBindings(def, buffers, this.bindingAlignment, this.maxBindingBytes);
    const pipeline = this.pipeline(plan.def);
    const uniform = this.uniform(plan.def, { ...params, ...plan.offsets });
    const bindGroup = this.bindGroup(plan.def.key, pipeline, uniform, plan.bindings);
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
    if (y > max) throw new Error(`a launch of ${groups} workgroups exceeds a ${max} x ${max} grid`);
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

  /** Submits every recorded dispatch and upload. */
  flush(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = undefined;
      this.submits++;
    }
    for (const buffer of this.retired) buffer.destroy();
    this.retired = [];
    this.stagedBytes = 0;
  }

  /**
   * Uploads in stream order without splitting the command stream (a training micro-step stays
   * one command buffer). With nothing recorded since the last submit, queue.writeBuffer is already
   * in order; otherwise the data goes to a staging buffer whose copy into place is recorded behind
   * the pending dispatches, so it neither waits for a submit nor overtakes a pending kernel that
   * still reads the old contents (as writeBuffer would). Staging memory is freed at the next
   * submit, forced once STAGING_FLUSH_BYTES are pending. Offset and size must be multiples of 4.
   */
  write(ref: BufferRef, data: ArrayBufferView): void {
    if (data.byteLength === 0) return;
    if (!this.encoder) {
      this.device.queue.writeBuffer(
        refBuffer(ref),
        refOffset(ref),
        data.buffer,
        data.byteOffset,
        data.byteLength,
      );
      return;
    }
    const staging = this.device.createBuffer({
      size: data.byteLength,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    staging.unmap();
    this.encoder.copyBufferToBuffer(staging, 0, refBuffer(ref), refOffset(ref), data.byteLength);
    this.retired.push(staging);
    this.stagedBytes += data.byteLength;
    if (this.stagedBytes > STAGING_FLUSH_BYTES) this.flush();
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
    this.throwDeviceError();
    return copy;
  }

  /**
   * Validation errors (a bad shader, a rejected binding) are reported asynchronously and would
   * otherwise only leave garbage in the results, so the first one is rethrown by the next read.
   */
  private throwDeviceError(): void {
    const error = this.deviceError;
    if (error) {
      this.deviceError = undefined;
      throw new Error(`WebGPU: ${error.message}`);
    }
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
    ranges: Binding[],
  ): GPUBindGroup {
    const key = [
      kernel,
      this.id(uniform),
      ...ranges.map((r) => `${this.id(r.buffer)}@${r.base}+${r.size}`),
    ].join('|');
    let group = this.bindGroups.get(key);
    if (!group) {
      group = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: uniform } },
          ...ranges.map((r, i) => ({
            binding: i + 1,
            resource: { buffer: r.buffer, offset: r.base, size: r.size },
          })),
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
