// The registry's kernel suite (test/engine/kernel-cases.ts) on WebGPU: through the backend, and
// through runners with limits far below the device's, so that work splits into binding-sized
// chunks and long launches fold into grid y.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  KERNELS,
  type KernelName,
  type RegistryKernels,
} from '../../src/engine/kernels/registry.ts';
import { KernelRunner } from '../../src/engine/webgpu/runner.ts';
import { registerKernelCases, type Tolerances } from '../engine/kernel-cases.ts';
import { kernelsOnRunner } from './runner-kernels.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const setup = await useWebGpuBackend();
const tolerances: Tolerances = {
  exact: { rtol: 2e-6, atol: 1e-9 },
  float: { rtol: 1e-4, atol: 1e-5 },
  angles: { rtol: 1e-4, atol: 1e-5 },
};

/** Registry kernels WebGPU does not implement yet, and why (their tests are skipped saying so). */
const missing = { quantizeRows: 'no WGSL yet: WebGPU loads quantize on the host' };

registerKernelCases('webgpu', () => setup.backend().kernels, tolerances, {
  skip: setup.skip,
  missing,
});

// Kernels that split work over bindings (flat vectors, table rows) ...
const CHUNKED: KernelName[] = [
  'adamwStep',
  'add',
  'axpby',
  'fill',
  'dropout',
  'scaleByScalar',
  'sumSquares',
  'gatedForward',
  'gatedBackward',
  'scaleColumns',
  'embeddingForward',
  'embeddingBackward',
  'gatherRows',
  'scatterRows',
  'scatterAddRows',
  'dequantizeRows',
  'quantizedMatmul',
];
const tiny = memo(() => narrowKernels({ maxBindingBytes: 8192 }));
registerKernelCases('webgpu, 8 KiB bindings', () => tiny(), tolerances, {
  skip: setup.skip,
  only: CHUNKED,
});
// ... and every kernel whose launch is one-dimensional (all but attention's per-head grids and
// the sum of squares' fixed partials) folds an over-long grid into y.
const ONE_DIMENSIONAL = (Object.keys(KERNELS) as KernelName[]).filter(
  (name) => !name.startsWith('attention') && name !== 'sumSquares',
);
// (64 KiB bindings: at most 64 workgroups of 256 per flat launch, 8 x 8 fits them.)
const narrowGrid = memo(() =>
  narrowKernels({ maxBindingBytes: 65536, maxWorkgroupsPerDimension: 8 }),
);
registerKernelCases('webgpu, 8 workgroups per grid dimension', () => narrowGrid(), tolerances, {
  skip: setup.skip,
  only: ONE_DIMENSIONAL,
  missing,
});

// The reductions (wgsl-reduce.ts) run on subgroups where the adapter has them (the backend's
// runner above); these runs force the workgroup-memory path that adapters without them take.
const REDUCING: KernelName[] = [
  'rmsnormForward',
  'rmsnormBackward',
  'sumSquares',
  'ceOnlineChunk',
  'ceLossFinish',
];
test(
  'the backend reduces on subgroups exactly where the adapter has them',
  { skip: setup.skip },
  () => {
    const { runner, context } = setup.backend().gpu;
    assert.equal(runner.subgroups, context.subgroups);
  },
);
const noSubgroups = memo(() => narrowKernels({ subgroups: false }));
registerKernelCases('webgpu, workgroup-memory reductions', () => noSubgroups(), tolerances, {
  skip: setup.skip,
  only: REDUCING,
});

function memo<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

function narrowKernels(limits: ConstructorParameters<typeof KernelRunner>[1]): RegistryKernels {
  const runner = new KernelRunner(setup.backend().gpu.device, limits);
  return kernelsOnRunner(runner);
}
