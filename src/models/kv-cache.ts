/**
 * Key/value cache for incremental decoding: per layer [batch, capacity, kvHeads·headDim] f32, plus
 * a key mask so left-padded prompts in a batch never attend to padding.
 */
import type { AttentionParams } from '../engine/kernels/attention.ts';
import { Tensor, getBackend } from '../engine/tensor.ts';
import type { DecoderConfig } from './config.ts';

export class KVCache {
  readonly keys: Tensor[];
  readonly values: Tensor[];
  /** Number of positions filled (the same for every row). */
  length = 0;
  private readonly mask: Int32Array;
  private maskTensor: Tensor;
  private writeRows: Tensor | null = null;

  constructor(
    config: DecoderConfig,
    readonly batch: number,
    readonly capacity: number,
  ) {
    const width = config.numKvHeads * config.headDim;
    this.keys = Array.from({ length: config.numLayers }, () =>
      Tensor.empty([batch, capacity, width]).keep(),
    );
    this.values = Array.from({ length: config.numLayers }, () =>
      Tensor.empty([batch, capacity, width]).keep(),
    );
    this.mask = new Int32Array(batch * capacity);
    this.maskTensor = Tensor.from(this.mask, [batch * capacity], 'i32').keep();
  }

  /** Reserves `seq` new positions per row; `attentionMask` [batch·seq] marks padding among them. */
  append(batch: number, seq: number, attentionMask?: Int32Array): void {
    if (batch !== this.batch) throw new Error(`KV cache holds ${this.batch} rows, got ${batch}`);
    if (this.length + seq > this.capacity) {
      throw new Error(
        `KV cache full: ${this.length} + ${seq} positions exceed its capacity ${this.capacity}`,
      );
    }
    const rows = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        const slot = b * this.capacity + this.length + t;
        this.mask[slot] = attentionMask ? attentionMask[b * seq + t]! : 1;
        rows[b * seq + t] = slot;
      }
    }
    this.length += seq;
    getBackend().upload(this.maskTensor.storage, this.maskTensor.byteOffset, this.mask);
    this.writeRows?.dispose();
    this.writeRows = Tensor.from(rows, [rows.length], 'i32').keep();
  }

  /** Stores this step's keys/values for `layer` and attends over everything cached so far. */
  attend(
    layer: number,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    params: AttentionParams,
    out = Tensor.empty(q.shape),
  ): Tensor {
    const kern = getBackend().kernels;
    const rows = this.writeRows!;
    const write = { rows: rows.size, cols: k.shape.at(-1)! };
    kern.scatterRows(
      { src: k.operand(), idx: rows.operand(), dst: this.keys[layer]!.operand() },
      write,
    );
    kern.scatterRows(
      { src: v.operand(), idx: rows.operand(), dst: this.values[layer]!.operand() },
      write,
    );
    const lse = Tensor.empty([params.B, params.H, params.Tq]);
    kern.attentionForward(
      {
        q: q.operand(),
        k: this.keys[layer]!.operand(),
        v: this.values[layer]!.operand(),
        out: out.operand(),
        lse: lse.operand(),
        keyMask: this.maskTensor.operand(),
        segIds: null,
      },
      params,
    );
    return out;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values, this.maskTensor]) t.dispose();
    this.writeRows?.dispose();
  }
}
