/** The flat kernels on the CPU (kernels/vector-ops.ts): wasm where the pool helps, else JS. */
import { dropoutKeepScale, dropoutThreshold } from '../../dropout.ts';
import { VECTOR_OPS } from '../../kernels/vector-ops.ts';
import { hostKernel, wasmKernel, type CpuTable } from '../launcher.ts';

export const vectorOps: CpuTable<typeof VECTOR_OPS> = {
  add: wasmKernel(VECTOR_OPS.add, 'add', ({ n }) => [n, 2]),
  axpby: ({ x, y }, { n, alpha, beta }, cpu) => {
    const xs = cpu.f32(x, n);
    const ys = cpu.f32(y, n);
    if (beta === 0) for (let i = 0; i < n; i++) ys[i] = alpha * xs[i]!;
    else for (let i = 0; i < n; i++) ys[i] = alpha * xs[i]! + beta * ys[i]!;
  },
  fill: ({ x }, { n, value }, cpu) => {
    (x.dtype === 'i32' ? cpu.i32(x, n) : cpu.f32(x, n)).fill(value);
  },
  // The wasm export takes the mask's threshold and keep scale rather than p.
  dropout: ({ x, out }, { n, p, seed }, cpu) => {
    const args = [x.ptr, out.ptr, n, dropoutThreshold(p), dropoutKeepScale(p), seed >>> 0];
    cpu.run('dropoutApply', n, 12, args);
  },
  convert: hostKernel(VECTOR_OPS.convert),
  scaleByScalar: ({ x, factor }, { n, divisor }, cpu) => {
    const scale = cpu.f32(factor, 1)[0]! / divisor;
    const xs = cpu.f32(x, n);
    for (let i = 0; i < n; i++) xs[i] = xs[i]! * scale;
  },
};
