/**
 * The KV cache of the sliding-window layers of one window size W: a ring of W slots per row
 * (position p lives in slot p mod W), so a local layer keeps what it can still see and no more.
 *
 * - One new position per row (decoding): its key goes to its slot first, then the query attends
 *   over the filled slots without a causal mask: they are exactly the last W positions, and
 *   attention (softmax, then a weighted sum) does not depend on their order.
 * - Several new positions (a prompt, or a chunk after earlier ones): the last W − 1 cached
 *   positions are copied out of the ring, in order, in front of the new keys, and the queries
 *   attend over that linear buffer with the window mask (as without a cache); then the last
 *   min(seq, W) new keys are stored in their slots. A first prompt needs no copy.
 *
 * The plan of a step (slots, masks, indices) is the same for every layer of this window, so it is
 * made once per step (`prepare`), then each layer `attend`s with it.
 */
import type { AttentionParams } from '../engine/kernels/attention.ts';
import { Tensor, getBackend } from '../engine/tensor.ts';

interface Step {
  /** Keys attended: filled slots (decoding) or the linear buffer's prior + new positions. */
  keyLen: number;
  /** Cached positions copied in front of the new ones (multi-position steps; 0 when decoding). */
  prior: number;
  linear: boolean;
  /** Key mask [batch·keyLen] of the linear buffer. */
  linearMask: Tensor | null;
  /** Ring rows of the prior positions, and their rows in the linear buffer [batch·prior]. */
  priorRows: Tensor | null;
  priorPlaces: Tensor | null;
  /** Rows of the new keys in the linear buffer [batch·seq]. */
  newPlaces: Tensor | null;
  /** The last min(seq, W) new keys: their rows in this step's k (null: all, in order), their slots. */
  keptRows: Tensor | null;
  slots: Tensor;
}

export class SlidingWindowKV {
  private readonly keys = new Map<number, Tensor>();
  private readonly values = new Map<number, Tensor>();
  /** Key mask of each slot [batch·window] (0: padding, or never filled). */
  private readonly mask: Int32Array;
  private readonly maskTensor: Tensor;
  private step: Step | null = null;

  constructor(
    layers: number[],
    readonly batch: number,
    readonly window: number,
    private readonly width: number,
  ) {
    for (const layer of layers) {
      this.keys.set(layer, Tensor.empty([batch, window, width]).keep());
      this.values.set(layer, Tensor.empty([batch, window, width]).keep());
    }
    this.mask = new Int32Array(batch * window);
    this.maskTensor = Tensor.from(this.mask, [this.mask.length], 'i32').keep();
  }

  has(layer: number): boolean {
    return this.keys.has(layer);
  }

  /** Plans the step that appends `seq` positions per row after `start` cached ones. */
  prepare(start: number, seq: number, attentionMask?: Int32Array): void {
    this.disposeStep();
    const { batch, window } = this;
    const real = (b: number, t: number) => (attentionMask ? attentionMask[b * seq + t]! : 1);
    const slotOf = (b: number, position: number) => b * window + (position % window);
    const i32 = (values: Int32Array) => Tensor.from(values, [values.length], 'i32').keep();
    const kept = Math.min(seq, window);
    const keptRows = new Int32Array(batch * kept);
    const slots = new Int32Array(batch * kept);
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < kept; i++) {
        const t = seq - kept + i;
        keptRows[b * kept + i] = b * seq + t;
        slots[b * kept + i] = slotOf(b, start + t);
      }
    }
    const linear = seq > 1;
    const prior = linear ? Math.min(start, window - 1) : 0;
    const keyLen = linear ? prior + seq : Math.min(start + 1, window);
    let linearMask: Tensor | null = null;
    let priorRows: Tensor | null = null;
    let priorPlaces: Tensor | null = null;
    let newPlaces: Tensor | null = null;
    if (linear) {
      // Read before the new positions overwrite slots below.
      const maskOut = new Int32Array(batch * keyLen);
      const rows = new Int32Array(batch * prior);
      const places = new Int32Array(batch * prior);
      const fresh = new Int32Array(batch * seq);
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < prior; i++) {
          rows[b * prior + i] = slotOf(b, start - prior + i);
          places[b * prior + i] = b * keyLen + i;
          maskOut[b * keyLen + i] = this.mask[rows[b * prior + i]!]!;
        }
        for (let t = 0; t < seq; t++) {
          fresh[b * seq + t] = b * keyLen + prior + t;
          maskOut[b * keyLen + prior + t] = real(b, t);
        }
      }
      linearMask = i32(maskOut);
      if (prior > 0) [priorRows, priorPlaces, newPlaces] = [i32(rows), i32(places), i32(fresh)];
    }
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < kept; i++) this.mask[slots[b * kept + i]!] = real(b, seq - kept + i);
    }
    getBackend().upload(this.maskTensor.storage, this.maskTensor.byteOffset, this.mask);
    this.step = {
      keyLen,
      prior,
      linear,
      linearMask,
      priorRows,
      priorPlaces,
      newPlaces,
      keptRows: kept === seq ? null : i32(keptRows),
      slots: i32(slots),
    };
  }

  /** Stores this step's keys/values of `layer` and attends over what its window sees. */
  attend(
    layer: number,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    params: AttentionParams,
    out: Tensor,
  ): Tensor {
    const step = this.step!;
    const [keyRing, valueRing] = [this.keys.get(layer)!, this.values.get(layer)!];
    // Read the prior positions out of the ring before this step's keys overwrite their slots.
    const linear = (fresh: Tensor, ring: Tensor) =>
      step.prior > 0 ? this.linearBuffer(fresh, ring, step) : fresh;
    const [keys, values] = step.linear
      ? [linear(k, keyRing), linear(v, valueRing)]
      : [keyRing, valueRing];
    this.store(k, keyRing, step);
    this.store(v, valueRing, step);
    return attendCached(q, keys, values, step.linear ? step.linearMask! : this.maskTensor, out, {
      ...params,
      Tk: step.keyLen,
      kvCap: step.linear ? step.keyLen : this.window,
      // Decoding: every filled slot is inside the window (see the module note).
      window: step.linear ? this.window : 0,
    });
  }

  /** [batch, prior + seq, width]: the prior positions out of the ring, then the new rows. */
  private linearBuffer(fresh: Tensor, ring: Tensor, step: Step): Tensor {
    const kern = getBackend().kernels;
    const { batch, width } = this;
    const buffer = Tensor.empty([batch, step.keyLen, width]);
    const prior = Tensor.empty([batch * step.prior, width]);
    const n = batch * step.prior;
    kern.gatherRows(
      { src: ring.operand(), idx: step.priorRows!.operand(), dst: prior.operand() },
      { rows: n, cols: width },
    );
    kern.scatterRows(
      { src: prior.operand(), idx: step.priorPlaces!.operand(), dst: buffer.operand() },
      { rows: n, cols: width },
    );
    const rows = fresh.size / width;
    kern.scatterRows(
      { src: fresh.operand(), idx: step.newPlaces!.operand(), dst: buffer.operand() },
      { rows, cols: width },
    );
    return buffer;
  }

  /** Writes the last min(seq, window) new rows of `fresh` into their ring slots. */
  private store(fresh: Tensor, ring: Tensor, step: Step): void {
    const kern = getBackend().kernels;
    const n = step.slots.size;
    let src = fresh;
    if (step.keptRows) {
      src = Tensor.empty([n, this.width]);
      kern.gatherRows(
        { src: fresh.operand(), idx: step.keptRows.operand(), dst: src.operand() },
        { rows: n, cols: this.width },
      );
    }
    kern.scatterRows(
      { src: src.operand(), idx: step.slots.operand(), dst: ring.operand() },
      { rows: n, cols: this.width },
    );
  }

  private disposeStep(): void {
    const s = this.step;
    if (!s) return;
    for (const t of [s.linearMask, s.priorRows, s.priorPlaces, s.newPlaces, s.keptRows, s.slots]) {
      t?.dispose();
    }
    this.step = null;
  }

  dispose(): void {
    this.disposeStep();
    for (const t of [...this.keys.values(), ...this.values.values(), this.maskTensor]) t.dispose();
  }
}

/** Attention of the new queries over cached keys/values [batch, kvCapacity, width], into `out`. */
export function attendCached(
  q: Tensor,
  keys: Tensor,
  values: Tensor,
  keyMask: Tensor,
  out: Tensor,
  params: AttentionParams,
): Tensor {
  const lse = Tensor.empty([params.B, params.H, params.Tq]);
  getBackend().kernels.attentionForward(
    {
      q: q.operand(),
      k: keys.operand(),
      v: values.operand(),
      out: out.operand(),
      lse: lse.operand(),
      keyMask: keyMask.operand(),
      segIds: null,
    },
    params,
  );
  return out;
}
