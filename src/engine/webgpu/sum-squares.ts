/**
 * Sum of squares of a flat f32 vector (for the global gradient norm), as a two-pass reduction:
 * up to PARTIALS workgroups each reduce a grid-strided share to one partial in a scratch buffer,
 * then one workgroup adds the partials into `out[0]`. Accumulating (rather than overwriting) lets
 * the norm over many parameter tensors land in a single slot with one download at the end.
 */
import type { KernelDef } from './kernel-def.ts';
import { withReductions } from './wgsl-reduce.ts';
import { forEachBindingChunk } from './elementwise.ts';
import { advance, type BufferRef } from './buffer-ref.ts';
import type { KernelRunner } from './runner.ts';
import { SUM_SQUARES } from '../kernels/sum-squares.ts';
import type { GpuTable } from './kernel-table.ts';

const WORKGROUP = 256;
const PARTIALS = 1024;

const withWorkgroupSum = (def: KernelDef, subgroups: boolean) =>
  withReductions(def, WORKGROUP, { workgroupSum: 'sum' }, subgroups);

const PARTIAL_SUMS: KernelDef = {
  key: 'sumsq-partials',
  params: { n: 'u32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read' },
    { name: 'partials', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [WORKGROUP],
  body: `
  var acc = 0.0;
  for (var i = gid.x; i < P.n; i += nwg.x * ${WORKGROUP}u) {
    let value = x[P.x_off + i];
    acc = fma(value, value, acc);
  }
  let total = workgroupSum(lid.x, acc);
  if (lid.x == 0u) { partials[P.partials_off + wid.x] = total; }
`,
};

const FINAL_SUM: KernelDef = {
  key: 'sumsq-final',
  params: { count: 'u32', accumulate: 'u32' },
  buffers: [
    { name: 'partials', dtype: 'f32', access: 'read' },
    { name: 'out', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [WORKGROUP],
  body: `
  var acc = 0.0;
  for (var i = lid.x; i < P.count; i += ${WORKGROUP}u) { acc += partials[P.partials_off + i]; }
  let total = workgroupSum(lid.x, acc);
  if (lid.x == 0u) {
    var previous = 0.0;
    if (P.accumulate != 0u) { previous = out[P.out_off]; }
    out[P.out_off] = previous + total;
  }
`,
};

/** out[0] = (accumulate ? out[0] : 0) + sum(x[i]^2). */
function sumSquaresInto(
  runner: KernelRunner,
  x: BufferRef,
  n: number,
  out: BufferRef,
  accumulate = false,
): void {
  const partials = runner.scratchBuffer('sumsq-partials', PARTIALS * 4);
  let first = true;
  // An empty vector still runs once so that a non-accumulating call writes 0.
  forEachBindingChunk(runner, Math.max(n, 1), (start, count) => {
    const groups = Math.min(PARTIALS, Math.ceil(count / WORKGROUP));
    runner.dispatch(
      withWorkgroupSum(PARTIAL_SUMS, runner.subgroups),
      {
        x: { ref: advance(x, start * 4), elements: count },
        partials: { ref: partials, elements: groups },
      },
      { n: Math.min(count, n) },
      [groups],
    );
    runner.dispatch(
      withWorkgroupSum(FINAL_SUM, runner.subgroups),
      { partials: { ref: partials, elements: groups }, out: { ref: out, elements: 1 } },
      { count: groups, accumulate: accumulate || !first ? 1 : 0 },
      [1],
    );
    first = false;
  });
}

export const sumSquares: GpuTable<typeof SUM_SQUARES> = {
  sumSquares: async ({ x }, { n }, runner) => {
    const result = runner.scratchBuffer('sum-squares-result', 4);
    sumSquaresInto(runner, x, n, result);
    return new Float32Array(await runner.read(result, 4))[0]!;
  },
};
