/**
 * Quantized weights (kernels/quant.ts) on WebGPU: dequantizeRows (one thread per output element)
 * and quantizedMatmul (one thread per output, a dot product over a row of codes). Codes are bytes
 * packed in u32 words (little-endian, as on the host). A launch covers as many rows of W as its
 * bindings hold, binds only the words of codes and absmax those rows read, and the shader indexes
 * them relative to those ranges (`codeBase`, `blockBase`, `nestedBase`).
 */
import { QUANT } from '../kernels/quant.ts';
import { advance, type BufferArg } from './buffer-ref.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX } from './elementwise.ts';
import type { BufferDecl, KernelDef, ParamType } from './kernel-def.ts';
import type { GpuArg, GpuTable } from './kernel-table.ts';
import type { KernelRunner } from './runner.ts';

/** What both kernels share: the quantized buffers, the layout params and `weightAt(e)`. */
function quantizedParts(nested: boolean): {
  params: Record<string, ParamType>;
  buffers: BufferDecl[];
  prelude: string;
} {
  const scale = nested
    ? `let q = (absmax[P.absmax_off + (b - P.blockBase) / 4u] >> (((b - P.blockBase) % 4u) * 8u)) & 255u;
  let scale = nestedTable[P.nestedTable_off + q] * nestedAbsmax[P.nestedAbsmax_off + b / P.nestedBlockSize - P.nestedBase] + P.nestedOffset;`
    : 'let scale = absmax[P.absmax_off + b - P.blockBase];';
  return {
    params: {
      bits: 'u32',
      blockSize: 'u32',
      nestedBlockSize: 'u32',
      nestedOffset: 'f32',
      postScale: 'f32',
      codeBase: 'u32',
      blockBase: 'u32',
      nestedBase: 'u32',
    },
    buffers: [
      { name: 'codes', dtype: 'u32', access: 'read' },
      { name: 'absmax', dtype: nested ? 'u32' : 'f32', access: 'read' },
      ...(nested
        ? [
            { name: 'nestedAbsmax', dtype: 'f32', access: 'read' } as const,
            { name: 'nestedTable', dtype: 'f32', access: 'read' } as const,
          ]
        : []),
      { name: 'table', dtype: 'f32', access: 'read' },
    ],
    prelude: `
/** Code of element \`local\` of the bound codes: 4-bit (high nibble first) or a byte. */
fn codeAt(local: u32) -> u32 {
  if (P.bits == 8u) {
    return (codes[P.codes_off + local / 4u] >> ((local % 4u) * 8u)) & 255u;
  }
  let k = local % 8u;
  let shift = (k >> 1u) * 8u + select(4u, 0u, (k & 1u) == 1u);
  return (codes[P.codes_off + local / 8u] >> shift) & 15u;
}
/** Flat element e of W, dequantized. */
fn weightAt(e: u32) -> f32 {
  let b = e / P.blockSize;
  ${scale}
  let value = table[P.table_off + codeAt(e - P.codeBase)] * scale;
  return value * P.postScale;
}`,
  };
}

function dequantizeKernel(nested: boolean): KernelDef {
  const parts = quantizedParts(nested);
  return {
    key: `dequantize-rows${nested ? ':nested' : ''}`,
    params: { first: 'u32', count: 'u32', ...parts.params },
    buffers: [...parts.buffers, { name: 'out', dtype: 'f32', access: 'read_write' }],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    prelude: parts.prelude,
    body: `
  ${FLAT_INDEX}
  if (i >= P.count) { return; }
  out[P.out_off + i] = weightAt(P.first + i);
`,
  };
}

function matmulKernel(nested: boolean, bias: boolean): KernelDef {
  const parts = quantizedParts(nested);
  return {
    key: `quantized-matmul${nested ? ':nested' : ''}${bias ? ':bias' : ''}`,
    params: {
      rows: 'u32',
      cols: 'u32',
      firstRow: 'u32',
      count: 'u32',
      ldy: 'u32',
      ...parts.params,
    },
    buffers: [
      { name: 'x', dtype: 'f32', access: 'read' },
      ...parts.buffers,
      ...(bias ? [{ name: 'bias', dtype: 'f32', access: 'read' } as const] : []),
      { name: 'y', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    prelude: parts.prelude,
    body: `
  ${FLAT_INDEX}
  if (i >= P.rows * P.count) { return; }
  let m = i / P.count;
  let n = i % P.count;
  let rowStart = (P.firstRow + n) * P.cols;
  var sum = 0.0;
  for (var k = 0u; k < P.cols; k++) {
    sum += x[P.x_off + m * P.cols + k] * weightAt(rowStart + k);
  }
  ${bias ? 'sum += bias[P.bias_off + n];' : ''}
  y[P.y_off + m * P.ldy + n] = sum;
`,
  };
}

const DEQUANTIZE = { plain: dequantizeKernel(false), nested: dequantizeKernel(true) };
const MATMUL = [false, true].map((nested) =>
  [false, true].map((bias) => matmulKernel(nested, bias)),
);

interface Layout {
  codes: GpuArg;
  absmax: GpuArg;
  nestedAbsmax: GpuArg | null;
  table: GpuArg;
  nestedTable: GpuArg | null;
}

interface LayoutParams {
  cols: number;
  bits: number;
  blockSize: number;
  nested: boolean;
  nestedBlockSize: number;
  nestedOffset: number;
  postScale: number;
}

/** Calls `run(firstRow, rows)` over W's rows in launches whose bindings hold `rowBytes` a row. */
function forEachLaunch(
  runner: KernelRunner,
  what: string,
  rows: number,
  rowBytes: number,
  run: (row: number, count: number) => void,
): void {
  const perLaunch = Math.floor((runner.maxBindingBytes - runner.bindingAlignment) / rowBytes);
  if (perLaunch < 1) throw new Error(`${what}: a row of ${rowBytes} bytes exceeds a binding`);
  for (let row = 0; row < rows; row += perLaunch) run(row, Math.min(perLaunch, rows - row));
}

/** The quantized buffers bound for W's rows [firstRow, firstRow + rows), and their bases. */
function bindRows(
  b: Layout,
  p: LayoutParams,
  firstRow: number,
  rows: number,
): { buffers: Record<string, BufferArg>; params: Record<string, number> } {
  const { cols, bits, blockSize, nestedBlockSize } = p;
  const perWord = 32 / bits;
  const first = firstRow * cols;
  const end = first + rows * cols;
  const codeWord = Math.floor(first / perWord);
  const [block, blockEnd] = [Math.floor(first / blockSize), Math.ceil(end / blockSize)];
  // Plain absmax: f32 per block; nested: a byte per block, bound from its word.
  const blockBase = p.nested ? Math.floor(block / 4) * 4 : block;
  const nestedBase = p.nested ? Math.floor(block / nestedBlockSize) : 0;
  return {
    buffers: {
      codes: { ref: advance(b.codes, codeWord * 4), elements: Math.ceil(end / perWord) - codeWord },
      absmax: {
        ref: advance(b.absmax, p.nested ? blockBase : blockBase * 4),
        elements: p.nested ? Math.ceil(blockEnd / 4) - blockBase / 4 : blockEnd - blockBase,
      },
      table: { ref: b.table, elements: 1 << bits },
      ...(p.nested && {
        nestedAbsmax: {
          ref: advance(b.nestedAbsmax!, nestedBase * 4),
          elements: Math.ceil(blockEnd / nestedBlockSize) - nestedBase,
        },
        nestedTable: { ref: b.nestedTable!, elements: 256 },
      }),
    },
    params: {
      bits,
      blockSize,
      nestedBlockSize,
      nestedOffset: p.nestedOffset,
      postScale: p.postScale,
      codeBase: codeWord * perWord,
      blockBase,
      nestedBase,
    },
  };
}

export const quant: GpuTable<typeof QUANT> = {
  dequantizeRows: (buffers, p, runner) => {
    const { cols } = p;
    forEachLaunch(runner, 'dequantizeRows', p.rows, cols * 4, (row, rows) => {
      const bound = bindRows(buffers, p, p.firstRow + row, rows);
      runner.dispatch(
        p.nested ? DEQUANTIZE.nested : DEQUANTIZE.plain,
        {
          ...bound.buffers,
          out: { ref: advance(buffers.out, row * cols * 4), elements: rows * cols },
        },
        { first: (p.firstRow + row) * cols, count: rows * cols, ...bound.params },
        runner.grid1d(Math.ceil((rows * cols) / ELEMENTWISE_WORKGROUP)),
      );
    });
  },
  quantizedMatmul: (buffers, p, runner) => {
    const { x, bias, y } = buffers;
    const def = MATMUL[p.nested ? 1 : 0]![bias ? 1 : 0]!;
    forEachLaunch(runner, 'quantizedMatmul', p.count, (p.cols * p.bits) / 8, (row, count) => {
      const bound = bindRows(buffers, p, p.firstRow + row, count);
      runner.dispatch(
        def,
        {
          x: { ref: x, elements: p.rows * p.cols },
          ...bound.buffers,
          ...(bias && { bias: { ref: advance(bias, row * 4), elements: count } }),
          y: { ref: advance(y, row * 4), elements: (p.rows - 1) * p.ldy + count },
        },
        {
          rows: p.rows,
          cols: p.cols,
          firstRow: p.firstRow + row,
          count,
          ldy: p.ldy,
          ...bound.params,
        },
        runner.grid1d(Math.ceil((p.rows * count) / ELEMENTWISE_WORKGROUP)),
      );
    });
  },
  // No WGSL yet: on WebGPU, whose memory the host does not see, loading quantizes on the host
  // (models/quantized-load.ts) and uploads the codes.
  quantizeRows: () => {
    throw new Error('quantizeRows has no WebGPU kernel yet: WebGPU loads quantize on the host');
  },
};
