/** RMSNorm on the CPU: wasm over rows; the weight gradient in a second, column-parallel pass. */
import { RMSNORM } from '../../kernels/rmsnorm.ts';
import { wasmKernel, type CpuTable } from '../launcher.ts';

export const rmsnorm: CpuTable<typeof RMSNORM> = {
  rmsnormForward: wasmKernel(RMSNORM.rmsnormForward, 'rmsnormForward', ({ rows, dim }) => [
    rows,
    3 * dim,
  ]),
  // dx per row; dw per column, so that no two jobs add into the same dw element.
  rmsnormBackward: ({ x, w, rstd, dout, dx, dw }, { rows, dim }, cpu) => {
    cpu.run('rmsnormBackwardInput', rows, 6 * dim, [
      x.ptr,
      w.ptr,
      rstd.ptr,
      dout.ptr,
      dx.ptr,
      rows,
      dim,
    ]);
    if (dw)
      cpu.run('rmsnormBackwardWeight', dim, 3 * rows, [
        x.ptr,
        rstd.ptr,
        dout.ptr,
        dw.ptr,
        rows,
        dim,
      ]);
  },
};
