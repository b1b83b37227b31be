/**
 * Row movement kernels of the Backend interface: embedding lookup and its gradient, gather /
 * scatter of rows by i32 index, and column sums. The index lists live on the GPU, so which table
 * rows are touched is unknown here: tables are bound whole, or in binding-sized row chunks where
 * each dispatch only handles the indices that fall into its chunk.
 *
 * Accumulating scatters (embedding gradient, scatterAddRows) may see one row index many times and
 * WGSL has no float atomics, so one thread owns one column and walks the indices in order: no
 * races, and the same summation order as the CPU backend.
 */
import type { KernelDef } from './kernel-def.ts';
import { specBindings, wgslLoader } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX, forEachBindingChunk } from './elementwise.ts';
import { advance, type BufferRef } from './buffer-ref.ts';
import type { KernelRunner } from './runner.ts';
import { ROWS } from '../kernels/rows.ts';
import type { GpuArg, GpuTable } from './kernel-table.ts';
import { DTYPE_BYTES, type DType } from '../dtype.ts';

/**
 * Whole rows of `cols` elements between an operand's offset and the end of its storage: the rows
 * a table read or written through device-side indices may touch.
 */
function rowsInStorage(arg: GpuArg, cols: number): number {
  return Math.floor(arg.bytes / (cols * DTYPE_BYTES[arg.dtype]));
}

function floatDtype(dtype: DType, what: string): 'f32' | 'f16' | 'bf16' {
  if (dtype === 'i32') throw new Error(`${what} on an i32 tensor`);
  return dtype;
}

/** Calls `run(firstRow, rowCount)` over table rows in chunks whose bytes fit one binding. */
function forEachTableChunk(
  runner: KernelRunner,
  tableRows: number,
  rowBytes: number,
  run: (firstRow: number, rowCount: number) => void,
): void {
  const chunkRows = Math.max(
    1,
    Math.floor((runner.maxBindingBytes - runner.bindingAlignment) / rowBytes),
  );
  for (let first = 0; first < tableRows; first += chunkRows)
    run(first, Math.min(chunkRows, tableRows - first));
}

function embeddingKernel(dtype: 'f32' | 'f16' | 'bf16'): KernelDef {
  return {
    key: `embedding-forward:${dtype}`,
    params: { count: 'u32', dim: 'u32', firstRow: 'i32', rowCount: 'i32' },
    buffers: [
      { name: 'table', dtype, access: 'read' },
      { name: 'ids', dtype: 'i32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    prelude: wgslLoader('load', 'table', dtype),
    body: `
  ${FLAT_INDEX}
  if (i >= P.count * P.dim) { return; }
  let row = ids[P.ids_off + i / P.dim] - P.firstRow;
  if (row < 0 || row >= P.rowCount) { return; }
  out[P.out_off + i] = load(P.table_off + u32(row) * P.dim + i % P.dim);
`,
  };
}

/** Rows of 4-byte words: halves move as pairs, so 2-byte rows need an even column count. */
function rowWords(cols: number, elementBytes: 2 | 4, what: string): number {
  if ((cols * elementBytes) % 4 !== 0)
    throw new Error(`${what}: rows of ${cols} 2-byte elements are not whole words`);
  return (cols * elementBytes) / 4;
}

const GATHER: KernelDef = {
  key: 'gather-rows',
  params: { rows: 'u32', words: 'u32', firstRow: 'i32', rowCount: 'i32' },
  buffers: [
    { name: 'src', dtype: 'u32', access: 'read' },
    { name: 'idx', dtype: 'i32', access: 'read' },
    { name: 'dst', dtype: 'u32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.rows * P.words) { return; }
  let row = idx[P.idx_off + i / P.words] - P.firstRow;
  if (row < 0 || row >= P.rowCount) { return; }
  dst[P.dst_off + i] = src[P.src_off + u32(row) * P.words + i % P.words];
`,
};

function scatterKernel(accumulate: boolean): KernelDef {
  return {
    key: `scatter-rows${accumulate ? ':add' : ''}`,
    params: { rows: 'u32', cols: 'u32', firstRow: 'i32', rowCount: 'i32' },
    buffers: [
      { name: 'src', dtype: 'f32', access: 'read' },
      { name: 'idx', dtype: 'i32', access: 'read' },
      { name: 'dst', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    body: `
  let c = gid.x;
  if (c >= P.cols) { return; }
  for (var i = 0u; i < P.rows; i++) {
    let row = idx[P.idx_off + i] - P.firstRow;
    if (row < 0 || row >= P.rowCount) { continue; }
    let d = P.dst_off + u32(row) * P.cols + c;
    dst[d] = ${accumulate ? 'dst[d] + ' : ''}src[P.src_off + i * P.cols + c];
  }
`,
  };
}

function scatter(
  runner: KernelRunner,
  accumulate: boolean,
  src: BufferRef,
  idx: BufferRef,
  dst: BufferRef,
  dstRows: number,
  rows: number,
  cols: number,
): void {
  const def = scatterKernel(accumulate);
  forEachTableChunk(runner, dstRows, cols * 4, (firstRow, rowCount) => {
    runner.dispatch(
      def,
      {
        src: { ref: src, elements: rows * cols },
        idx: { ref: idx, elements: rows },
        dst: { ref: advance(dst, firstRow * cols * 4), elements: rowCount * cols },
      },
      { rows, cols, firstRow, rowCount },
      [Math.ceil(cols / ELEMENTWISE_WORKGROUP)],
    );
  });
}

const SUM_ROWS: KernelDef = {
  key: 'sum-rows',
  ...specBindings(ROWS.sumRows),
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  let c = gid.x;
  if (c >= P.cols) { return; }
  var acc = out[P.out_off + c];
  for (var r = 0u; r < P.rows; r++) { acc += x[P.x_off + r * P.cols + c]; }
  out[P.out_off + c] = acc;
`,
};

const SCALE_COLUMNS: KernelDef = {
  key: 'scale-columns',
  params: { n: 'u32', cols: 'u32', first: 'u32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read' },
    { name: 'scale', dtype: 'f32', access: 'read' },
    { name: 'out', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  out[P.out_off + i] = x[P.x_off + i] * scale[P.scale_off + (P.first + i) % P.cols];
`,
};

const COLUMN_DOTS: KernelDef = {
  key: 'column-dots',
  ...specBindings(ROWS.columnDots),
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  let c = gid.x;
  if (c >= P.cols) { return; }
  var acc = out[P.out_off + c];
  for (var r = 0u; r < P.rows; r++) {
    acc += a[P.a_off + r * P.cols + c] * b[P.b_off + r * P.cols + c];
  }
  out[P.out_off + c] = acc;
`,
};

export const rows: GpuTable<typeof ROWS> = {
  /** out [count, dim] f32 = rows ids[i] of table [tableRows, dim] (f32, f16 or bf16, widened). */
  embeddingForward: ({ table, ids, out }, { count, dim }, runner) => {
    const tableDtype = floatDtype(table.dtype, 'embedding');
    const tableRows = rowsInStorage(table, dim);

    const rowBytes = dim * (tableDtype === 'f32' ? 4 : 2);
    const def = embeddingKernel(tableDtype);
    forEachTableChunk(runner, tableRows, rowBytes, (firstRow, rowCount) => {
      runner.dispatch(
        def,
        {
          table: { ref: advance(table, firstRow * rowBytes), elements: rowCount * dim },
          ids: { ref: ids, elements: count },
          out: { ref: out, elements: count * dim },
        },
        { count, dim, firstRow, rowCount },
        runner.grid1d(Math.ceil((count * dim) / ELEMENTWISE_WORKGROUP)),
      );
    });
  },
  /** dst row i = src row idx[i] (src has srcRows rows); any dtype, moved as raw bits. */
  gatherRows: ({ src, idx, dst }, { rows, cols }, runner) => {
    const srcRows = rowsInStorage(src, cols);
    const elementBytes = DTYPE_BYTES[src.dtype] as 2 | 4;

    const words = rowWords(cols, elementBytes, 'gatherRows');
    forEachTableChunk(runner, srcRows, words * 4, (firstRow, rowCount) => {
      runner.dispatch(
        GATHER,
        {
          src: { ref: advance(src, firstRow * words * 4), elements: rowCount * words },
          idx: { ref: idx, elements: rows },
          dst: { ref: dst, elements: rows * words },
        },
        { rows, words, firstRow, rowCount },
        runner.grid1d(Math.ceil((rows * words) / ELEMENTWISE_WORKGROUP)),
      );
    });
  },
  /** dst row idx[i] = src row i (f32; with repeated indices the last one wins). */
  scatterRows: ({ src, idx, dst }, { rows, cols }, runner) => {
    const dstRows = rowsInStorage(dst, cols);

    scatter(runner, false, src, idx, dst, dstRows, rows, cols);
  },
  /** dst row idx[i] += src row i (f32); also the embedding gradient (src = dout, dst = dTable). */
  scatterAddRows: ({ src, idx, dst }, { rows, cols }, runner) => {
    const dstRows = rowsInStorage(dst, cols);

    scatter(runner, true, src, idx, dst, dstRows, rows, cols);
  },
  /** out [cols] += column sums of x [rows, cols]. */
  // The gradient of a lookup is a scatter-add of dout into the table's rows.
  embeddingBackward: ({ dout, ids, dTable }, { count, dim }, runner) =>
    scatter(runner, true, dout, ids, dTable, rowsInStorage(dTable, dim), count, dim),
  sumRows: ({ x, out }, { rows, cols }, runner) => {
    runner.dispatch(
      SUM_ROWS,
      { x: { ref: x, elements: rows * cols }, out: { ref: out, elements: cols } },
      { rows, cols },
      [Math.ceil(cols / ELEMENTWISE_WORKGROUP)],
    );
  },
  /** out [rows, cols] = x · scale[col] (out may be x); chunked per binding along the flat index. */
  scaleColumns: ({ x, scale, out }, { rows, cols }, runner) => {
    forEachBindingChunk(runner, rows * cols, (start, count) => {
      runner.dispatch(
        SCALE_COLUMNS,
        {
          x: { ref: advance(x, start * 4), elements: count },
          scale: { ref: scale, elements: cols },
          out: { ref: advance(out, start * 4), elements: count },
        },
        { n: count, cols, first: start },
        runner.grid1d(Math.ceil(count / ELEMENTWISE_WORKGROUP)),
      );
    });
  },
  /** out [cols] += Σ over rows of a ⊙ b [rows, cols] (one thread per column, as sumRows). */
  columnDots: ({ a, b, out }, { rows, cols }, runner) => {
    runner.dispatch(
      COLUMN_DOTS,
      {
        a: { ref: a, elements: rows * cols },
        b: { ref: b, elements: rows * cols },
        out: { ref: out, elements: cols },
      },
      { rows, cols },
      [Math.ceil(cols / ELEMENTWISE_WORKGROUP)],
    );
  },
};
