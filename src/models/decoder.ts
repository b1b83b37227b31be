/**
 * The pre-norm decoder shared by Qwen2, Llama and Mistral:
 *   h = embed(ids); per layer: h += o(attn(rope(q(n1(h))), rope(k(n1(h))), v(n1(h))));
 *                              h += down(silu(gate(n2(h))) · up(n2(h)));
 *   logits = norm(h) · headᵀ
 * Training goes through `loss`, which never materialises full-vocabulary logits.
 */
import type { AttentionDims } from '../engine/backend.ts';
import { attention } from '../engine/ops/attention.ts';
import { add, swiglu } from '../engine/ops/elementwise.ts';
import { embedding } from '../engine/ops/embedding.ts';
import { linear } from '../engine/ops/linear.ts';
import { lmHeadLoss, type LmHeadLossResult } from '../engine/ops/lm-head-loss.ts';
import { loraLinear, type LoraWeights } from '../engine/ops/lora-linear.ts';
import { rmsNorm } from '../engine/ops/norm.ts';
import { rope } from '../engine/ops/rope.ts';
import { needsGrad } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import type { DecoderConfig } from './config.ts';
import type { KVCache } from './kv-cache.ts';
import { ropeInverseFrequencies } from './rope-frequencies.ts';

/** A linear layer of the model, optionally carrying a LoRA adapter (set by peft/). */
export interface Projection {
  /** HF module path, e.g. model.layers.0.self_attn.q_proj (PEFT keys adapters by it). */
  path: string;
  weight: Tensor;
  bias: Tensor | null;
  lora: (LoraWeights & { dropout: number }) | null;
}

export const PROJECTION_NAMES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'down_proj',
] as const;
export type ProjectionName = (typeof PROJECTION_NAMES)[number];

export interface DecoderLayer {
  inputNorm: Tensor;
  postNorm: Tensor;
  proj: Record<ProjectionName, Projection>;
}

export interface ModelInput {
  batch: number;
  seq: number;
  inputIds: Int32Array;
  /** Positions per token (default 0..seq-1 in every row). */
  positionIds?: Int32Array;
  /** Key padding mask [batch·seq], 0 = padding (default: none). */
  attentionMask?: Int32Array;
  /** Packed documents: 1-based id per token; attention stays inside a document. */
  segmentIds?: Int32Array;
}

/** Per-row adapter lookup for batched decoding: module path → LoRA weights (or none). */
export type LoraLookup = (modulePath: string) => LoraWeights | null;

/** Makes the dropout mask of a LoRA input (entries 0 or 1/(1-p)), or null when not training. */
/** Draws the seed of one LoRA dropout mask (engine/dropout.ts); set by the trainer. */
export type DropoutSeeds = () => number;

/** HF's module path of a projection, e.g. model.layers.3.self_attn.q_proj. */
export function projectionPath(layer: number, name: ProjectionName): string {
  const block =
    name === 'gate_proj' || name === 'up_proj' || name === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${block}.${name}`;
}

/** A decoder-only transformer (Qwen2, Llama, Mistral) with its weights on the current backend. */
export class DecoderModel {
  /** Null outside training: LoRA dropout is off at inference. */
  dropoutSeeds: DropoutSeeds | null = null;
  /** RoPE inverse frequencies [headDim/2] (rope_scaling applied), uploaded with each forward. */
  readonly ropeInvFreq: Float32Array;

  constructor(
    readonly config: DecoderConfig,
    readonly embed: Tensor,
    readonly layers: DecoderLayer[],
    readonly finalNorm: Tensor,
    /** The LM head; the embedding table itself when embeddings are tied. */
    readonly lmHead: Tensor,
  ) {
    this.ropeInvFreq = ropeInverseFrequencies(config.headDim, config.ropeTheta, config.ropeScaling);
  }

  /**
   * Final-norm hidden states [batch·seq, hidden]. With a cache, `input` holds only new tokens.
   * `rowLora` (one entry per token row) selects adapters per row for inference.
   */
  forwardHidden(input: ModelInput, cache?: KVCache, rowLora?: (LoraLookup | null)[]): Tensor {
    const c = this.config;
    const { batch, seq } = input;
    const ids = Tensor.from(input.inputIds, [batch * seq], 'i32');
    const positions = Tensor.from(
      input.positionIds ?? defaultPositions(batch, seq, cache?.length ?? 0),
      [batch * seq],
      'i32',
    );
    const keyMask =
      input.attentionMask && !cache ? Tensor.from(input.attentionMask, [batch * seq], 'i32') : null;
    const segments = input.segmentIds ? Tensor.from(input.segmentIds, [batch * seq], 'i32') : null;
    if (cache) cache.append(batch, seq, input.attentionMask);

    const shape = { batch, seq, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim };
    return this.runLayers(
      embedding(this.embed, ids),
      positions,
      batch,
      seq,
      rowLora,
      (layer, q, k, v) =>
        cache
          ? cache.attend(layer, q, k, v, this.attentionDims(batch, seq, cache))
          : attention(q, k, v, shape, keyMask, segments),
    );
  }

  /**
   * One decoding step for independent sequences (continuous batching): row i feeds `ids[i]` to the
   * sequence cached in `caches[i]`. The projections run as one batched GEMM over all rows (the
   * weights are read once per step, which is what makes batching pay off); attention runs per row
   * against each sequence's own cache. `rowLora[i]` picks row i's adapter, if any.
   */
  forwardDecode(ids: number[], caches: KVCache[], rowLora?: (LoraLookup | null)[]): Tensor {
    const c = this.config;
    const rows = ids.length;
    const positions = Tensor.from(
      Int32Array.from(caches, (cache) => cache.length),
      [rows],
      'i32',
    );
    for (const cache of caches) cache.append(1, 1);
    const qWidth = c.numHeads * c.headDim;
    const kvWidth = c.numKvHeads * c.headDim;
    const h = embedding(this.embed, Tensor.from(Int32Array.from(ids), [rows], 'i32'));
    return this.runLayers(h, positions, rows, 1, rowLora, (layer, q, k, v) => {
      const a = Tensor.empty([rows, qWidth]);
      caches.forEach((cache, i) => {
        cache.attend(
          layer,
          q.view([1, qWidth], i * qWidth),
          k.view([1, kvWidth], i * kvWidth),
          v.view([1, kvWidth], i * kvWidth),
          this.attentionDims(1, 1, cache),
          a.view([1, qWidth], i * qWidth),
        );
      });
      return a;
    });
  }

  /** The decoder blocks and final norm; `attend` is the only part that differs between modes. */
  private runLayers(
    embedded: Tensor,
    positions: Tensor,
    batch: number,
    seq: number,
    rowLora: (LoraLookup | null)[] | undefined,
    attend: (layer: number, q: Tensor, k: Tensor, v: Tensor) => Tensor,
  ): Tensor {
    const c = this.config;
    const project = (p: Projection, x: Tensor) =>
      rowLora ? this.projectRows(p, x, rowLora) : this.project(p, x);
    const invFreq = Tensor.from(this.ropeInvFreq, [this.ropeInvFreq.length]);
    let h = embedded;
    this.layers.forEach((layer, i) => {
      const x = rmsNorm(h, layer.inputNorm, c.rmsNormEps);
      const q = rope(
        project(layer.proj.q_proj, x),
        positions,
        invFreq,
        batch,
        seq,
        c.numHeads,
        c.headDim,
      );
      const k = rope(
        project(layer.proj.k_proj, x),
        positions,
        invFreq,
        batch,
        seq,
        c.numKvHeads,
        c.headDim,
      );
      const v = project(layer.proj.v_proj, x);
      h = add(h, project(layer.proj.o_proj, attend(i, q, k, v)));
      const y = rmsNorm(h, layer.postNorm, c.rmsNormEps);
      const m = swiglu(project(layer.proj.gate_proj, y), project(layer.proj.up_proj, y));
      h = add(h, project(layer.proj.down_proj, m));
    });
    return rmsNorm(h, this.finalNorm, c.rmsNormEps);
  }

  /**
   * Hugging Face's causal-LM loss: position t predicts labels[t+1], −100 ignored, mean over the
   * counted targets (or over `divisor` of them, for gradient accumulation).
   */
  loss(input: ModelInput, labels: Int32Array, divisor?: number): LmHeadLossResult {
    const h = this.forwardHidden(input);
    return lmHeadLoss(h, this.lmHead, shiftLabels(labels, input.batch, input.seq), { divisor });
  }

  /** Full-vocabulary logits [rows.length, vocab] of selected rows of `hidden` (inference). */
  logits(hidden: Tensor, rows?: number[]): Tensor {
    const dim = this.config.hiddenSize;
    let h = hidden;
    if (rows) {
      h = Tensor.empty([rows.length, dim]);
      const idx = Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
      h.backend.kernels.gatherRows(hidden.operand(), idx.operand(), h.operand(), rows.length, dim);
    }
    return linear(h, this.lmHead);
  }

  /** Every base weight under its Hugging Face name (the tied head is listed once). */
  namedWeights(): Map<string, Tensor> {
    const out = new Map<string, Tensor>([['model.embed_tokens.weight', this.embed]]);
    this.layers.forEach((layer, i) => {
      out.set(`model.layers.${i}.input_layernorm.weight`, layer.inputNorm);
      out.set(`model.layers.${i}.post_attention_layernorm.weight`, layer.postNorm);
      for (const name of PROJECTION_NAMES) {
        const p = layer.proj[name];
        out.set(`${projectionPath(i, name)}.weight`, p.weight);
        if (p.bias) out.set(`${projectionPath(i, name)}.bias`, p.bias);
      }
    });
    out.set('model.norm.weight', this.finalNorm);
    if (!this.config.tieWordEmbeddings) out.set('lm_head.weight', this.lmHead);
    return out;
  }

  /** Every projection with its HF module path. */
  *projections(): Generator<[string, Projection, ProjectionName]> {
    for (let i = 0; i < this.layers.length; i++) {
      for (const name of PROJECTION_NAMES)
        yield [projectionPath(i, name), this.layers[i]!.proj[name], name];
    }
  }

  /** Frees the weights; the model must not be used afterwards. */
  dispose(): void {
    for (const t of this.namedWeights().values()) t.dispose();
    for (const [, p] of this.projections()) {
      p.lora?.a.dispose();
      p.lora?.b.dispose();
    }
  }

  private project(p: Projection, x: Tensor): Tensor {
    if (!p.lora) return linear(x, p.weight, p.bias);
    return loraLinear(
      x,
      p.weight,
      p.bias,
      p.lora,
      // Dropout only while training (gradients recorded), as model.train() / model.eval() in PyTorch.
      p.lora.dropout > 0 && this.dropoutSeeds && needsGrad(p.lora.a, p.lora.b)
        ? { p: p.lora.dropout, seed: this.dropoutSeeds() }
        : null,
    );
  }

  /** Base projection for all rows, plus each row group's own adapter delta (inference only). */
  private projectRows(p: Projection, x: Tensor, rowLora: (LoraLookup | null)[]): Tensor {
    const y = linear(x, p.weight, p.bias);
    const groups = new Map<LoraWeights, number[]>();
    rowLora.forEach((lookup, row) => {
      const lora = lookup?.(p.path);
      if (lora) groups.set(lora, [...(groups.get(lora) ?? []), row]);
    });
    const k = y.backend.kernels;
    const [, inFeatures] = p.weight.shape as [number, number];
    const outFeatures = y.shape.at(-1)!;
    for (const [lora, rows] of groups) {
      const r = lora.a.shape[0]!;
      const idx = Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
      const xg = Tensor.empty([rows.length, inFeatures]);
      k.gatherRows(x.operand(), idx.operand(), xg.operand(), rows.length, inFeatures);
      const xa = Tensor.empty([rows.length, r]);
      k.gemm(xg.operand(), lora.a.operand(), xa.operand(), {
        m: rows.length,
        n: r,
        k: inFeatures,
        transB: true,
      });
      const delta = Tensor.empty([rows.length, outFeatures]);
      k.gemm(xa.operand(), lora.b.operand(), delta.operand(), {
        m: rows.length,
        n: outFeatures,
        k: r,
        transB: true,
        alpha: lora.scale,
      });
      k.scatterAddRows(delta.operand(), idx.operand(), y.operand(), rows.length, outFeatures);
    }
    return y;
  }

  private attentionDims(batch: number, seq: number, cache: KVCache): AttentionDims {
    const c = this.config;
    return {
      batch,
      queryLen: seq,
      keyLen: cache.length,
      kvCapacity: cache.capacity,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      scale: 1 / Math.sqrt(c.headDim),
    };
  }
}

function defaultPositions(batch: number, seq: number, offset: number): Int32Array {
  const out = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) for (let t = 0; t < seq; t++) out[b * seq + t] = offset + t;
  return out;
}

/** targets[b·seq + t] = labels[b, t+1]; the last position of each row predicts nothing. */
export function shiftLabels(labels: Int32Array, batch: number, seq: number): Int32Array {
  const out = new Int32Array(batch * seq).fill(-100);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seq; t++) out[b * seq + t] = labels[b * seq + t + 1]!;
  }
  return out;
}
