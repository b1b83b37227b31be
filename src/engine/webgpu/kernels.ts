/**
 * A WebGPU device with its kernel runner and GEMM plan: what the backend records kernels into
 * (the registry's through kernel-table.ts, GEMM through `gemm`). Kernels are recorded, not run:
 * call `flush()` (or use `write` / `read`, which flush) before touching buffers by other means.
 */
import { acquireWebGpu, type AcquireOptions, type WebGpuContext } from './device.ts';
import { DEFAULT_GEMM_PLAN, gemm, type GemmArgs, type GemmPlan } from './gemm.ts';
import { chooseAttentionPlan, chooseGemmPlan, type GemmChoiceOptions } from './tuner.ts';
import { useAttentionPlan } from './attention-plan.ts';
import { KernelRunner, type BufferRef } from './runner.ts';

export type WebGpuKernelsOptions = AcquireOptions & GemmChoiceOptions;

export class WebGpuKernels {
  readonly runner: KernelRunner;
  /** Which GEMM kernels run (tuned by `create`; settable to compare plans in one process). */
  gemmPlan: GemmPlan = DEFAULT_GEMM_PLAN;

  constructor(readonly context: WebGpuContext) {
    this.runner = new KernelRunner(context.device);
  }

  /** Acquires a device and picks its GEMM and attention plans (forced, cached or tuned now: tuner.ts). */
  static async create(options: WebGpuKernelsOptions = {}): Promise<WebGpuKernels> {
    const kernels = new WebGpuKernels(await acquireWebGpu(options));
    kernels.gemmPlan = await chooseGemmPlan(kernels.context, kernels.runner, options);
    useAttentionPlan(
      kernels.runner,
      await chooseAttentionPlan(kernels.context, kernels.runner, options),
    );
    return kernels;
  }

  get device(): GPUDevice {
    return this.context.device;
  }

  gemm = (args: GemmArgs): void => gemm(this.runner, args, this.gemmPlan);

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
