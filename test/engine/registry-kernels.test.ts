// The registry's kernel suite (kernel-cases.ts) on the CPU backends, WebAssembly and every native
// ISA variant this CPU runs: through the backend (2 threads), and through a host that runs every
// parallel call as three uneven slices on this thread while claiming 64 threads, so each kernel's
// [start, end) handling and the attention backward's other work split are exercised. Bit-exact
// where the kernel computes in the reference's float32 order.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import '../../src/engine/cpu/node-host.ts';
import type { Backend } from '../../src/engine/backend.ts';
import { CpuBackend, cpuArg } from '../../src/engine/cpu/backend.ts';
import { CPU_KERNELS } from '../../src/engine/cpu/kernel-table.ts';
import { CpuLauncher, type KernelHost } from '../../src/engine/cpu/launcher.ts';
import { bindKernels } from '../../src/engine/kernels/registry.ts';
import { NATIVE_KERNELS } from '../../src/engine/native/backend.ts';
import { setBackend } from '../../src/engine/tensor.ts';
import { nativeTestVariants, useNativeBackend } from '../cpu-backends.ts';
import { registerKernelCases, type Tolerances } from './kernel-cases.ts';

const tolerances: Tolerances = {
  exact: { rtol: 0, atol: 0 },
  float: { rtol: 2e-5, atol: 2e-5 },
  angles: { rtol: 0, atol: 0 },
};

/**
 * A host over `rt`'s kernels and memory that claims 64 threads and runs each parallel call as
 * three uneven slices on this thread, recording them in `slices` (kernel name → the ranges of its
 * most split call: a call with fewer than three work items has fewer slices).
 */
function slicedHost(rt: KernelHost, slices: Map<string, number[][]>): KernelHost {
  return {
    exports: rt.exports,
    threads: 64,
    parallelFor(name, total, args) {
      const cuts = [0, Math.floor(total / 3), Math.floor((2 * total) / 3) + 1, total];
      const ranges = [0, 1, 2]
        .map((s) => [Math.min(cuts[s]!, total), Math.min(cuts[s + 1]!, total)])
        .filter(([start, end]) => start! < end!);
      if (ranges.length > (slices.get(name)?.length ?? 0)) slices.set(name, ranges);
      const kernel = rt.exports[name] as (...a: number[]) => void;
      for (const [start, end] of ranges) kernel(...args, start!, end!);
    },
    f32: (ptr, n) => rt.f32(ptr, n),
    i32: (ptr, n) => rt.i32(ptr, n),
    u16: (ptr, n) => rt.u16(ptr, n),
    u8: (ptr, n) => rt.u8(ptr, n),
  };
}

/** The suite on one backend: its own kernels, then its kernel table sliced over its kernel host. */
function registerBackendSuite(
  label: string,
  backend: () => Backend,
  table: typeof CPU_KERNELS,
  host: () => KernelHost,
) {
  before(() => setBackend(backend()));
  registerKernelCases(label, () => backend().kernels, tolerances);
  const slices = new Map<string, number[][]>();
  let sliced: ReturnType<typeof bindKernels> | undefined;
  registerKernelCases(
    `${label}, sliced work, 64 threads`,
    () =>
      (sliced ??= bindKernels(
        table,
        cpuArg,
        new CpuLauncher(slicedHost(host(), slices), { minParallelFlops: 0 }),
      )),
    tolerances,
  );
  test(`${label}: the sliced host split the kernels, the attention backward per query and key block`, () => {
    for (const name of [
      'attentionForward',
      'attentionBackwardKeyValue',
      'rmsnormForward',
      'dropoutApply',
      'adamwStep',
    ])
      assert.ok((slices.get(name)?.length ?? 0) > 1, `${name} was not split`);
  });
}

const wasm = await CpuBackend.create({ threads: 2 });
describe('wasm', () =>
  registerBackendSuite(
    'cpu',
    () => wasm,
    CPU_KERNELS,
    () => wasm.runtime,
  ));

const native = nativeTestVariants();
if (native.skip) test('native CPU backend', { skip: native.skip }, () => {});
for (const variant of native.variants) {
  describe(`native ${variant}`, () =>
    registerBackendSuite(
      `native ${variant}`,
      () => useNativeBackend(variant),
      NATIVE_KERNELS,
      () => useNativeBackend(variant).runtime,
    ));
}
