import { countTargets, type EncodedExample } from './examples.ts';
import { IGNORE_INDEX } from './prompt-template.ts';

/** A training batch; every array is row-major [batchSize, seqLen]. */
export interface Batch {
  batchSize: number;
  seqLen: number;
  inputIds: Int32Array;
  /** Unshifted: labels[t] is the token at t or -100; the model's output at t is scored against labels[t+1]. */
  labels: Int32Array;
  /** 1 for real tokens, 0 for padding. */
  attentionMask: Int32Array;
  /** Position of each token within its example (restarting per packed example); 0 on padding. */
  positionIds: Int32Array;
  /** Packing: 1-based example id per token within its row, 0 = padding. */
  segmentIds?: Int32Array;
  /** Positions t with labels[t+1] != -100 within a row: the number of tokens the loss averages over. */
  numTargets: number;
}

/**
 * Builds a batch from rows, each row one example or (packing) several examples laid end to end.
 * Rows are padded to the longest row of this batch with `padId`, labels -100 and mask 0.
 * Packed examples get their own positions (0, 1, ...) and segment ids, and the label of each
 * example's first token is -100, so no token is trained to predict the next document.
 */
export function collate(
  rows: readonly (readonly EncodedExample[])[],
  padId: number,
  packed: boolean,
): Batch {
  const batchSize = rows.length;
  const seqLen = Math.max(0, ...rows.map(rowLength));
  const size = batchSize * seqLen;
  const batch: Batch = {
    batchSize,
    seqLen,
    inputIds: new Int32Array(size).fill(padId),
    labels: new Int32Array(size).fill(IGNORE_INDEX),
    attentionMask: new Int32Array(size),
    positionIds: new Int32Array(size),
    segmentIds: packed ? new Int32Array(size) : undefined,
    numTargets: 0,
  };
  rows.forEach((row, b) => {
    let offset = b * seqLen;
    row.forEach((example, segment) => {
      const n = example.inputIds.length;
      batch.inputIds.set(example.inputIds, offset);
      batch.labels.set(example.labels, offset);
      if (packed) {
        batch.labels[offset] = IGNORE_INDEX;
        batch.segmentIds!.fill(segment + 1, offset, offset + n);
      }
      batch.attentionMask.fill(1, offset, offset + n);
      for (let t = 0; t < n; t++) batch.positionIds[offset + t] = t;
      offset += n;
    });
    batch.numTargets += countTargets(batch.labels, b * seqLen, (b + 1) * seqLen);
  });
  return batch;
}

function rowLength(row: readonly EncodedExample[]): number {
  return row.reduce((sum, example) => sum + example.inputIds.length, 0);
}
