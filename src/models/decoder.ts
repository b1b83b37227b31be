/**
 * The pre-norm decoder shared by every family (models/architectures/ says how each differs):
 *   h = embed(ids)·s; per layer: h += P(o(attn(rope(Nq(q(n1(h)))), rope(Nk(k(n1(h)))), v(n1(h)))));
 *                                h += Q(down(act(gate(n2(h))) · up(n2(h))));
 *   logits = norm(h) · headᵀ
 * where the q/k norms Nq, Nk (Qwen3, Gemma 3), the output norms P, Q and the embedding scale s
 * (Gemma) are there only when the family has them, rope may be per-layer, partial or absent, and
 * attention may slide over a window. Phi-3 fuses q, k, v into one qkv_proj and gate, up into one
 * gate_up_proj: each part is computed from the rows of the fused weight (and of its LoRA B) it
 * owns, so the fused matrix keeps one adapter and no fused output is materialised. Training goes through
 * `loss`, which never materialises full-vocabulary logits.
 */
import type { AttentionParams } from '../engine/kernels/attention.ts';
import { attention, type AttentionShape } from '../engine/ops/attention.ts';
import { add, gatedActivation, scale } from '../engine/ops/elementwise.ts';
import { embedding } from '../engine/ops/embedding.ts';
import { linear } from '../engine/ops/linear.ts';
import { lmHeadLoss, type LmHeadLossResult } from '../engine/ops/lm-head-loss.ts';
import type { LoraWeights } from '../engine/ops/lora-linear.ts';
import type { OutputBlock } from '../engine/ops/util.ts';
import type { DropoutSpec } from '../engine/dropout.ts';
import {
  adaptedLinear,
  addEmbeddingLora,
  gatherRows,
  mixedBatchLinear,
  replaceRowGroups,
  type EmbeddingLora,
} from '../engine/ops/lora-layer.ts';
import { rmsNorm } from '../engine/ops/norm.ts';
import { rope } from '../engine/ops/rope.ts';
import type { BaseWeight } from '../engine/quant/quantized-weight.ts';
import { checkpoint, needsGrad } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import type { DecoderConfig } from './config.ts';
import type { KVCache } from './kv-cache.ts';
import { ropeTables, tableFor, type RopeTables } from './rope-frequencies.ts';
import { LoraforgeError } from '../util/errors.ts';

/** A linear layer of the model, optionally carrying a LoRA adapter (set by peft/). */
export interface Projection {
  /** HF module path, e.g. model.layers.0.self_attn.q_proj (PEFT keys adapters by it). */
  path: string;
  /** Dense, or quantized (QLoRA's frozen base: engine/quant). */
  weight: BaseWeight;
  bias: Tensor | null;
  lora: (LoraWeights & { dropout: number }) | null;
  /** A bias trained with the adapter (PEFT's bias="all"), used in place of `bias`. */
  adapterBias?: Tensor | null;
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

/** Every projection name a family may have (shapes.ts: projectionShapes lists a family's own). */
export const PROJECTION_NAMES = [
  'q_proj',
  'k_proj',
  'v_proj',
  'qkv_proj',
  'o_proj',
  'gate_proj',
  'up_proj',
  'gate_up_proj',
  'down_proj',
] as const;
export type ProjectionName = (typeof PROJECTION_NAMES)[number];

const MLP_PROJECTIONS: readonly ProjectionName[] = [
  'gate_proj',
  'up_proj',
  'gate_up_proj',
  'down_proj',
];

/** Norm weights of a layer by their name under model.layers.N (transformers' module names). */
export const LAYER_NORM_NAMES = [
  'input_layernorm',
  'post_attention_layernorm',
  'pre_feedforward_layernorm',
  'post_feedforward_layernorm',
  'self_attn.q_norm',
  'self_attn.k_norm',
] as const;
export type LayerNormName = (typeof LAYER_NORM_NAMES)[number];

export interface DecoderLayer {
  /** The norms this family has (shapes.ts: layerNormShapes). */
  norms: Partial<Record<LayerNormName, Tensor>>;
  /** The projections this family has (shapes.ts: projectionShapes). */
  proj: Partial<Record<ProjectionName, Projection>>;
  /** Projections stored back to back by the loader (from-tensors.ts), if any. */
  groups?: ProjectionGroup[];
}

/**
 * Projections that read the same input (SHARED_INPUT_PROJECTIONS), their weights stored as one
 * matrix whose row blocks are the projections' weights (views of it), and their biases likewise.
 * Decoding one token reads every weight once per token: one product over the whole matrix costs
 * one kernel call and one pass instead of one per projection (each call pays its dispatch and the
 * start and end of its memory stream: on the 0.5B shape, q + k + v 134 -> 112 us and gate + up
 * 756 -> 711 us per layer, measured with the native backend).
 */
export interface ProjectionGroup {
  names: readonly ProjectionName[];
  weight: Tensor;
  bias: Tensor | null;
}

/** Projections that read the same input, in the order of their outputs. */
export const SHARED_INPUT_PROJECTIONS: readonly (readonly ProjectionName[])[] = [
  ['q_proj', 'k_proj', 'v_proj'],
  ['qkv_proj'],
  ['gate_proj', 'up_proj'],
  ['gate_up_proj'],
];

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

/** Draws the seed of one LoRA dropout mask (engine/dropout.ts); set by the trainer. */
export type DropoutSeeds = () => number;

/**
 * HF's module path of a projection, e.g. model.layers.3.self_attn.q_proj; `prefix` is the decoder
 * stack's module path (model.language_model in a multimodal checkpoint).
 */
export function projectionPath(layer: number, name: ProjectionName, prefix = 'model'): string {
  const block = MLP_PROJECTIONS.includes(name) ? 'mlp' : 'self_attn';
  return `${prefix}.layers.${layer}.${block}.${name}`;
}

/** A decoder-only transformer of any registered family, with its weights on the current backend. */
export class DecoderModel {
  /** Null outside training: LoRA dropout is off at inference. */
  dropoutSeeds: DropoutSeeds | null = null;
  /**
   * HF's gradient_checkpointing: in training, keep only each decoder layer's input and recompute
   * the layer in the backward pass (engine/tape.ts: checkpoint).
   */
  gradientCheckpointing = false;
  edges: EdgeAdapters = {};
  /**
   * RoPE inverse frequencies [rotaryDim/2] with rope_scaling applied (LongRoPE: short and long
   * tables, and the cos/sin scale); the table a forward pass uses is uploaded with it.
   */
  readonly rope: RopeTables;
  /** The 'local' layers' tables (Gemma 3's sliding layers), or null. */
  readonly localRope: RopeTables | null;
  /** Ones of each norm size, for zero-centred norms that scale by (1 + w). */
  private readonly ones = new Map<number, Tensor>();

  constructor(
    readonly config: DecoderConfig,
    readonly embed: Tensor,
    readonly layers: DecoderLayer[],
    readonly finalNorm: Tensor,
    /** The LM head; the embedding table itself when embeddings are tied. */
    readonly lmHead: Tensor,
  ) {
    this.rope = ropeTables(config.rotaryDim, config.ropeTheta, config.ropeScaling);
    const local = config.localRope;
    this.localRope = local
      ? ropeTables(config.rotaryDim, local.theta ?? 10000, local.scaling)
      : null;
    if (!local && config.layers.some((l) => l.rope === 'local')) {
      throw new Error(
        `${config.architecture}: a layer rotates with the local RoPE, which is unset`,
      );
    }
  }

  /**
   * Final-norm hidden states [batch·seq, hidden]. With a cache, `input` holds only new tokens.
   * `rowLora` (one entry per token row) selects adapters per row for inference.
   */
  forwardHidden(input: ModelInput, cache?: KVCache, rowLora?: (LoraLookup | null)[]): Tensor {
    const { batch, seq } = input;
    checkTokenIds(input.inputIds, this.embed.shape[0]!);
    const ids = Tensor.from(input.inputIds, [batch * seq], 'i32');
    const positions = input.positionIds ?? defaultPositions(batch, seq, cache?.length ?? 0);
    const keyMask =
      input.attentionMask && !cache ? Tensor.from(input.attentionMask, [batch * seq], 'i32') : null;
    const segments = input.segmentIds ? Tensor.from(input.segmentIds, [batch * seq], 'i32') : null;
    if (cache) cache.append(batch, seq, input.attentionMask);

    return this.runLayers(
      this.embedRows(ids, rowLora),
      positions,
      batch,
      seq,
      rowLora,
      // A cache is appended to as layers run: recomputing a layer would append twice.
      this.gradientCheckpointing && !cache,
      (layer, q, k, v) =>
        cache
          ? cache.attend(layer, q, k, v, this.attentionDims(layer, batch, seq, cache))
          : attention(q, k, v, this.attentionShape(layer, batch, seq), keyMask, segments),
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
    const positions = Int32Array.from(caches, (cache) => cache.length);
    const long = this.rope.long;
    if (
      long &&
      positions.some((p) => p + 1 > long.after) &&
      positions.some((p) => p + 1 <= long.after)
    ) {
      // LongRoPE picks one table per forward pass; these rows are independent sequences on both
      // sides of its switch, so each side runs as its own pass, as if decoded alone.
      return this.decodeGroups(ids, caches, rowLora, (i) => positions[i]! + 1 > long.after);
    }
    for (const cache of caches) cache.append(1, 1);
    const qWidth = c.numHeads * c.headDim;
    const kvWidth = c.numKvHeads * c.headDim;
    const h = this.embedRows(Tensor.from(Int32Array.from(ids), [rows], 'i32'), rowLora);
    return this.runLayers(h, positions, rows, 1, rowLora, false, (layer, q, k, v) => {
      const a = Tensor.empty([rows, qWidth]);
      caches.forEach((cache, i) => {
        cache.attend(
          layer,
          q.view([1, qWidth], i * qWidth),
          k.view([1, kvWidth], i * kvWidth),
          v.view([1, kvWidth], i * kvWidth),
          this.attentionDims(layer, 1, 1, cache),
          a.view([1, qWidth], i * qWidth),
        );
      });
      return a;
    });
  }

  /** Token embeddings [ids, hidden], through the attached or per-row adapters. */
  private embedRows(ids: Tensor, rowLora?: (LoraLookup | null)[]): Tensor {
    if (!rowLora) return this.embedWith(ids, this.edges.embed);
    return replaceRowGroups(
      this.embedWith(ids, undefined),
      rowLora.map((lookup) => lookup?.(EMBED_PATH) ?? null),
      (rows, adapter) => this.embedWith(gatherRows(ids, rows), adapter),
    );
  }

  /**
   * Embeddings of `ids` through an embedding adapter (its trained copy, its LoRA). The family's
   * scale (Gemma's √hidden) applies to the table lookup only: PEFT adds the LoRA term after it.
   */
  private embedWith(ids: Tensor, adapter: ModuleAdapter | undefined): Tensor {
    const table = embedding(adapter?.weight ?? this.embed, ids);
    const h = this.config.embedScale === 1 ? table : scale(table, this.config.embedScale);
    return adapter?.embedLora ? addEmbeddingLora(h, ids, adapter.embedLora) : h;
  }

  /** The LM head in use: the adapter's trained copy (modules_to_save) or the model's. */
  private get head(): Tensor {
    return this.edges.head?.weight ?? this.lmHead;
  }

  /** forwardDecode of the rows where `inGroup` holds, then of the others, merged in row order. */
  private decodeGroups(
    ids: number[],
    caches: KVCache[],
    rowLora: (LoraLookup | null)[] | undefined,
    inGroup: (row: number) => boolean,
  ): Tensor {
    const out = Tensor.empty([ids.length, this.config.hiddenSize]);
    for (const wanted of [true, false]) {
      const rows = ids.map((_, i) => i).filter((i) => inGroup(i) === wanted);
      const h = this.forwardDecode(
        rows.map((i) => ids[i]!),
        rows.map((i) => caches[i]!),
        rowLora && rows.map((i) => rowLora[i] ?? null),
      );
      const index = Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
      h.backend.kernels.scatterRows(
        { src: h.operand(), idx: index.operand(), dst: out.operand() },
        { rows: rows.length, cols: this.config.hiddenSize },
      );
    }
    return out;
  }

  /**
   * The decoder blocks and final norm; `attend` is the only part that differs between modes.
   * `positions` [batch·seq] are on the host: their largest picks LongRoPE's table.
   */
  private runLayers(
    embedded: Tensor,
    positions: Int32Array,
    batch: number,
    seq: number,
    rowLora: (LoraLookup | null)[] | undefined,
    checkpointLayers: boolean,
    attend: (layer: number, q: Tensor, k: Tensor, v: Tensor) => Tensor,
  ): Tensor {
    const c = this.config;
    /**
     * The projection `name` of `layer` on x; for a fused one, each of its output blocks (widths
     * in order), computed straight from the weight rows the block owns: no fused output to split.
     */
    const project = (layer: DecoderLayer, name: ProjectionName, x: Tensor, widths?: number[]) => {
      const p = layer.proj[name];
      if (!p) throw new Error(`${c.architecture} layer has no ${name}`);
      const dropout = this.dropoutOf(p);
      let offset = 0;
      return (widths ?? [p.weight.shape[0]!]).map((count) => {
        const block = { offset, count };
        offset += count;
        return rowLora
          ? mixedBatchLinear(
              x,
              p.weight,
              p.bias,
              rowLora.map((lookup) => lookup?.(p.path) ?? null),
              block,
            )
          : this.project(p, x, block, dropout);
      });
    };
    const qWidth = c.numHeads * c.headDim;
    const kvWidth = c.numKvHeads * c.headDim;
    /**
     * The projections `names` of x (their outputs `widths`): one product where the layer stores
     * them as a group, else one by one (a single fused projection: its blocks).
     */
    const projectShared = (
      layer: DecoderLayer,
      x: Tensor,
      names: readonly ProjectionName[],
      widths: number[],
    ) =>
      this.projectGroup(layer, x, names[0]!, widths, rowLora) ??
      (names.length === 1
        ? project(layer, names[0]!, x, widths)
        : names.map((name) => project(layer, name, x)[0]!));
    /** q, k, v: three projections, or the three blocks of Phi-3's qkv_proj. */
    const qkv = (layer: DecoderLayer, x: Tensor) =>
      projectShared(layer, x, c.fusedProjections ? ['qkv_proj'] : ['q_proj', 'k_proj', 'v_proj'], [
        qWidth,
        kvWidth,
        kvWidth,
      ]) as [Tensor, Tensor, Tensor];
    const gateUp = (layer: DecoderLayer, y: Tensor) =>
      projectShared(layer, y, c.fusedProjections ? ['gate_up_proj'] : ['gate_proj', 'up_proj'], [
        c.intermediateSize,
        c.intermediateSize,
      ]) as [Tensor, Tensor];
    const maxPosition = positions.reduce((m, p) => Math.max(m, p), 0);
    const upload = (tables: RopeTables | null) => {
      if (!tables) return null;
      const invFreq = tableFor(tables, maxPosition);
      return { invFreq: Tensor.from(invFreq, [invFreq.length]), scale: tables.scale };
    };
    const tables = { global: upload(this.rope), local: upload(this.localRope), none: null };
    const positionIds = Tensor.from(positions, [positions.length], 'i32');
    const rotate = (x: Tensor, table: ReturnType<typeof upload>, heads: number) =>
      table ? rope(x, positionIds, table.invFreq, batch, seq, heads, c.headDim, table.scale) : x;
    const block = (layer: DecoderLayer, i: number, input: Tensor): Tensor => {
      const table = tables[c.layers[i]!.rope];
      const x = this.norm(input, layer, 'input_layernorm');
      const [qRaw, kRaw, v] = qkv(layer, x);
      const qNormed = c.qkNorm ? this.norm(qRaw, layer, 'self_attn.q_norm') : qRaw;
      const kNormed = c.qkNorm ? this.norm(kRaw, layer, 'self_attn.k_norm') : kRaw;
      const q = rotate(qNormed, table, c.numHeads);
      const k = rotate(kNormed, table, c.numKvHeads);
      let a = project(layer, 'o_proj', attend(i, q, k, v))[0]!;
      if (c.sandwichNorms) a = this.norm(a, layer, 'post_attention_layernorm');
      const h = add(input, a);
      const y = this.norm(
        h,
        layer,
        c.sandwichNorms ? 'pre_feedforward_layernorm' : 'post_attention_layernorm',
      );
      const [gate, up] = gateUp(layer, y);
      const gated = gatedActivation(c.activation, gate, up);
      let m = project(layer, 'down_proj', gated)[0]!;
      if (c.sandwichNorms) m = this.norm(m, layer, 'post_feedforward_layernorm');
      return add(h, m);
    };
    let h = embedded;
    this.layers.forEach((layer, i) => {
      h = checkpointLayers
        ? this.checkpointed(layer, h, (x) => block(layer, i, x))
        : block(layer, i, h);
    });
    return this.applyNorm(h, this.finalNorm);
  }

  /**
   * `run(x)` of one layer through engine/tape.ts's checkpoint: the recomputation in the backward
   * pass replays the LoRA dropout seeds the forward drew, so it draws the same masks.
   */
  private checkpointed(layer: DecoderLayer, x: Tensor, run: (x: Tensor) => Tensor): Tensor {
    const seeds = this.dropoutSeeds;
    const drawn: number[] = [];
    return checkpoint(x, layerParameters(layer), (input, recompute) => {
      let next = 0;
      const replay: DropoutSeeds = () => drawn[next++]!;
      const recordDraw: DropoutSeeds = () => {
        drawn.push(seeds!());
        return drawn.at(-1)!;
      };
      this.dropoutSeeds = seeds && (recompute ? replay : recordDraw);
      try {
        return run(input);
      } finally {
        this.dropoutSeeds = seeds;
      }
    });
  }

  private norm(x: Tensor, layer: DecoderLayer, name: LayerNormName): Tensor {
    const w = layer.norms[name];
    if (!w) throw new Error(`${this.config.architecture} layer has no ${name}`);
    return this.applyNorm(x, w);
  }

  /** RMSNorm with weight w, or (1 + w) for zero-centred families (added in float32, as HF). */
  private applyNorm(x: Tensor, w: Tensor): Tensor {
    const c = this.config;
    if (!c.normPlusOne) return rmsNorm(x, w, c.rmsNormEps);
    let ones = this.ones.get(w.size);
    if (!ones) {
      ones = Tensor.from(new Float32Array(w.size).fill(1), [w.size]).keep();
      this.ones.set(w.size, ones);
    }
    return rmsNorm(x, add(w, ones), c.rmsNormEps);
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
    const h = rows ? gatherRows(hidden, rows) : hidden;
    if (!rowLora) return this.headWith(h, this.edges.head);
    return replaceRowGroups(
      this.headWith(h, undefined),
      rowLora.map((lookup) => lookup?.(LM_HEAD_PATH) ?? null),
      (group, adapter) => this.headWith(gatherRows(h, group), adapter),
    );
  }

  private headWith(h: Tensor, adapter: ModuleAdapter | undefined): Tensor {
    const head = adapter?.weight ?? this.lmHead;
    return adapter?.lora ? adaptedLinear(h, head, null, adapter.lora) : linear(h, head);
  }

  /**
   * Every base weight under its Hugging Face name (the tied head is listed once), as tensors:
   * what full fine-tuning trains, so a quantized model is refused.
   */
  namedWeights(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, w] of this.baseWeights()) {
      if (!(w instanceof Tensor)) {
        throw new LoraforgeError(
          `${name} is ${w.type}-quantized: a quantized base is frozen (QLoRA trains adapters only)`,
          'use finetuning_type: lora, or load the model without quantization',
        );
      }
      out.set(name, w);
    }
    return out;
  }

  /** Every base weight under its Hugging Face name, dense or quantized. */
  baseWeights(): Map<string, BaseWeight> {
    const prefix = this.config.modulePrefix;
    const out = new Map<string, BaseWeight>([[`${prefix}.embed_tokens.weight`, this.embed]]);
    this.layers.forEach((layer, i) => {
      for (const name of LAYER_NORM_NAMES) {
        const w = layer.norms[name];
        if (w) out.set(`${prefix}.layers.${i}.${name}.weight`, w);
      }
      for (const p of Object.values(layer.proj)) {
        out.set(`${p.path}.weight`, p.weight);
        if (p.bias) out.set(`${p.path}.bias`, p.bias);
      }
    });
    out.set(`${prefix}.norm.weight`, this.finalNorm);
    if (!this.config.tieWordEmbeddings) out.set('lm_head.weight', this.lmHead);
    return out;
  }

  /** Every projection with its HF module path. */
  *projections(): Generator<[string, Projection, ProjectionName]> {
    for (const layer of this.layers) {
      for (const name of PROJECTION_NAMES) {
        const p = layer.proj[name];
        if (p) yield [p.path, p, name];
      }
    }
  }

  /** Frees the weights; the model must not be used afterwards. */
  dispose(): void {
    for (const t of this.baseWeights().values()) t.dispose();
    for (const t of this.ones.values()) t.dispose();
    for (const layer of this.layers) {
      for (const g of layer.groups ?? []) {
        g.weight.dispose();
        g.bias?.dispose();
      }
    }
    for (const [, p] of this.projections()) {
      p.lora?.a.dispose();
      p.lora?.b.dispose();
    }
  }

  /**
   * LoRA dropout of one application of `p`: only while training (gradients recorded), as
   * model.train() / model.eval() in PyTorch. The blocks of a fused projection share it, as PEFT
   * drops the fused module's input once.
   */
  private dropoutOf(p: Projection): DropoutSpec | null {
    return p.lora && p.lora.dropout > 0 && this.dropoutSeeds && needsGrad(p.lora.a, p.lora.b)
      ? { p: p.lora.dropout, seed: this.dropoutSeeds() }
      : null;
  }

  /**
   * The outputs (`widths` in order) of the group of `layer` that starts with `first` (q, k, v or
   * gate, up), as views of one product over its whole matrix: only for a single row (decoding one
   * token, where the weights' reads are the cost), with nothing recorded for gradients, and while
   * every projection of the group is its plain stored self (no LoRA, no adapter bias, its weight
   * and bias still the group's views). Null otherwise: the caller projects one by one. A fused
   * projection (Phi-3's qkv_proj) is a group of one whose outputs are the blocks the family splits
   * it into.
   */
  private projectGroup(
    layer: DecoderLayer,
    x: Tensor,
    first: ProjectionName,
    widths: number[],
    rowLora: (LoraLookup | null)[] | undefined,
  ): Tensor[] | null {
    if (rowLora || x.shape[0] !== 1 || needsGrad(x)) return null;
    const group = layer.groups?.find((g) => g.names[0] === first);
    if (!group || !this.groupIntact(layer, group)) return null;
    const y = linear(x, group.weight, group.bias);
    let offset = 0;
    return widths.map((width) => {
      const out = y.view([1, width], offset);
      offset += width;
      return out;
    });
  }

  /** Whether each projection of `group` still uses its row block of the group's matrix and bias. */
  private groupIntact(layer: DecoderLayer, group: ProjectionGroup): boolean {
    const rowBytes = group.weight.bytes / group.weight.shape[0]!;
    let row = 0;
    for (const name of group.names) {
      const p = layer.proj[name];
      if (!p || p.lora || p.adapterBias || !(p.weight instanceof Tensor)) return false;
      if (needsGrad(p.weight, p.bias)) return false;
      if (
        !isViewAt(p.weight, group.weight, row * rowBytes) ||
        !isViewAt(p.bias, group.bias, row * 4)
      ) {
        return false;
      }
      row += p.weight.shape[0]!;
    }
    return true;
  }

  private project(p: Projection, x: Tensor, block: OutputBlock, dropout: DropoutSpec | null) {
    const bias = p.adapterBias ?? p.bias;
    if (!p.lora) return linear(x, p.weight, bias, block);
    return adaptedLinear(x, p.weight, bias, p.lora, dropout, block);
  }

  /** Attention of `layer` over the `seq` positions of the input (no cache). */
  private attentionShape(layer: number, batch: number, seq: number): AttentionShape {
    const c = this.config;
    return {
      batch,
      seq,
      heads: c.numHeads,
      kvHeads: c.numKvHeads,
      headDim: c.headDim,
      scale: c.attentionScale,
      window: c.layers[layer]!.window ?? 0,
    };
  }

  /** Attention of `layer`'s `seq` new positions over everything in `cache`. */
  private attentionDims(
    layer: number,
    batch: number,
    seq: number,
    cache: KVCache,
  ): AttentionParams {
    const shape = this.attentionShape(layer, batch, seq);
    const { heads: H, kvHeads: KVH, headDim: D, window = 0 } = shape;
    const scale = this.config.attentionScale;
    return { B: batch, Tq: seq, Tk: cache.length, kvCap: cache.capacity, H, KVH, D, scale, window };
  }
}

/** Whether t is the view of `base` starting `bytes` into it (both absent also counts). */
function isViewAt(t: Tensor | null, base: Tensor | null, bytes: number): boolean {
  if (t === null || base === null) return t === base;
  return t.storage === base.storage && t.byteOffset === base.byteOffset + bytes;
}

/** Every tensor of a layer that may be trained: norms, dense weights, biases and adapters. */
function layerParameters(layer: DecoderLayer): Tensor[] {
  const out: Tensor[] = Object.values(layer.norms);
  for (const p of Object.values(layer.proj)) {
    if (p.weight instanceof Tensor) out.push(p.weight);
    for (const t of [p.bias, p.adapterBias, p.lora?.a, p.lora?.b, p.lora?.magnitude])
      if (t) out.push(t);
  }
  return out;
}

function defaultPositions(batch: number, seq: number, offset: number): Int32Array {
  const out = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) for (let t = 0; t < seq; t++) out[b * seq + t] = offset + t;
  return out;
}

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

/** targets[b·seq + t] = labels[b, t+1]; the last position of each row predicts nothing. */
export function shiftLabels(labels: Int32Array, batch: number, seq: number): Int32Array {
  const out = new Int32Array(batch * seq).fill(-100);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t + 1 < seq; t++) out[b * seq + t] = labels[b * seq + t + 1]!;
  }
  return out;
}
