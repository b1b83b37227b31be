/**
 * Sum of squares of a flat f32 vector (for the global gradient norm), as a two-pass reduction:
 * up to PARTIALS workgroups each reduce a grid-strided share to one partial in a scratch buffer,
 * then one workgroup adds the partials into its result slot.
 *
 * The gradient norm asks for one sum per parameter tensor (a few hundred for LoRA) and needs them
 * all before it can go on, so the sums requested in one synchronous run of the caller share one
 * read-back: each gets a slot of a result buffer, and the slots are copied to the host together
 * once the caller yields (or the buffer is full). One wait on the device per norm, not per tensor.
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

/** Result slots per read-back. */
const SLOTS = 1024;

/** The sums recorded since the last read-back of the result slots. */
interface PendingSums {
  count: number;
  /** Settles when the slots are read, which happens once the batch is closed. */
  values: Promise<Float32Array>;
  close: () => void;
}

const pending = new WeakMap<KernelRunner, PendingSums>();

function openBatch(runner: KernelRunner): PendingSums {
  const slots = runner.scratchBuffer('sum-squares-results', SLOTS * 4);
  let close!: () => void;
  const values = new Promise<Float32Array>((resolve, reject) => {
    close = () => {
      if (pending.get(runner) !== batch) return;
      pending.delete(runner);
      // The copy is recorded now, before any later sum can reuse the slots.
      runner.read(slots, batch.count * 4).then((bytes) => resolve(new Float32Array(bytes)), reject);
    };
  });
  const batch: PendingSums = { count: 0, values, close };
  pending.set(runner, batch);
  queueMicrotask(close);
  return batch;
}

export const sumSquares: GpuTable<typeof SUM_SQUARES> = {
  sumSquares: async ({ x }, { n }, runner) => {
    const batch = pending.get(runner) ?? openBatch(runner);
    const slot = batch.count++;
    const slots = runner.scratchBuffer('sum-squares-results', SLOTS * 4);
    sumSquaresInto(runner, x, n, advance(slots, slot * 4));
    if (batch.count === SLOTS) batch.close();
    return (await batch.values)[slot]!;
  },
};
