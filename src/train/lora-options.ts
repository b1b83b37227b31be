/** The `loraforge train` LoRA keys → PEFT's LoraConfig (every value checked, refusals by name). */
import { makeLoraConfig, type LoraConfig, type LoraInit } from '../peft/config.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { TrainConfig } from './config.ts';

/** lora_init → PEFT's init_lora_weights; the inits that rewrite base weights are refused by name. */
function loraInitOf(value: string): LoraInit {
  if (['kaiming', 'gaussian', 'pissa', 'olora'].includes(value)) return value as LoraInit;
  throw new LoraforgeError(
    `lora_init "${value}" is not supported`,
    /^(pissa_niter|corda|loftq|eva|orthogonal)/.test(value)
      ? `loraforge trains with kaiming (PEFT's default), gaussian, pissa (exact SVD) or olora; ${value} is not implemented`
      : 'use kaiming, gaussian, pissa or olora',
  );
}

const list = (value: string | undefined): string[] | null =>
  value === undefined
    ? null
    : value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

function numbers(map: Record<string, string> | undefined, key: string): Record<string, number> {
  return Object.fromEntries(
    Object.entries(map ?? {}).map(([k, v]) => {
      const n = Number(v);
      if (!(n > 0)) throw new LoraforgeError(`${key}: ${k}=${v} is not a positive number`);
      return [k, n];
    }),
  );
}

/** The train keys → PEFT's LoraConfig. */
export function loraConfigOf(cfg: TrainConfig): LoraConfig {
  if (cfg.lora_bias !== 'none' && cfg.lora_bias !== 'all') {
    throw new LoraforgeError(
      `lora_bias "${cfg.lora_bias}" is not supported`,
      cfg.lora_bias === 'lora_only'
        ? 'PEFT 0.18.1 saves no lora_only biases; use all or none'
        : 'use none or all',
    );
  }
  const layers = list(cfg.lora_layers)?.map((s) => {
    if (!/^\d+$/.test(s)) throw new LoraforgeError(`lora_layers: "${s}" is not a layer index`);
    return Number(s);
  });
  return makeLoraConfig(
    {
      r: cfg.lora_rank,
      loraAlpha: cfg.lora_alpha,
      loraDropout: cfg.lora_dropout,
      targetModules: cfg.lora_target === 'all-linear' ? 'all-linear' : list(cfg.lora_target)!,
      excludeModules: list(cfg.lora_exclude),
      layersToTransform: layers ?? null,
      rankPattern: numbers(cfg.lora_rank_pattern, 'lora_rank_pattern'),
      alphaPattern: numbers(cfg.lora_alpha_pattern, 'lora_alpha_pattern'),
      useRslora: cfg.use_rslora,
      useDora: cfg.use_dora,
      bias: cfg.lora_bias,
      modulesToSave: list(cfg.additional_target),
      init: loraInitOf(cfg.lora_init),
      baseModelNameOrPath: cfg.model,
    },
    'train config',
  );
}
