/**
 * Dequantization of quantized weights (kernels/quant.ts) on WebGPU: one thread per output element.
 * Codes are bytes packed in u32 words (little-endian, as on the host). A launch covers as many
 * rows as one binding holds; each launch binds only the words of codes and absmax its rows read,
 * and the shader indexes them relative to those ranges (`codeBase`, `blockBase`, `nestedBase`).
 */
import { QUANT } from '../kernels/quant.ts';
import { advance } from './buffer-ref.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX } from './elementwise.ts';
import type { KernelDef } from './kernel-def.ts';
import type { GpuTable } from './kernel-table.ts';

/** The shader, with the absmax read plain (f32 per block) or nested (a byte per block). */
function dequantizeKernel(nested: boolean): KernelDef {
  const scale = nested
    ? `let q = blockByte(b - P.blockBase);
  let scale = nestedTable[P.nestedTable_off + q] * nestedAbsmax[P.nestedAbsmax_off + b / P.nestedBlockSize - P.nestedBase] + P.nestedOffset;`
    : 'let scale = absmax[P.absmax_off + b - P.blockBase];';
  return {
    key: `dequantize-rows${nested ? ':nested' : ''}`,
    params: {
      first: 'u32',
      count: 'u32',
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
      { name: 'out', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
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
${
  nested
    ? `fn blockByte(index: u32) -> u32 {
  return (absmax[P.absmax_off + index / 4u] >> ((index % 4u) * 8u)) & 255u;
}`
    : ''
}`,
    body: `
  ${FLAT_INDEX}
  if (i >= P.count) { return; }
  let e = P.first + i;
  let b = e / P.blockSize;
  ${scale}
  let value = table[P.table_off + codeAt(e - P.codeBase)] * scale;
  out[P.out_off + i] = value * P.postScale;
`,
  };
}

const KERNELS = { plain: dequantizeKernel(false), nested: dequantizeKernel(true) };

export const quant: GpuTable<typeof QUANT> = {
  dequantizeRows: ({ codes, absmax, nestedAbsmax, table, nestedTable, out }, p, runner) => {
    const { cols, bits, blockSize, nestedBlockSize } = p;
    const rowsPerLaunch = Math.floor(
      (runner.maxBindingBytes - runner.bindingAlignment) / (cols * 4),
    );
    if (rowsPerLaunch < 1) throw new Error(`dequantizeRows: a row of ${cols} exceeds a binding`);
    const perWord = 32 / bits;
    for (let row = 0; row < p.rows; row += rowsPerLaunch) {
      const rows = Math.min(rowsPerLaunch, p.rows - row);
      const first = (p.firstRow + row) * cols;
      const end = first + rows * cols;
      const codeWord = Math.floor(first / perWord);
      const [block, blockEnd] = [Math.floor(first / blockSize), Math.ceil(end / blockSize)];
      // Plain absmax: f32 per block; nested: a byte per block, bound from its word.
      const blockBase = p.nested ? Math.floor(block / 4) * 4 : block;
      const nestedBase = p.nested ? Math.floor(block / nestedBlockSize) : 0;
      const buffers = {
        codes: {
          ref: advance(codes, codeWord * 4),
          elements: Math.ceil(end / perWord) - codeWord,
        },
        absmax: {
          ref: advance(absmax, p.nested ? blockBase : blockBase * 4),
          elements: p.nested ? Math.ceil(blockEnd / 4) - blockBase / 4 : blockEnd - blockBase,
        },
        table: { ref: table, elements: 1 << bits },
        out: { ref: advance(out, row * cols * 4), elements: rows * cols },
        ...(p.nested && {
          nestedAbsmax: {
            ref: advance(nestedAbsmax!, nestedBase * 4),
            elements: Math.ceil(blockEnd / nestedBlockSize) - nestedBase,
          },
          nestedTable: { ref: nestedTable!, elements: 256 },
        }),
      };
      runner.dispatch(
        p.nested ? KERNELS.nested : KERNELS.plain,
        buffers,
        {
          first,
          count: rows * cols,
          bits,
          blockSize,
          nestedBlockSize,
          nestedOffset: p.nestedOffset,
          postScale: p.postScale,
          codeBase: codeWord * perWord,
          blockBase,
          nestedBase,
        },
        runner.grid1d(Math.ceil((rows * cols) / ELEMENTWISE_WORKGROUP)),
      );
    }
  },
};
