/**
 * Key/value cache for incremental decoding: per layer [batch, capacity, kvHeads·headDim] f32, plus
 * a key mask so left-padded prompts in a batch never attend to padding. Sliding-window layers
 * whose window is below the capacity keep only their window, in a ring (kv-window.ts).
 */
import type { AttentionParams } from '../engine/kernels/attention.ts';
import { Tensor, getBackend } from '../engine/tensor.ts';
import type { DecoderConfig } from './config.ts';
import { SlidingWindowKV, attendCached } from './kv-window.ts';

export class KVCache {
  /** Full-length keys and values by layer (the layers that attend to every position). */
  private readonly keys = new Map<number, Tensor>();
  private readonly values = new Map<number, Tensor>();
  /** The sliding-window layers' rings, one per window size. */
  private readonly rings: SlidingWindowKV[] = [];
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
    const byWindow = new Map<number, number[]>();
    config.layers.forEach(({ window }, layer) => {
      if (window !== null && window < capacity) {
        byWindow.set(window, [...(byWindow.get(window) ?? []), layer]);
      } else {
        this.keys.set(layer, Tensor.empty([batch, capacity, width]).keep());
        this.values.set(layer, Tensor.empty([batch, capacity, width]).keep());
      }
    });
    for (const [window, layers] of byWindow) {
      this.rings.push(new SlidingWindowKV(layers, batch, window, width));
    }
    this.mask = new Int32Array(batch * capacity);
    this.maskTensor = Tensor.from(this.mask, [batch * capacity], 'i32').keep();
  }

  /** How many positions `layer` keeps: the capacity, or its window in a ring. */
  positionsKept(layer: number): number {
    return this.rings.find((r) => r.has(layer))?.window ?? this.capacity;
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
    for (const ring of this.rings) ring.prepare(this.length, seq, attentionMask);
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
    const ring = this.rings.find((r) => r.has(layer));
    if (ring) return ring.attend(layer, q, k, v, params, out);
    const kern = getBackend().kernels;
    const rows = this.writeRows!;
    const write = { rows: rows.size, cols: k.shape.at(-1)! };
    const [keys, values] = [this.keys.get(layer)!, this.values.get(layer)!];
    kern.scatterRows({ src: k.operand(), idx: rows.operand(), dst: keys.operand() }, write);
    kern.scatterRows({ src: v.operand(), idx: rows.operand(), dst: values.operand() }, write);
    return attendCached(q, keys, values, this.maskTensor, out, params);
  }

  dispose(): void {
    for (const t of [...this.keys.values(), ...this.values.values(), this.maskTensor]) t.dispose();
    for (const ring of this.rings) ring.dispose();
    this.writeRows?.dispose();
  }
}
