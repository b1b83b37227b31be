/**
 * The contract between the engine's ops and a compute device. Ops only ever see `Storage`
 * handles and call named kernels; they never touch a device buffer's bytes, so the same model
 * code runs on the CPU (WebAssembly) and on WebGPU.
 */
import type { DType } from './dtype.ts';
import type { RegistryKernels } from './kernels/registry.ts';

/** An opaque device allocation. */
export interface Storage {
  readonly bytes: number;
}

/** A strided 2-D view of a tensor's storage handed to a kernel: element offset + row stride. */
export interface Operand {
  storage: Storage;
  /** Offset in bytes from the start of the storage. */
  byteOffset: number;
  dtype: DType;
}

/** Gate activation of a gated MLP: silu (Llama, Qwen) or the tanh approximation of GELU (Gemma). */
export type GateActivation = 'silu' | 'gelu_tanh';

export interface GemmOptions {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** Leading dimensions (row strides, in elements); default to the dense value. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  alpha?: number;
  /** 0 overwrites C, 1 accumulates into it. */
  beta?: number;
  bias?: Operand;
}

/**
 * Kernel entry points: every kernel of the registry (kernels/registry.ts: each declared once, with
 * named buffers and params and its JS reference, and implemented by every backend), plus GEMM,
 * whose launch is a tuned plan per backend rather than a registry implementation.
 */
export interface Kernels extends RegistryKernels {
  gemm(a: Operand, b: Operand, c: Operand, o: GemmOptions): void;
}

export interface Backend {
  readonly name: 'cpu' | 'webgpu';
  /** What runs the kernels, for start-up lines: e.g. "cpu (wasm relaxed SIMD, 2 threads)". */
  describe(): string;
  alloc(bytes: number): Storage;
  free(storage: Storage): void;
  upload(storage: Storage, byteOffset: number, data: ArrayBufferView): void;
  download(storage: Storage, byteOffset: number, bytes: number): Promise<Uint8Array>;
  /** Synchronous read, only on backends whose memory the host can see (CPU). */
  readSync?(storage: Storage, byteOffset: number, bytes: number): Uint8Array;
  /** A live (no copy) view of device memory, on backends whose memory the host can see (CPU). */
  hostView?(storage: Storage, byteOffset: number, bytes: number): Uint8Array;
  readonly kernels: Kernels;
  /** Number of bytes currently allocated (for leak tests and memory reports). */
  allocatedBytes(): number;
  dispose(): void;
}
