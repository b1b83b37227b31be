/**
 * The chunked cross-entropy of the fused LM-head loss (ops/lm-head-loss.ts): logits [rows, cols]
 * cover vocabulary ids colOffset .. colOffset + cols − 1 of each row; targets i32 [rows] (a
 * target outside the chunk, or −100, touches nothing).
 */
import { defineKernel } from './spec.ts';

/**
 * One chunk of the online log-sum-exp: turns logits into exp(logit − newMax) in place, keeps the
 * per-row running max / sum (start at −∞ / 0; lse = runMax + log(runSum) after the last chunk),
 * records the target logit, and rescales the per-row accumulator acc [rows, accCols] when the max
 * moves (the next GEMM adds the chunk's weights times the head rows into it; null: no accumulator).
 */
export const ceOnlineChunk = defineKernel({
  name: 'ceOnlineChunk',
  buffers: {
    logits: { dtype: 'f32', access: 'read_write' },
    targets: { dtype: 'i32', access: 'read' },
    runMax: { dtype: 'f32', access: 'read_write' },
    runSum: { dtype: 'f32', access: 'read_write' },
    tgtLogit: { dtype: 'f32', access: 'read_write' },
    acc: { dtype: 'f32', access: 'read_write', optional: true },
  },
  params: { rows: 'u32', cols: 'u32', colOffset: 'u32', accCols: 'u32' },
  reference(
    { logits, targets, runMax, runSum, tgtLogit, acc },
    { rows, cols, colOffset, accCols },
  ) {
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      let chunkMax = -Infinity;
      for (let c = 0; c < cols; c++) chunkMax = Math.max(chunkMax, logits[row + c]!);
      const target = targets[r]! - colOffset;
      if (target >= 0 && target < cols) tgtLogit[r] = logits[row + target]!;
      const oldMax = runMax[r]!;
      const newMax = Math.max(oldMax, chunkMax);
      const rescale = oldMax === -Infinity ? 0 : Math.exp(oldMax - newMax);
      let sum = 0;
      for (let c = 0; c < cols; c++) {
        const e = Math.exp(logits[row + c]! - newMax);
        logits[row + c] = e;
        sum += e;
      }
      runSum[r] = runSum[r]! * rescale + sum;
      runMax[r] = newMax;
      if (acc && rescale !== 1) {
        for (let c = r * accCols; c < (r + 1) * accCols; c++) acc[c] = acc[c]! * rescale;
      }
    }
  },
});

/** acc [rows, cols] = scale · (acc[r] / runSum[r] − targetRows[r]): the finished dLoss/dh. */
export const ceOnlineFinish = defineKernel({
  name: 'ceOnlineFinish',
  buffers: {
    acc: { dtype: 'f32', access: 'read_write' },
    runSum: { dtype: 'f32', access: 'read' },
    targetRows: { dtype: 'f32', access: 'read' },
  },
  params: { rows: 'u32', cols: 'u32', scale: 'f32' },
  reference({ acc, runSum, targetRows }, { rows, cols, scale }) {
    for (let r = 0; r < rows; r++) {
      const inv = 1 / runSum[r]!;
      for (let c = r * cols; c < (r + 1) * cols; c++)
        acc[c] = scale * (acc[c]! * inv - targetRows[c]!);
    }
  },
});

/**
 * In place: logits → rowScale[r] · (exp(logit − lse[r]) − onehot(target)): the trainable-head
 * path (full fine-tuning). Rows with rowScale 0 (unsupervised) become exact zeros.
 */
export const ceChunkBackward = defineKernel({
  name: 'ceChunkBackward',
  buffers: {
    logits: { dtype: 'f32', access: 'read_write' },
    targets: { dtype: 'i32', access: 'read' },
    lse: { dtype: 'f32', access: 'read' },
    rowScale: { dtype: 'f32', access: 'read' },
  },
  params: { rows: 'u32', cols: 'u32', colOffset: 'u32' },
  reference({ logits, targets, lse, rowScale }, { rows, cols, colOffset }) {
    for (let r = 0; r < rows; r++) {
      const s = rowScale[r]!;
      for (let c = 0; c < cols; c++) {
        const onehot = targets[r] === colOffset + c ? 1 : 0;
        const i = r * cols + c;
        logits[i] = s === 0 ? 0 : s * (Math.exp(logits[i]! - lse[r]!) - onehot);
      }
    }
  },
});

/**
 * Finishes the loss on the device (WebGPU reads only asynchronously): lse[r] = runMax[r] +
 * log(runSum[r]) and loss[0] = Σ_r (lse[r] − tgtLogit[r]) / divisor, lse rounded to f32 before
 * it is summed, as the backward sees it.
 */
export const ceLossFinish = defineKernel({
  name: 'ceLossFinish',
  buffers: {
    runMax: { dtype: 'f32', access: 'read' },
    runSum: { dtype: 'f32', access: 'read' },
    tgtLogit: { dtype: 'f32', access: 'read' },
    lse: { dtype: 'f32', access: 'write' },
    loss: { dtype: 'f32', access: 'write' },
  },
  params: { rows: 'u32', divisor: 'f32' },
  reference({ runMax, runSum, tgtLogit, lse, loss }, { rows, divisor }) {
    let total = 0;
    for (let r = 0; r < rows; r++) {
      lse[r] = runMax[r]! + Math.log(runSum[r]!);
      total += lse[r]! - tgtLogit[r]!;
    }
    loss[0] = total / divisor;
  },
});

export const CROSS_ENTROPY = {
  ceOnlineChunk,
  ceOnlineFinish,
  ceChunkBackward,
  ceLossFinish,
} as const;
