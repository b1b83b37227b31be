/**
 * Fused LM head + cross-entropy, Hugging Face's causal-LM loss: mean over supervised positions of
 * −log softmax(h·Eᵀ)[target]. Only supervised rows are visited and the vocabulary is streamed in
 * chunks, so no [tokens × vocab] logits tensor ever exists.
 *
 * With a frozen head the gradient w.r.t. h is built in the same pass as the loss: an online
 * softmax keeps acc = Σ_v exp(logit_v − max)·E_v, rescaled whenever the running max moves, so
 * dL/dh = acc/sum − E_target needs no second sweep over the vocabulary (2 GEMMs per chunk instead
 * of 3). A trainable head (full fine-tuning) recomputes the logits in the backward pass instead.
 */
import { needsGrad, record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { kernels, zeroedGrad } from './util.ts';

/** Bytes of one logits chunk; big enough for efficient GEMMs, small enough to stay in cache-ish. */
const CHUNK_BYTES = 16 << 20;

export interface LmHeadLossResult {
  /** Scalar f32 tensor [1]. */
  loss: Tensor;
  /** Number of supervised positions the mean was taken over. */
  targets: number;
}

export interface LmHeadLossOptions {
  /** Replaces the number of targets as the mean's denominator. */
  divisor?: number;
  /** Vocabulary entries per chunk (default: what fits CHUNK_BYTES of logits). */
  chunkSize?: number;
}

/**
 * h [n, dim]; table [vocab, dim] (the LM head / tied embedding, any float dtype); targets[i] is the
 * token position i must predict, −100 to ignore (callers apply the causal shift).
 */
export function lmHeadLoss(
  h: Tensor,
  table: Tensor,
  targets: Int32Array,
  opts: LmHeadLossOptions = {},
): LmHeadLossResult {
  const k = kernels();
  const [vocab, dim] = table.shape as [number, number];
  const rowsIdx: number[] = [];
  const targetIds: number[] = [];
  targets.forEach((t, i) => {
    if (t === -100) return;
    if (t < 0 || t >= vocab)
      throw new Error(`label ${t} at position ${i} is outside the vocabulary (${vocab})`);
    rowsIdx.push(i);
    targetIds.push(t);
  });
  const rows = rowsIdx.length;
  if (rows === 0) return { loss: Tensor.zeros([1]), targets: 0 };
  const denominator = opts.divisor ?? rows;

  const rowIndex = Tensor.from(Int32Array.from(rowsIdx), [rows], 'i32');
  const targetIndex = Tensor.from(Int32Array.from(targetIds), [rows], 'i32');
  const hs = Tensor.empty([rows, dim]);
  k.gatherRows(
    { src: h.operand(), idx: rowIndex.operand(), dst: hs.operand() },
    { rows, cols: dim },
  );

  const trainableHead = needsGrad(table);
  const onlineGrad = needsGrad(h) && !trainableHead;
  const chunk =
    opts.chunkSize ?? Math.max(256, Math.min(vocab, Math.floor(CHUNK_BYTES / 4 / rows)));
  const logits = Tensor.empty([rows, chunk]);
  const runMax = Tensor.empty([rows]);
  const runSum = Tensor.zeros([rows]);
  const tgtLogit = Tensor.zeros([rows]);
  k.fill({ x: runMax.operand() }, { n: rows, value: -Infinity });
  const acc = onlineGrad ? Tensor.zeros([rows, dim]) : null;

  for (let c0 = 0; c0 < vocab; c0 += chunk) {
    const cols = Math.min(chunk, vocab - c0);
    k.gemm(hs.operand(), table.operand(c0 * dim), logits.operand(), {
      m: rows,
      n: cols,
      k: dim,
      transB: true,
    });
    k.ceOnlineChunk(
      {
        logits: logits.operand(),
        targets: targetIndex.operand(),
        runMax: runMax.operand(),
        runSum: runSum.operand(),
        tgtLogit: tgtLogit.operand(),
        acc: acc?.operand() ?? null,
      },
      { rows, cols, colOffset: c0, accCols: dim },
    );
    if (acc) {
      k.gemm(logits.operand(), table.operand(c0 * dim), acc.operand(), {
        m: rows,
        n: dim,
        k: cols,
        beta: 1,
      });
    }
  }

  // Finished on the device: a GPU backend would otherwise stall here for a read.
  const loss = Tensor.empty([1]);
  const lse = Tensor.empty([rows]);
  k.ceLossFinish(
    {
      runMax: runMax.operand(),
      runSum: runSum.operand(),
      tgtLogit: tgtLogit.operand(),
      lse: lse.operand(),
      loss: loss.operand(),
    },
    { rows, divisor: denominator },
  );

  if (acc) {
    const targetRows = Tensor.empty([rows, dim]);
    k.embeddingForward(
      { table: table.operand(), ids: targetIndex.operand(), out: targetRows.operand() },
      { count: rows, dim },
    );
    k.ceOnlineFinish(
      { acc: acc.operand(), runSum: runSum.operand(), targetRows: targetRows.operand() },
      { rows, cols: dim, scale: 1 / denominator },
    );
    record(loss, [h], (dLoss) => {
      k.scaleByScalar({ x: acc.operand(), factor: dLoss.operand() }, { n: acc.size, divisor: 1 });
      k.scatterAddRows(
        { src: acc.operand(), idx: rowIndex.operand(), dst: zeroedGrad(h).operand() },
        { rows, cols: dim },
      );
    });
  } else {
    record(loss, [h, table], (dLoss) => {
      const rowScale = Tensor.empty([rows]);
      k.fill({ x: rowScale.operand() }, { n: rows, value: 1 });
      k.scaleByScalar(
        { x: rowScale.operand(), factor: dLoss.operand() },
        { n: rows, divisor: denominator },
      );
      const dhs = Tensor.zeros([rows, dim]);
      const dTable = table.requiresGrad ? zeroedGrad(table) : null;
      for (let c0 = 0; c0 < vocab; c0 += chunk) {
        const cols = Math.min(chunk, vocab - c0);
        k.gemm(hs.operand(), table.operand(c0 * dim), logits.operand(), {
          m: rows,
          n: cols,
          k: dim,
          transB: true,
        });
        k.ceChunkBackward(
          {
            logits: logits.operand(),
            targets: targetIndex.operand(),
            lse: lse.operand(),
            rowScale: rowScale.operand(),
          },
          { rows, cols, colOffset: c0 },
        );
        k.gemm(logits.operand(), table.operand(c0 * dim), dhs.operand(), {
          m: rows,
          n: dim,
          k: cols,
          beta: 1,
        });
        if (dTable) {
          k.gemm(logits.operand(), hs.operand(), dTable.operand(c0 * dim), {
            m: cols,
            n: dim,
            k: rows,
            transA: true,
            beta: 1,
          });
        }
      }
      if (h.requiresGrad)
        k.scatterAddRows(
          { src: dhs.operand(), idx: rowIndex.operand(), dst: zeroedGrad(h).operand() },
          { rows, cols: dim },
        );
    });
  }
  return { loss, targets: rows };
}
