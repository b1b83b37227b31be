/**
 * Row movement on the CPU, in JS over views of the shared memory: these kernels move little data
 * per call (a batch's embeddings, a few rows) and the pool would cost more than they do.
 */
import { DTYPE_BYTES } from '../../dtype.ts';
import { ROWS } from '../../kernels/rows.ts';
import { hostKernel, type CpuTable } from '../launcher.ts';

export const rows: CpuTable<typeof ROWS> = {
  // f32 tables copy whole rows; half tables widen through the reference.
  embeddingForward: (buffers, params, cpu) => {
    const { table, ids, out } = buffers;
    if (table.dtype !== 'f32') return hostKernel(ROWS.embeddingForward)(buffers, params, cpu);
    const { count, dim } = params;
    const [from, idList, to] = [cpu.view(table), cpu.i32(ids, count), cpu.f32(out, count * dim)];
    for (let i = 0; i < count; i++)
      to.set(from.subarray(idList[i]! * dim, (idList[i]! + 1) * dim), i * dim);
  },
  embeddingBackward: hostKernel(ROWS.embeddingBackward),
  // Rows of any dtype, as bytes.
  gatherRows: ({ src, idx, dst }, { rows, cols }, cpu) => {
    const rowBytes = DTYPE_BYTES[src.dtype] * cols;
    const ids = cpu.i32(idx, rows);
    const from = cpu.u8(src, src.bytes);
    const to = cpu.u8(dst, rows * rowBytes);
    for (let i = 0; i < rows; i++)
      to.set(from.subarray(ids[i]! * rowBytes, (ids[i]! + 1) * rowBytes), i * rowBytes);
  },
  // Whole rows copied (decoding writes every layer's new key and value rows through it).
  scatterRows: ({ src, idx, dst }, { rows, cols }, cpu) => {
    const ids = cpu.i32(idx, rows);
    const [from, to] = [cpu.f32(src, rows * cols), cpu.f32(dst, dst.bytes >> 2)];
    for (let i = 0; i < rows; i++) to.set(from.subarray(i * cols, (i + 1) * cols), ids[i]! * cols);
  },
  scatterAddRows: hostKernel(ROWS.scatterAddRows),
  sumRows: hostKernel(ROWS.sumRows),
  scaleColumns: hostKernel(ROWS.scaleColumns),
  columnDots: hostKernel(ROWS.columnDots),
};
