/**
 * A LoRA adapter: low-rank A [r, in] and B [out, r] per targeted projection, keyed by the module
 * path PEFT uses. Attaching it to a model makes every targeted projection compute
 * x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ; the base weights are never modified.
 */
import { Tensor } from '../engine/tensor.ts';
import type { DecoderModel, LoraLookup } from '../models/decoder.ts';
import { Rng } from '../util/rng.ts';
import { formatCount } from '../util/format.ts';
import { LoraforgeError } from '../util/errors.ts';
import { isTargeted, loraScale, type LoraConfig } from './config.ts';
import { baseParameterCountOf } from '../models/shapes.ts';

export interface LoraPair {
  a: Tensor;
  b: Tensor;
}

/** LoRA weights (A and B per targeted projection) with their config; `create` a fresh one or `loadAdapter` a PEFT folder, then `attach` it to the model. */
export class LoraAdapter {
  constructor(
    readonly config: LoraConfig,
    /** Module path (e.g. model.layers.0.self_attn.q_proj) → weights. */
    readonly modules: Map<string, LoraPair>,
  ) {}

  /** Fresh adapter for `model` with PEFT's initialisation (B = 0, so the model is unchanged). */
  static create(model: DecoderModel, config: LoraConfig, seed = 0): LoraAdapter {
    refuseMissingTargets(model, config);
    const rng = new Rng(seed);
    const modules = new Map<string, LoraPair>();
    for (const [path, p] of model.projections()) {
      if (!isTargeted(config, path)) continue;
      const [outFeatures, inFeatures] = p.weight.shape as [number, number];
      const a = new Float32Array(config.r * inFeatures);
      if (config.init === 'gaussian') {
        for (let i = 0; i < a.length; i++) a[i] = rng.normal(0, 1 / config.r);
      } else {
        // Kaiming-uniform with a = √5 (nn.Linear's default, which PEFT uses): bound = 1/√fan_in.
        const bound = 1 / Math.sqrt(inFeatures);
        for (let i = 0; i < a.length; i++) a[i] = (rng.uniform() * 2 - 1) * bound;
      }
      modules.set(path, {
        a: Tensor.from(a, [config.r, inFeatures]).keep(),
        b: Tensor.zeros([outFeatures, config.r]).keep(),
      });
    }
    return new LoraAdapter(config, modules);
  }

  /** Routes the model's targeted projections through this adapter. */
  attach(model: DecoderModel): void {
    const scale = loraScale(this.config);
    for (const [path, p] of model.projections()) {
      const pair = this.modules.get(path);
      p.lora = pair ? { ...pair, scale, dropout: this.config.loraDropout } : null;
    }
  }

  /** Per-row adapter selection for batched inference (models/ LoraLookup), without attaching. */
  lookup(): LoraLookup {
    const scale = loraScale(this.config);
    const weights = new Map([...this.modules].map(([path, pair]) => [path, { ...pair, scale }]));
    return (path) => weights.get(path) ?? null;
  }

  /** Removes any adapter from the model's projections. */
  static detach(model: DecoderModel): void {
    for (const [, p] of model.projections()) p.lora = null;
  }

  /** Marks the A and B matrices as trained (or frozen). */
  setTrainable(trainable: boolean): void {
    for (const { a, b } of this.modules.values()) {
      a.requiresGrad = trainable;
      b.requiresGrad = trainable;
    }
  }

  /** Trainable tensors under their PEFT file keys (…lora_A.weight / …lora_B.weight). */
  namedParameters(): [string, Tensor][] {
    return [...this.modules].flatMap(([path, { a, b }]): [string, Tensor][] => [
      [`base_model.model.${path}.lora_A.weight`, a],
      [`base_model.model.${path}.lora_B.weight`, b],
    ]);
  }

  /** The distinct module names adapted (q_proj, …, down_proj), in module order. */
  moduleNames(): string[] {
    return [...new Set([...this.modules.keys()].map((path) => path.split('.').at(-1)!))];
  }

  /** Number of adapter weights. */
  parameterCount(): number {
    return this.namedParameters().reduce((n, [, t]) => n + t.size, 0);
  }

  /** Frees the adapter weights. */
  dispose(): void {
    for (const { a, b } of this.modules.values()) {
      a.dispose();
      b.dispose();
    }
  }
}

/**
 * Target module names this model does not have: a recipe written for separate q/k/v (q_proj,
 * v_proj) would adapt nothing of Phi-3's fused qkv_proj, so it is refused with the model's names.
 */
function refuseMissingTargets(model: DecoderModel, config: LoraConfig): void {
  if (!Array.isArray(config.targetModules)) return;
  const names = new Set([...model.projections()].map(([, , name]) => name as string));
  const missing = config.targetModules.filter((t) => !names.has(t.split('.').at(-1)!));
  if (missing.length) {
    throw new LoraforgeError(
      `target_modules ${missing.join(', ')}: ${model.config.architecture} has no such projection`,
      `its projections are ${[...names].join(', ')} (or use 'all-linear')`,
    );
  }
}

/** PEFT's print_trainable_parameters line. */
export function trainableParametersReport(model: DecoderModel, adapter: LoraAdapter): string {
  const trainable = adapter.parameterCount();
  const all = baseParameterCountOf(model.config) + trainable;
  return `trainable params: ${formatCount(trainable)} || all params: ${formatCount(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
}
