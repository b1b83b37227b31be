/**
 * A LoRA adapter: low-rank A [r, in] and B [out, r] per adapted module, keyed by the module path
 * PEFT uses, plus what PEFT saves beside them: DoRA magnitudes, trained biases (bias="all" /
 * "lora_only") and whole trained copies (modules_to_save). Attaching it to a model makes every
 * adapted projection compute x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ (or DoRA's decomposition); the base weights
 * are never modified.
 */
import { denseWeight, type BaseWeight } from '../engine/quant/quantized-weight.ts';
import { Tensor } from '../engine/tensor.ts';
import type { DecoderModel, LoraLookup, ModuleAdapter } from '../models/decoder.ts';
import type { LoraWeights } from '../engine/ops/lora-linear.ts';
import { loraDelta } from '../engine/ops/lora-layer.ts';
import { noGrad } from '../engine/tape.ts';
import { Rng } from '../util/rng.ts';
import { formatCount } from '../util/format.ts';
import { LoraforgeError } from '../util/errors.ts';
import {
  EMBED_PATH,
  isSavedModule,
  isTargeted,
  LM_HEAD_PATH,
  moduleLora,
  type LoraConfig,
} from './config.ts';
import { baseParameterCountOf } from '../models/shapes.ts';
import { doraColumnScale, doraInitialMagnitude } from '../engine/ops/dora-linear.ts';
import { isResidualInit, residualFactors, type ResidualInit } from './residual-init.ts';

export interface LoraPair {
  a: Tensor;
  b: Tensor;
  /** DoRA's magnitude vector [out] (use_dora), else null. */
  magnitude: Tensor | null;
}

/** A module of the model an adapter can touch: its PEFT path, kind and base weight. */
export interface AdaptableModule {
  path: string;
  /** 'embedding' modules take PEFT's lora_embedding_A [r, vocab] / lora_embedding_B [dim, r]. */
  kind: 'linear' | 'embedding';
  /** Dense, or quantized (a QLoRA base). */
  weight: BaseWeight;
  bias: Tensor | null;
}

/** The projections, the input embedding and the LM head, under PEFT's module paths. */
export function adaptableModules(model: DecoderModel): AdaptableModule[] {
  return [
    { path: EMBED_PATH, kind: 'embedding', weight: model.embed, bias: null },
    ...[...model.projections()].map(([path, p]): AdaptableModule => ({
      path,
      kind: 'linear',
      weight: p.weight,
      bias: p.bias,
    })),
    { path: LM_HEAD_PATH, kind: 'linear', weight: model.lmHead, bias: null },
  ];
}

/** What an adapter file's layout depends on: a module's path, kind and shapes (no weights). */
export interface ModuleLayout {
  path: string;
  kind: AdaptableModule['kind'];
  shape: readonly number[];
  biasShape: readonly number[] | null;
}

export function layoutOf(m: AdaptableModule): ModuleLayout {
  return { path: m.path, kind: m.kind, shape: m.weight.shape, biasShape: m.bias?.shape ?? null };
}

/** [A shape, B shape] of a module's LoRA of rank r. */
export function loraShapes(
  m: Pick<ModuleLayout, 'kind' | 'shape'>,
  r: number,
): [number[], number[]] {
  const [rows, cols] = m.shape as [number, number];
  return m.kind === 'embedding'
    ? [
        [r, rows],
        [cols, r],
      ]
    : [
        [r, cols],
        [rows, r],
      ];
}

export function targetedModules(model: DecoderModel, config: LoraConfig): AdaptableModule[] {
  return adaptableModules(model).filter((m) => isTargeted(config, m.path, m.kind === 'linear'));
}

/** Keys of the parts saved beside the LoRA tensors (PEFT's naming in get_peft_model_state_dict). */
export const peftKey = {
  a: (path: string, kind: AdaptableModule['kind']) =>
    kind === 'embedding'
      ? `base_model.model.${path}.lora_embedding_A`
      : `base_model.model.${path}.lora_A.weight`,
  b: (path: string, kind: AdaptableModule['kind']) =>
    kind === 'embedding'
      ? `base_model.model.${path}.lora_embedding_B`
      : `base_model.model.${path}.lora_B.weight`,
  magnitude: (path: string) => `base_model.model.${path}.lora_magnitude_vector`,
  /** A trained bias: under base_layer when the module carries a LoRA. */
  bias: (path: string, adapted: boolean) =>
    `base_model.model.${path}${adapted ? '.base_layer' : ''}.bias`,
  /** A modules_to_save copy. */
  copy: (path: string) => `base_model.model.${path}.weight`,
  /** The base weight of a LoRA-adapted embed_tokens / lm_head (save_embedding_layers). */
  baseWeight: (path: string) => `base_model.model.${path}.base_layer.weight`,
};

/**
 * A LoRA adapter (A and B per adapted module, plus DoRA magnitudes, trained biases and
 * modules_to_save copies) with its config; `create` a fresh one or `loadAdapter` a PEFT folder,
 * then `attach` it to the model.
 */
export class LoraAdapter {
  constructor(
    readonly config: LoraConfig,
    /** Module path (e.g. model.layers.0.self_attn.q_proj) → weights. */
    readonly modules: Map<string, LoraPair>,
    /** Trained biases by projection path (bias "all" / "lora_only"). */
    readonly biases = new Map<string, Tensor>(),
    /** modules_to_save copies by module path (model.embed_tokens, lm_head). */
    readonly copies = new Map<string, Tensor>(),
    /**
     * The model's own weights PEFT saves beside a LoRA on embed_tokens / lm_head (its
     * save_embedding_layers="auto"), by file key; not owned by the adapter.
     */
    readonly baseWeights = new Map<string, Tensor>(),
    /** A₀ / B₀ of a loaded PiSSA / OLoRA adapter, by module path (peft/residual-init.ts). */
    readonly residualStarts = new Map<string, ResidualStart>(),
  ) {}

  /** Tensors computed from the weights for inference (DoRA scales, embedding Aᵀ, PiSSA pairs). */
  private readonly derived: Tensor[] = [];
  private readonly combined = new Map<string, { a: Tensor; b: Tensor }>();

  /** Fresh adapter for `model` with PEFT's initialisation (B = 0, so the model is unchanged). */
  static create(model: DecoderModel, config: LoraConfig, seed = 0): LoraAdapter {
    const rng = new Rng(seed);
    const modules = new Map<string, LoraPair>();
    const residuals: (() => void)[] = [];
    for (const m of targetedModules(model, config)) {
      if (m.kind === 'embedding' || m.path === LM_HEAD_PATH) {
        throw new LoraforgeError(
          `training LoRA on ${m.path} is not supported yet`,
          'leave it out of the targets, or list it in modules_to_save to train a full copy',
        );
      }
      const { r, scale } = moduleLora(config, m.path);
      const [aShape, bShape] = loraShapes(layoutOf(m), r);
      const inFeatures = aShape[1]!;
      if (isResidualInit(config.init)) {
        const start = residualStart(config.init, m, r, scale);
        modules.set(m.path, {
          a: Tensor.from(start.a, aShape).keep(),
          b: Tensor.from(start.b, bShape).keep(),
          magnitude: null,
        });
        residuals.push(() => writeResidual(m, start, scale));
        continue;
      }
      const a = new Float32Array(r * inFeatures);
      if (config.init === 'gaussian') {
        for (let i = 0; i < a.length; i++) a[i] = rng.normal(0, 1 / r);
      } else {
        // Kaiming-uniform with a = √5 (nn.Linear's default, which PEFT uses): bound = 1/√fan_in.
        const bound = 1 / Math.sqrt(inFeatures);
        for (let i = 0; i < a.length; i++) a[i] = (rng.uniform() * 2 - 1) * bound;
      }
      const pair: LoraPair = {
        a: Tensor.from(a, aShape).keep(),
        b: Tensor.zeros(bShape).keep(),
        magnitude: null,
      };
      // DoRA starts with m = ‖W‖ per output row (B = 0), so the model is unchanged.
      if (config.useDora)
        pair.magnitude = doraInitialMagnitude(denseWeight(m.weight, 'DoRA'), pair.a, pair.b).keep();
      modules.set(m.path, pair);
    }
    if (modules.size === 0) {
      const linear = adaptableModules(model).filter((m) => m.kind === 'linear');
      const names = [...new Set(linear.map((m) => m.path.split('.').at(-1)!))];
      throw new LoraforgeError(
        `target_modules ${JSON.stringify(config.targetModules)} matches no module of this model`,
        `its linear modules are ${names.join(', ')} (e.g. ${linear[0]?.path}); a list entry matches a full module path or a '.'-separated suffix of it`,
      );
    }
    if (config.bias === 'lora_only') {
      throw new LoraforgeError(
        'bias "lora_only" is not supported for training: PEFT 0.18.1 saves none of those biases',
        'use bias "all" or "none"',
      );
    }
    // PiSSA's / OLoRA's base is the residual W − s·B₀·A₀, as PEFT leaves it (only once all checks passed).
    for (const write of residuals) write();
    const biases = new Map<string, Tensor>();
    const copies = new Map<string, Tensor>();
    for (const m of adaptableModules(model)) {
      if (m.bias && biasIsTrained(config)) biases.set(m.path, f32Copy(m.bias).keep());
      if (isSavedModule(config, m.path))
        copies.set(m.path, f32Copy(denseWeight(m.weight, 'modules_to_save')).keep());
    }
    return new LoraAdapter(config, modules, biases, copies);
  }

  /**
   * Routes the model's adapted modules through this adapter. `frozen` promises the weights will
   * not change while attached (inference), so DoRA's column scales are computed once.
   */
  attach(model: DecoderModel, opts: { frozen?: boolean } = {}): void {
    const adapters = this.moduleAdapters(model, opts.frozen ?? false);
    for (const [path, p] of model.projections()) {
      const entry = adapters.get(path);
      p.adapterBias = entry?.bias ?? null;
      p.lora = entry?.lora ? { ...entry.lora, dropout: this.config.loraDropout } : null;
    }
    model.edges = { embed: adapters.get(EMBED_PATH), head: adapters.get(LM_HEAD_PATH) };
  }

  /** Per-row adapter selection for batched inference (models/ LoraLookup), without attaching. */
  lookup(model: DecoderModel): LoraLookup {
    const adapters = this.moduleAdapters(model, true);
    return (path) => adapters.get(path) ?? null;
  }

  /** What this adapter changes in each module of `model`, by module path. */
  private moduleAdapters(model: DecoderModel, frozen: boolean): Map<string, ModuleAdapter> {
    const out = new Map<string, ModuleAdapter>();
    for (const m of adaptableModules(model)) {
      const pair = this.modules.get(m.path);
      const { scale } = moduleLora(this.config, m.path);
      const entry: ModuleAdapter = {
        lora: pair && m.kind === 'linear' ? this.linearLora(m, frozen) : null,
        embedLora:
          pair && m.kind === 'embedding'
            ? { aT: this.derive(transposed(pair.a)), b: pair.b, scale }
            : null,
        bias: this.biases.get(m.path) ?? null,
        weight: this.copies.get(m.path) ?? null,
      };
      if (entry.lora || entry.embedLora || entry.bias || entry.weight) out.set(m.path, entry);
    }
    return out;
  }

  /** LoRA weights of one linear module; with `frozen`, DoRA's column scale computed once. */
  private linearLora(m: AdaptableModule, frozen: boolean): LoraWeights {
    const lora = this.loraWeights(m.path);
    if (lora.magnitude && frozen)
      lora.columnScale = this.derive(
        doraColumnScale(denseWeight(m.weight, 'DoRA'), lora, lora.magnitude),
      );
    return lora;
  }

  /**
   * A and B as applied to the original base weights. For a loaded PiSSA / OLoRA adapter PEFT's model is
   * (W − s·B₀·A₀)·x + s·B·A·x, i.e. the rank-2r LoRA [A; A₀], [B, −B₀] on W itself.
   */
  effectivePair(path: string): { a: Tensor; b: Tensor } {
    const pair = this.modules.get(path)!;
    const start = this.residualStarts.get(path);
    if (!start) return pair;
    let combined = this.combined.get(path);
    if (!combined) {
      const [r, inFeatures] = pair.a.shape as [number, number];
      const outFeatures = pair.b.shape[0]!;
      const a = new Float32Array(2 * r * inFeatures);
      a.set(hostF32(pair.a));
      a.set(start.a, r * inFeatures);
      const b = new Float32Array(outFeatures * 2 * r);
      const trained = hostF32(pair.b);
      for (let o = 0; o < outFeatures; o++) {
        for (let j = 0; j < r; j++) {
          b[o * 2 * r + j] = trained[o * r + j]!;
          b[o * 2 * r + r + j] = -start.b[o * r + j]!;
        }
      }
      combined = {
        a: this.derive(Tensor.from(a, [2 * r, inFeatures])),
        b: this.derive(Tensor.from(b, [outFeatures, 2 * r])),
      };
      this.combined.set(path, combined);
    }
    return combined;
  }

  /**
   * The LoRA weights of a linear module as they apply to its original base weight: A and B
   * (PiSSA's pair folded in, effectivePair), its scale and DoRA magnitude.
   */
  loraWeights(path: string): LoraWeights {
    const pair = this.modules.get(path);
    if (!pair) throw new Error(`the adapter has no LoRA on ${path}`);
    return {
      ...this.effectivePair(path),
      scale: moduleLora(this.config, path).scale,
      magnitude: pair.magnitude,
    };
  }

  /** s·B·A [out, in] f32 of a linear module on the backend (PEFT's get_delta_weight): what merging adds. */
  delta(path: string): Tensor {
    return noGrad(() => loraDelta(this.loraWeights(path)));
  }

  /** Keeps a tensor computed from the adapter's weights until the adapter is disposed. */
  private derive(t: Tensor): Tensor {
    this.derived.push(t.keep());
    return t;
  }

  /** Removes any adapter from the model's projections. */
  static detach(model: DecoderModel): void {
    for (const [, p] of model.projections()) {
      p.lora = null;
      p.adapterBias = null;
    }
    model.edges = {};
  }

  /** Marks the A and B matrices as trained (or frozen). */
  setTrainable(trainable: boolean): void {
    for (const [, t] of this.namedParameters()) t.requiresGrad = trainable;
  }

  /** Trainable tensors under their PEFT file keys. */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, { a, b, magnitude }] of this.modules) {
      const kind = path === EMBED_PATH ? 'embedding' : 'linear';
      out.push([peftKey.a(path, kind), a], [peftKey.b(path, kind), b]);
      if (magnitude) out.push([peftKey.magnitude(path), magnitude]);
    }
    for (const [path, bias] of this.biases)
      out.push([peftKey.bias(path, this.modules.has(path)), bias]);
    for (const [path, copy] of this.copies) out.push([peftKey.copy(path), copy]);
    return out;
  }

  /** Number of adapter weights. */
  parameterCount(): number {
    return this.namedParameters().reduce((n, [, t]) => n + t.size, 0);
  }

  /** Frees the adapter weights. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) t.dispose();
    for (const t of this.derived.splice(0)) t.dispose();
  }
}

/**
 * Biases saved with the adapter: PEFT's "all" saves every bias; its "lora_only" looks the bias up
 * under a key the model does not have (…q_proj.bias instead of …q_proj.base_layer.bias), so
 * PEFT 0.18.1 saves and loads none.
 */
export function biasIsTrained(config: LoraConfig): boolean {
  return config.bias === 'all';
}

export type ResidualStart = { a: Float32Array; b: Float32Array };

/** A₀ / B₀ of a PiSSA / OLoRA init for a linear module, from its current weight. */
export function residualStart(
  init: ResidualInit,
  m: AdaptableModule,
  r: number,
  scale: number,
): ResidualStart {
  const [outFeatures, inFeatures] = m.weight.shape as [number, number];
  return residualFactors(
    init,
    hostF32(denseWeight(m.weight, `${init} init`)),
    outFeatures,
    inFeatures,
    r,
    scale,
  );
}

/** W ← W − s·B₀·A₀ in the weight's own dtype. */
function writeResidual(m: AdaptableModule, start: ResidualStart, scale: number): void {
  const [outFeatures, inFeatures] = m.weight.shape as [number, number];
  const r = start.a.length / inFeatures;
  const weight = denseWeight(m.weight, 'a residual LoRA init (PiSSA, OLoRA)');
  const w = hostF32(weight);
  for (let o = 0; o < outFeatures; o++) {
    for (let i = 0; i < inFeatures; i++) {
      let ba = 0;
      for (let j = 0; j < r; j++) ba += start.b[o * r + j]! * start.a[j * inFeatures + i]!;
      w[o * inFeatures + i] = w[o * inFeatures + i]! - scale * ba;
    }
  }
  const residual = Tensor.from(w, m.weight.shape);
  residual.backend.kernels.convert(
    { src: residual.operand(), dst: weight.operand() },
    { n: w.length },
  );
  residual.dispose();
}

/** A trainable f32 copy of a weight of any float dtype. */
function f32Copy(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape);
  out.backend.kernels.convert({ src: t.operand(), dst: out.operand() }, { n: t.size });
  return out;
}

/** Aᵀ of a 2-D f32 tensor (host transpose: embedding LoRA tables are small). */
function transposed(t: Tensor): Tensor {
  const [rows, cols] = t.shape as [number, number];
  const src = hostF32(t);
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return Tensor.from(out, [cols, rows]);
}

/** Host f32 values of a tensor of any float dtype, read back from any backend. */
export async function downloadF32(t: Tensor): Promise<Float32Array> {
  if (t.dtype === 'f32') return t.toFloat32();
  const copy = f32Copy(t);
  try {
    return await copy.toFloat32();
  } finally {
    copy.dispose();
  }
}

/** Host f32 values of a tensor of any float dtype (CPU backend). */
export function hostF32(t: Tensor): Float32Array {
  const copy = f32Copy(t);
  const values = (copy.readSync() as Float32Array).slice();
  copy.dispose();
  return values;
}

/** PEFT's print_trainable_parameters line. */
export function trainableParametersReport(model: DecoderModel, adapter: LoraAdapter): string {
  const trainable = adapter.parameterCount();
  const all = baseParameterCountOf(model.config) + trainable;
  return `trainable params: ${formatCount(trainable)} || all params: ${formatCount(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
}
