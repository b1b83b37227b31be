/**
 * Cross-entropy over one vocabulary chunk (columns [colOffset, colOffset + cols) of the full
 * logits), for the fused LM-head loss that never materialises all logits at once.
 *
 * Forward folds the chunk into a running log-sum-exp per row (runMax, runSum) and records the
 * target's logit when the target falls in the chunk. A row with runSum == 0 has seen no chunk yet,
 * so runMax's initial value (-Infinity by convention) is never computed with. Backward rewrites the
 * chunk in place as rowScale[r] * (softmax - onehot), exact zeros where rowScale is 0.
 *
 * The online variant (ceOnlineChunk / ceOnlineFinish) serves the fused loss that accumulates
 * dLoss/dh directly: each chunk becomes exp(logit - runMax) in place and the accumulator rows are
 * rescaled whenever a row's running max moves.
 */
import type { KernelDef } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX } from './elementwise.ts';
import type { BufferRef } from './runner.ts';
import { withReductions } from './wgsl-reduce.ts';
import { CROSS_ENTROPY } from '../kernels/cross-entropy.ts';
import type { GpuTable } from './kernel-table.ts';

const WORKGROUP = 256;

const BACKWARD: KernelDef = {
  key: 'ce-chunk-backward',
  params: { count: 'u32', cols: 'u32', colOffset: 'i32' },
  buffers: [
    { name: 'logits', dtype: 'f32', access: 'read_write' },
    { name: 'targets', dtype: 'i32', access: 'read' },
    { name: 'lse', dtype: 'f32', access: 'read' },
    { name: 'rowScale', dtype: 'f32', access: 'read' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.count) { return; }
  let row = i / P.cols;
  let col = i % P.cols;
  let s = rowScale[P.rowScale_off + row];
  // Unsupervised rows are exact zeros even where their lse is meaningless.
  if (s == 0.0) { logits[P.logits_off + i] = 0.0; return; }
  var grad = exp(logits[P.logits_off + i] - lse[P.lse_off + row]);
  if (targets[P.targets_off + row] - P.colOffset == i32(col)) { grad -= 1.0; }
  logits[P.logits_off + i] = s * grad;
`,
};

function onlineChunkKernel(hasAcc: boolean): KernelDef {
  return {
    key: `ce-online-chunk${hasAcc ? ':acc' : ''}`,
    params: { rows: 'u32', cols: 'u32', colOffset: 'i32', accCols: 'u32' },
    buffers: [
      { name: 'logits', dtype: 'f32', access: 'read_write' },
      { name: 'targets', dtype: 'i32', access: 'read' },
      { name: 'runMax', dtype: 'f32', access: 'read_write' },
      { name: 'runSum', dtype: 'f32', access: 'read_write' },
      { name: 'tgtLogit', dtype: 'f32', access: 'read_write' },
      ...(hasAcc ? [{ name: 'acc', dtype: 'f32' as const, access: 'read_write' as const }] : []),
    ],
    workgroupSize: [WORKGROUP],
    body: `
  let row = wid.x + wid.y * nwg.x;
  if (row >= P.rows) { return; }
  let base = P.logits_off + row * P.cols;
  // Read before the reduction's barriers, after which other invocations overwrite the chunk.
  if (lid.x == 0u) {
    let local = targets[P.targets_off + row] - P.colOffset;
    if (local >= 0 && local < i32(P.cols)) { tgtLogit[P.tgtLogit_off + row] = logits[base + u32(local)]; }
  }
  var localMax = -3.0e38;
  for (var j = lid.x; j < P.cols; j += ${WORKGROUP}u) { localMax = max(localMax, logits[base + j]); }
  let chunkMax = rowMax(lid.x, localMax);
  let previousSum = runSum[P.runSum_off + row];
  let previousMax = runMax[P.runMax_off + row];
  // runSum == 0: no chunk seen yet (runMax is -inf), so there is nothing to rescale.
  var newMax = chunkMax;
  var rescale = 0.0;
  if (previousSum != 0.0) {
    newMax = max(chunkMax, previousMax);
    rescale = exp(previousMax - newMax);
  }
  var localSum = 0.0;
  for (var j = lid.x; j < P.cols; j += ${WORKGROUP}u) {
    let e = exp(logits[base + j] - newMax);
    logits[base + j] = e;
    localSum += e;
  }
  let chunkSum = rowSum(lid.x, localSum);
  ${
    hasAcc
      ? `if (rescale != 1.0) {
    for (var j = lid.x; j < P.accCols; j += ${WORKGROUP}u) { acc[P.acc_off + row * P.accCols + j] *= rescale; }
  }`
      : ''
  }
  if (lid.x == 0u) {
    runSum[P.runSum_off + row] = previousSum * rescale + chunkSum;
    runMax[P.runMax_off + row] = newMax;
  }
`,
  };
}

const ONLINE_FINISH: KernelDef = {
  key: 'ce-online-finish',
  params: { count: 'u32', cols: 'u32', scale: 'f32' },
  buffers: [
    { name: 'acc', dtype: 'f32', access: 'read_write' },
    { name: 'runSum', dtype: 'f32', access: 'read' },
    { name: 'targetRows', dtype: 'f32', access: 'read' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.count) { return; }
  let value = acc[P.acc_off + i] / runSum[P.runSum_off + i / P.cols];
  acc[P.acc_off + i] = P.scale * (value - targetRows[P.targetRows_off + i]);
`,
};

const LOSS_FINISH: KernelDef = {
  key: 'ce-loss-finish',
  params: { rows: 'u32', divisor: 'f32' },
  buffers: [
    { name: 'runMax', dtype: 'f32', access: 'read' },
    { name: 'runSum', dtype: 'f32', access: 'read' },
    { name: 'tgtLogit', dtype: 'f32', access: 'read' },
    { name: 'lse', dtype: 'f32', access: 'read_write' },
    { name: 'loss', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [WORKGROUP],
  body: `
  var partial = 0.0;
  for (var r = lid.x; r < P.rows; r += ${WORKGROUP}u) {
    let value = runMax[P.runMax_off + r] + log(runSum[P.runSum_off + r]);
    lse[P.lse_off + r] = value;
    partial += value - tgtLogit[P.tgtLogit_off + r];
  }
  let total = lossSum(lid.x, partial);
  if (lid.x == 0u) { loss[P.loss_off] = total / P.divisor; }
`,
};

export const crossEntropy: GpuTable<typeof CROSS_ENTROPY> = {
  /**
   * One chunk of the online loss: logits [rows, cols] become exp(logit - newMax) in place,
   * runMax / runSum / tgtLogit `[rows]` are updated, and acc [rows, accCols] (null: none) is rescaled.
   */
  ceOnlineChunk: (
    { logits, targets, runMax, runSum, tgtLogit, acc },
    { rows, cols, colOffset, accCols },
    runner,
  ) => {
    const perRow = (ref: BufferRef) => ({ ref, elements: rows });
    runner.dispatch(
      withReductions(
        onlineChunkKernel(acc !== null),
        WORKGROUP,
        { rowMax: 'max', rowSum: 'sum' },
        runner.subgroups,
      ),
      {
        logits: { ref: logits, elements: rows * cols },
        targets: perRow(targets),
        runMax: perRow(runMax),
        runSum: perRow(runSum),
        tgtLogit: perRow(tgtLogit),
        ...(acc ? { acc: { ref: acc, elements: rows * accCols } } : {}),
      },
      { rows, cols, colOffset, accCols },
      runner.grid1d(rows),
    );
  },
  /** acc [rows, cols] = scale * (acc[r] / runSum[r] - targetRows[r]): the finished dLoss/dh. */
  ceOnlineFinish: ({ acc, runSum, targetRows }, { rows, cols, scale }, runner) => {
    const count = rows * cols;
    runner.dispatch(
      ONLINE_FINISH,
      {
        acc: { ref: acc, elements: count },
        runSum: { ref: runSum, elements: rows },
        targetRows: { ref: targetRows, elements: count },
      },
      { count, cols, scale },
      runner.grid1d(Math.ceil(count / ELEMENTWISE_WORKGROUP)),
    );
  },
  /** Rewrites the chunk as rowScale[r] * (exp(logit - lse[r]) - [column is the row's target]). */
  ceChunkBackward: ({ logits, targets, lse, rowScale }, { rows, cols, colOffset }, runner) => {
    const count = rows * cols;
    runner.dispatch(
      BACKWARD,
      {
        logits: { ref: logits, elements: count },
        targets: { ref: targets, elements: rows },
        lse: { ref: lse, elements: rows },
        rowScale: { ref: rowScale, elements: rows },
      },
      { count, cols, colOffset },
      runner.grid1d(Math.ceil(count / ELEMENTWISE_WORKGROUP)),
    );
  },
  /**
   * lse[r] = runMax[r] + log(runSum[r]); loss[0] = Σ (lse[r] − tgtLogit[r]) / divisor. One
   * workgroup: it runs once per loss over one value per supervised row.
   */
  ceLossFinish: ({ runMax, runSum, tgtLogit, lse, loss }, { rows, divisor }, runner) => {
    const perRow = (ref: BufferRef) => ({ ref, elements: rows });
    runner.dispatch(
      withReductions(LOSS_FINISH, WORKGROUP, { lossSum: 'sum' }, runner.subgroups),
      {
        runMax: perRow(runMax),
        runSum: perRow(runSum),
        tgtLogit: perRow(tgtLogit),
        lse: perRow(lse),
        loss: { ref: loss, elements: 1 },
      },
      { rows, divisor },
      [1],
    );
  },
};
