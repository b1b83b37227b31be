/**
 * Tensors: a shape and dtype over a reference-counted slice of backend storage.
 *
 * Memory is released deterministically: every tensor created while a scope is open belongs to
 * that scope and is freed when the scope ends (unless kept or returned), so a training step
 * neither leaks nor waits for the garbage collector. Views share storage and keep it alive.
 */
import type { Backend, Operand, Storage } from './backend.ts';
import { LoraforgeError } from '../util/errors.ts';
import { DTYPE_BYTES, type DType } from './dtype.ts';

class SharedStorage {
  private refs = 1;
  constructor(
    readonly backend: Backend,
    readonly storage: Storage,
  ) {}
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0) this.backend.free(this.storage);
  }
}

let activeBackend: Backend | null = null;
const scopes: Set<Tensor>[] = [];

/** Makes `backend` the one new tensors live on. */
export function setBackend(backend: Backend): void {
  activeBackend = backend;
}

export function getBackend(): Backend {
  if (!activeBackend) throw new Error('no backend: call setBackend() (see engine/cpu/backend.ts)');
  return activeBackend;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export class Tensor {
  requiresGrad = false;
  grad: Tensor | null = null;
  private disposed = false;

  private constructor(
    private readonly shared: SharedStorage,
    readonly byteOffset: number,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {
    scopes.at(-1)?.add(this);
  }

  /** Uninitialised tensor on the active backend. */
  static empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const backend = getBackend();
    const bytes = Math.max(numel(shape) * DTYPE_BYTES[dtype], 4);
    return new Tensor(new SharedStorage(backend, backend.alloc(bytes)), 0, [...shape], dtype);
  }

  static zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = Tensor.empty(shape, dtype);
    if (dtype === 'f32' || dtype === 'i32')
      getBackend().kernels.fill({ x: t.operand() }, { n: t.size, value: 0 });
    else getBackend().upload(t.storage, t.byteOffset, new Uint8Array(t.bytes));
    return t;
  }

  /** Copies host data in (`data` must already be in `dtype`'s representation). */
  static from(data: ArrayBufferView, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = Tensor.empty(shape, dtype);
    if (data.byteLength !== t.bytes) {
      throw new Error(`Tensor.from: ${data.byteLength} bytes given for shape [${shape}] ${dtype}`);
    }
    getBackend().upload(t.storage, 0, data);
    return t;
  }

  get backend(): Backend {
    return this.shared.backend;
  }
  get storage(): Storage {
    return this.shared.storage;
  }
  get size(): number {
    return numel(this.shape);
  }
  get bytes(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Kernel operand starting `elementOffset` elements into this tensor. */
  operand(elementOffset = 0): Operand {
    this.assertAlive();
    return {
      storage: this.shared.storage,
      byteOffset: this.byteOffset + elementOffset * DTYPE_BYTES[this.dtype],
      dtype: this.dtype,
    };
  }

  /** A view of `numel(shape)` elements starting at `elementOffset`, sharing storage. */
  view(shape: readonly number[], elementOffset = 0): Tensor {
    this.assertAlive();
    if (elementOffset + numel(shape) > this.size) {
      throw new Error(`view [${shape}]+${elementOffset} exceeds tensor [${this.shape}]`);
    }
    this.shared.retain();
    return new Tensor(
      this.shared,
      this.byteOffset + elementOffset * DTYPE_BYTES[this.dtype],
      [...shape],
      this.dtype,
    );
  }

  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) throw new Error(`reshape [${this.shape}] -> [${shape}]`);
    return this.view(shape);
  }

  /** Removes this tensor from the current scope so it outlives it. */
  keep(): this {
    for (const scope of scopes) scope.delete(this);
    return this;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.shared.release();
    this.grad?.dispose();
    this.grad = null;
  }

  async bytesOut(): Promise<Uint8Array> {
    this.assertAlive();
    return this.backend.download(this.storage, this.byteOffset, this.bytes);
  }

  /** Host copy as f32 (f32 tensors only; frozen half weights are never read back). */
  async toFloat32(): Promise<Float32Array> {
    const bytes = await this.bytesOut();
    return viewAs(bytes, this.dtype) as Float32Array;
  }

  /**
   * The values as f32 on the host without a copy where the backend's memory is host memory (a
   * live view: valid until the tensor is disposed or written), else a downloaded copy. Decoding
   * reads a vocabulary of logits per token: a fresh 0.6 MB copy each time cost ~0.9 ms.
   */
  async f32OnHost(): Promise<Float32Array> {
    return this.backend.hostView ? this.hostF32() : this.toFloat32();
  }

  /** Synchronous host copy, on backends that allow it (CPU). */
  readSync(): Float32Array | Int32Array | Uint16Array {
    this.assertAlive();
    const read = this.backend.readSync;
    if (!read) throw hostOnly(this.backend.name);
    return viewAs(read.call(this.backend, this.storage, this.byteOffset, this.bytes), this.dtype);
  }

  /** Live f32 view of this tensor's memory (host-visible backends only). */
  hostF32(): Float32Array {
    this.assertAlive();
    if (this.dtype !== 'f32') throw new Error(`hostF32 on a ${this.dtype} tensor`);
    const view = this.backend.hostView;
    if (!view) throw hostOnly(this.backend.name);
    const bytes = view.call(this.backend, this.storage, this.byteOffset, this.bytes);
    return new Float32Array(bytes.buffer, bytes.byteOffset, this.size);
  }

  private assertAlive(): void {
    if (this.disposed) throw new Error(`use of a disposed tensor [${this.shape}]`);
  }
}

function hostOnly(backend: string): LoraforgeError {
  return new LoraforgeError(
    `this command reads ${backend} results synchronously, which only the CPU backend supports yet`,
    'use --device cpu',
  );
}

function viewAs(bytes: Uint8Array, dtype: DType): Float32Array | Int32Array | Uint16Array {
  const copy = bytes.slice();
  if (dtype === 'f32') return new Float32Array(copy.buffer);
  if (dtype === 'i32') return new Int32Array(copy.buffer);
  return new Uint16Array(copy.buffer);
}

/**
 * Runs `fn` in a scope: every tensor created inside is disposed at the end except the ones
 * reachable from the return value (a Tensor, array or plain object of them) or kept.
 */
export function tidy<T>(fn: () => T): T {
  const scope = openScope();
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.splice(scopes.lastIndexOf(scope), 1);
  }
  return closeScope(scope, result);
}

/** Like tidy, for async work: nothing else may create tensors while it awaits. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = openScope();
  let result: T;
  try {
    result = await fn();
  } finally {
    scopes.splice(scopes.lastIndexOf(scope), 1);
  }
  return closeScope(scope, result);
}

function openScope(): Set<Tensor> {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  return scope;
}

/** Disposes what the closed scope owned, handing the returned tensors to the enclosing scope. */
function closeScope<T>(scope: Set<Tensor>, result: T): T {
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of scope) {
    if (survivors.has(t)) scopes.at(-1)?.add(t);
    else t.dispose();
  }
  return result;
}

function collectTensors(value: unknown, out: Set<Tensor>): void {
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, out);
  else if (
    value &&
    typeof value === 'object' &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    for (const v of Object.values(value)) collectTensors(v, out);
  }
}
