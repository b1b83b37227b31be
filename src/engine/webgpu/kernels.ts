/**
 * The WebGPU counterpart of `CpuKernels`: the same kernels with the same argument order and
 * semantics (docs/ARCHITECTURE.md, "Kernel signatures"), taking GPU buffers (optionally with a
 * byte offset) where the CPU kernels take pointers. Kernels are recorded, not run: call `flush()`
 * (or use `write` / `read`, which flush) before touching buffers by other means.
 *
 * Also the smaller kernels of the engine's Backend interface (vector-ops.ts, rows.ts); those take
 * dtypes and table row counts explicitly, since a GPU buffer records neither.
 */
import { acquireWebGpu, type AcquireOptions, type WebGpuContext } from './device.ts';
import { attentionBackward, attentionForward } from './attention.ts';
import {
  ceChunkBackward,
  ceChunkForward,
  ceLossFinish,
  ceOnlineChunk,
  ceOnlineFinish,
} from './cross-entropy.ts';
import { gatedBackward, gatedForward } from './elementwise.ts';
import { DEFAULT_GEMM_PLAN, gemm, type GemmArgs, type GemmPlan } from './gemm.ts';
import { chooseGemmPlan, type GemmChoiceOptions } from './tuner.ts';
import { rmsnormBackward, rmsnormForward } from './rmsnorm.ts';
import { ropeApply } from './rope.ts';
import { KernelRunner, type BufferRef } from './runner.ts';
import {
  embeddingForward,
  columnDots,
  gatherRows,
  scaleColumns,
  scatterAddRows,
  scatterRows,
  sumRows,
} from './rows.ts';
import { convert } from './vector-ops.ts';

type Tail<F> = F extends (runner: KernelRunner, ...rest: infer R) => infer Ret
  ? (...args: R) => Ret
  : never;

/** A gated-MLP kernel with its activation bound. */
type GatedForward = (gate: BufferRef, up: BufferRef, out: BufferRef, n: number) => void;
type GatedBackward = (
  gate: BufferRef,
  up: BufferRef,
  dout: BufferRef,
  dgate: BufferRef,
  dup: BufferRef,
  n: number,
) => void;

export type WebGpuKernelsOptions = AcquireOptions & GemmChoiceOptions;

export class WebGpuKernels {
  readonly runner: KernelRunner;
  /** Which GEMM kernels run (tuned by `create`; settable to compare plans in one process). */
  gemmPlan: GemmPlan = DEFAULT_GEMM_PLAN;

  constructor(readonly context: WebGpuContext) {
    this.runner = new KernelRunner(context.device);
  }

  /** Acquires a device and picks its GEMM plan (forced, cached or tuned now: tuner.ts). */
  static async create(options: WebGpuKernelsOptions = {}): Promise<WebGpuKernels> {
    const kernels = new WebGpuKernels(await acquireWebGpu(options));
    kernels.gemmPlan = await chooseGemmPlan(kernels.context, kernels.runner, options);
    return kernels;
  }

  get device(): GPUDevice {
    return this.context.device;
  }

  gemm = (args: GemmArgs): void => gemm(this.runner, args, this.gemmPlan);
  attentionForward: Tail<typeof attentionForward> = (...args) =>
    attentionForward(this.runner, ...args);
  attentionBackward: Tail<typeof attentionBackward> = (...args) =>
    attentionBackward(this.runner, ...args);
  rmsnormForward: Tail<typeof rmsnormForward> = (...args) => rmsnormForward(this.runner, ...args);
  rmsnormBackward: Tail<typeof rmsnormBackward> = (...args) =>
    rmsnormBackward(this.runner, ...args);
  ropeApply: Tail<typeof ropeApply> = (...args) => ropeApply(this.runner, ...args);
  gatedForward: Tail<typeof gatedForward> = (...args) => gatedForward(this.runner, ...args);
  gatedBackward: Tail<typeof gatedBackward> = (...args) => gatedBackward(this.runner, ...args);
  swigluForward: GatedForward = (...args) => gatedForward(this.runner, 'silu', ...args);
  swigluBackward: GatedBackward = (...args) => gatedBackward(this.runner, 'silu', ...args);
  ceChunkForward: Tail<typeof ceChunkForward> = (...args) => ceChunkForward(this.runner, ...args);
  ceChunkBackward: Tail<typeof ceChunkBackward> = (...args) =>
    ceChunkBackward(this.runner, ...args);

  ceOnlineChunk: Tail<typeof ceOnlineChunk> = (...args) => ceOnlineChunk(this.runner, ...args);
  ceOnlineFinish: Tail<typeof ceOnlineFinish> = (...args) => ceOnlineFinish(this.runner, ...args);
  ceLossFinish: Tail<typeof ceLossFinish> = (...args) => ceLossFinish(this.runner, ...args);
  embeddingForward: Tail<typeof embeddingForward> = (...args) =>
    embeddingForward(this.runner, ...args);
  gatherRows: Tail<typeof gatherRows> = (...args) => gatherRows(this.runner, ...args);
  scatterRows: Tail<typeof scatterRows> = (...args) => scatterRows(this.runner, ...args);
  scatterAddRows: Tail<typeof scatterAddRows> = (...args) => scatterAddRows(this.runner, ...args);
  sumRows: Tail<typeof sumRows> = (...args) => sumRows(this.runner, ...args);
  scaleColumns: Tail<typeof scaleColumns> = (...args) => scaleColumns(this.runner, ...args);
  columnDots: Tail<typeof columnDots> = (...args) => columnDots(this.runner, ...args);
  convert: Tail<typeof convert> = (...args) => convert(this.runner, ...args);

  flush(): void {
    this.runner.flush();
  }

  write(ref: BufferRef, data: ArrayBufferView): void {
    this.runner.write(ref, data);
  }

  read(ref: BufferRef, bytes: number): Promise<ArrayBuffer> {
    return this.runner.read(ref, bytes);
  }

  destroy(): void {
    this.runner.flush();
    this.context.destroy();
  }
}
