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
import { doraLinear } from '../engine/ops/dora-linear.ts';
import { rmsNorm } from '../engine/ops/norm.ts';
import { rope } from '../engine/ops/rope.ts';
import { needsGrad } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import type { DecoderConfig } from './config.ts';
import type { KVCache } from './kv-cache.ts';
import { ropeInverseFrequencies } from './rope-frequencies.ts';
import { LoraforgeError } from '../util/errors.ts';

/** A linear layer of the model, optionally carrying a LoRA adapter (set by peft/). */
export interface Projection {
  /** HF module path, e.g. model.layers.0.self_attn.q_proj (PEFT keys adapters by it). */
  path: string;
  weight: Tensor;
  bias: Tensor | null;
  lora: (LoraWeights & { dropout: number }) | null;
  /** A bias trained with the adapter (PEFT's bias="all"), used in place of `bias`. */
  adapterBias?: Tensor | null;
}

/** PEFT's Embedding LoRA: rows of Aᵀ [vocab, r] gathered per token, times s·Bᵀ [r, dim]. */
export interface EmbeddingLora {
  aT: Tensor;
  b: Tensor;
  scale: number;
}

/** What an adapter changes in one module (set by peft/). */
export interface ModuleAdapter {
  lora?: LoraWeights | null;
  embedLora?: EmbeddingLora | null;
  /** A bias trained with the adapter (PEFT's bias="all"), replacing the module's. */
  bias?: Tensor | null;
  /** A whole trained copy of the weight (PEFT's modules_to_save), replacing the module's. */
  weight?: Tensor | null;
}

/** The adapter's parts on the input embedding and the LM head (LoRA there: inference only). */
export interface EdgeAdapters {
  embed?: ModuleAdapter;
  head?: ModuleAdapter;
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

/** Per-row adapter lookup for batched decoding: module path → what the adapter changes there. */
export type LoraLookup = (modulePath: string) => ModuleAdapter | null;

/** Module paths of the input embedding and the LM head, as PEFT names them. */
export const EMBED_PATH = 'model.embed_tokens';
export const LM_HEAD_PATH = 'lm_head';

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
  edges: EdgeAdapters = {};
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
    checkTokenIds(input.inputIds, this.embed.shape[0]!);
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
      this.embedRows(ids, rowLora),
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
    checkTokenIds(ids, this.embed.shape[0]!);
    const positions = Tensor.from(
      Int32Array.from(caches, (cache) => cache.length),
      [rows],
      'i32',
    );
    for (const cache of caches) cache.append(1, 1);
    const qWidth = c.numHeads * c.headDim;
    const kvWidth = c.numKvHeads * c.headDim;
    const h = this.embedRows(Tensor.from(Int32Array.from(ids), [rows], 'i32'), rowLora);
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

  /** Token embeddings [ids, hidden], through the attached or per-row adapters. */
  private embedRows(ids: Tensor, rowLora?: (LoraLookup | null)[]): Tensor {
    if (!rowLora) return this.embedWith(ids, this.edges.embed);
    return this.rowsThrough(this.embedWith(ids, undefined), rowLora, EMBED_PATH, (rows) => {
      const idx = Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
      const own = Tensor.empty([rows.length], 'i32');
      ids.backend.kernels.gatherRows(ids.operand(), idx.operand(), own.operand(), rows.length, 1);
      return (adapter) => this.embedWith(own, adapter);
    });
  }

  /** Embeddings of `ids` through one adapter's embedding copy / LoRA, if any. */
  private embedWith(ids: Tensor, adapter: ModuleAdapter | undefined): Tensor {
    const h = embedding(adapter?.weight ?? this.embed, ids);
    const lora = adapter?.embedLora;
    if (!lora) return h;
    const [rank, dim] = [lora.aT.shape[1]!, this.config.hiddenSize];
    const after = embedding(lora.aT, ids);
    h.backend.kernels.gemm(after.operand(), lora.b.operand(), h.operand(), {
      m: ids.size,
      n: dim,
      k: rank,
      transB: true,
      alpha: lora.scale,
      beta: 1,
    });
    return h;
  }

  /** The LM head in use: the adapter's trained copy (modules_to_save) or the model's. */
  private get head(): Tensor {
    return this.edges.head?.weight ?? this.lmHead;
  }

  /**
   * `all` computed without adapters, with the rows whose adapter changes module `path`
   * recomputed through it (grouped per adapter): `rowsOf(rows)` returns how to compute the
   * output of those rows for one adapter.
   */
  private rowsThrough(
    all: Tensor,
    rowLora: (LoraLookup | null)[],
    path: string,
    rowsOf: (rows: number[]) => (adapter: ModuleAdapter) => Tensor,
  ): Tensor {
    const cols = all.shape.at(-1)!;
    for (const [adapter, rows] of groupRows(rowLora.map((lookup) => lookup?.(path) ?? null))) {
      const out = rowsOf(rows)(adapter);
      const idx = Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
      all.backend.kernels.scatterRows(
        out.operand(),
        idx.operand(),
        all.operand(),
        rows.length,
        cols,
      );
    }
    return all;
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
    if (this.edges.head?.lora) throw new Error('training LoRA on lm_head is not supported');
    const h = this.forwardHidden(input);
    return lmHeadLoss(h, this.head, shiftLabels(labels, input.batch, input.seq), { divisor });
  }

  /**
   * Full-vocabulary logits [rows.length, vocab] of selected rows of `hidden` (inference);
   * `rowLora` (one per selected row) selects adapters per row.
   */
  logits(hidden: Tensor, rows?: number[], rowLora?: (LoraLookup | null)[]): Tensor {
    const h = rows ? this.gather(hidden, rows) : hidden;
    if (!rowLora) return this.headWith(h, this.edges.head);
    return this.rowsThrough(this.headWith(h, undefined), rowLora, LM_HEAD_PATH, (group) => {
      const hg = this.gather(h, group);
      return (adapter) => this.headWith(hg, adapter);
    });
  }

  private headWith(h: Tensor, adapter: ModuleAdapter | undefined): Tensor {
    const head = adapter?.weight ?? this.lmHead;
    return adapter?.lora ? this.projectWith(h, head, null, adapter.lora, null) : linear(h, head);
  }

  /** Rows `rows` of x [n, cols] as a new tensor. */
  private gather(x: Tensor, rows: number[]): Tensor {
    const cols = x.shape.at(-1)!;
    const idx = Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
    const out = Tensor.empty([rows.length, cols]);
    x.backend.kernels.gatherRows(x.operand(), idx.operand(), out.operand(), rows.length, cols);
    return out;
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
    const bias = p.adapterBias ?? p.bias;
    if (!p.lora) return linear(x, p.weight, bias);
    // Dropout only while training (gradients recorded), as model.train() / model.eval() in PyTorch.
    const dropout =
      p.lora.dropout > 0 && this.dropoutSeeds && needsGrad(p.lora.a, p.lora.b)
        ? { p: p.lora.dropout, seed: this.dropoutSeeds() }
        : null;
    return this.projectWith(x, p.weight, bias, p.lora, dropout);
  }

  private projectWith(
    x: Tensor,
    w: Tensor,
    bias: Tensor | null,
    lora: LoraWeights,
    dropout: { p: number; seed: number } | null,
  ): Tensor {
    if (lora.magnitude)
      return doraLinear(x, w, bias, { ...lora, magnitude: lora.magnitude }, dropout);
    return loraLinear(x, w, bias, lora, dropout);
  }

  /**
   * Base projection for all rows, plus each row group's own adapter: the low-rank delta added
   * for plain LoRA, the rows recomputed for DoRA or a trained bias (inference only).
   */
  private projectRows(p: Projection, x: Tensor, rowLora: (LoraLookup | null)[]): Tensor {
    const y = linear(x, p.weight, p.bias);
    const plain = rowLora.map((lookup) => {
      const a = lookup?.(p.path);
      return a?.lora && !a.lora.magnitude && !a.bias ? a.lora : null;
    });
    for (const [lora, rows] of groupRows(plain)) this.addLoraDelta(y, x, p, lora, rows);
    const recomputed = rowLora.map((lookup) => {
      const a = lookup?.(p.path);
      return a && (a.lora?.magnitude || a.bias) ? lookup : null;
    });
    return this.rowsThrough(y, recomputed, p.path, (rows) => {
      const xg = this.gather(x, rows);
      return (adapter) => {
        const bias = adapter.bias ?? p.bias;
        return adapter.lora
          ? this.projectWith(xg, p.weight, bias, adapter.lora, null)
          : linear(xg, p.weight, bias);
      };
    });
  }

  /** y[rows] += s·(x[rows]·Aᵀ)·Bᵀ. */
  private addLoraDelta(y: Tensor, x: Tensor, p: Projection, lora: LoraWeights, rows: number[]) {
    const k = y.backend.kernels;
    const [, inFeatures] = p.weight.shape as [number, number];
    const outFeatures = y.shape.at(-1)!;
    const r = lora.a.shape[0]!;
    const xg = this.gather(x, rows);
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
    const idx = Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
    k.scatterAddRows(delta.operand(), idx.operand(), y.operand(), rows.length, outFeatures);
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

/** Row indexes per distinct non-null entry. */
function groupRows<T>(perRow: (T | null)[]): Map<T, number[]> {
  const groups = new Map<T, number[]>();
  perRow.forEach((entry, row) => {
    if (entry) groups.set(entry, [...(groups.get(entry) ?? []), row]);
  });
  return groups;
}

function defaultPositions(batch: number, seq: number, offset: number): Int32Array {
  const out = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) for (let t = 0; t < seq; t++) out[b * seq + t] = offset + t;
  return out;
}

/** targets[b·seq + t] = labels[b, t+1]; the last position of each row predicts nothing. */
/** An id past the embedding table would read other memory (or trap): refused by value. */
function checkTokenIds(ids: ArrayLike<number>, vocabSize: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(id >= 0 && id < vocabSize)) {
      throw new LoraforgeError(
        `token id ${id} (at position ${i}) is outside the model's vocabulary (ids 0 to ${vocabSize - 1})`,
        "the tokenizer does not belong to this model: compare tokenizer.json with config.json's vocab_size",
      );
    }
  }
}

export function shiftLabels(labels: Int32Array, batch: number, seq: number): Int32Array {
  const out = new Int32Array(batch * seq).fill(-100);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seq; t++) out[b * seq + t] = labels[b * seq + t + 1]!;
  }
  return out;
}
