/**
 * The page's settings from its URL query, each defaulting to the page's recipe (lora-finetune.ts):
 *
 *   ?steps=40&batch=4&lr=5e-3&rank=8&cutoff=32&schedule=constant&seed=42
 *   &data=name-first|all        which identity records to train on (dataset-text.ts)
 *   &featureLevel=compatibility  ask for a compatibility-mode adapter first (how headless Chromium
 *                                reaches lavapipe: its OpenGL ES adapter over ANGLE's Vulkan)
 */
import { SCHEDULE_NAMES, type ScheduleName } from '../train/schedule.ts';
import { DEFAULT_FINETUNE, type FineTuneOptions } from './lora-finetune.ts';

export type IdentityData = 'name-first' | 'all';
export type FeatureLevel = 'core' | 'compatibility';

export interface PageOptions {
  fineTune: FineTuneOptions;
  data: IdentityData;
  featureLevel: FeatureLevel;
}

export function pageOptions(search: string): PageOptions {
  const query = new URLSearchParams(search);
  /** A positive number (a whole one if `integer`; zero allowed for the seed). */
  const number = (key: string, fallback: number, integer: boolean): number => {
    const text = query.get(key);
    if (text === null) return fallback;
    const value = Number(text);
    const low = key === 'seed' ? value < 0 : value <= 0;
    if (
      text.trim() === '' ||
      !Number.isFinite(value) ||
      low ||
      (integer && !Number.isInteger(value))
    ) {
      throw new Error(`?${key}=${text}: expected a positive ${integer ? 'whole ' : ''}number`);
    }
    return value;
  };
  const choice = <T extends string>(key: string, allowed: readonly T[], fallback: T): T => {
    const text = query.get(key);
    if (text === null) return fallback;
    if (!(allowed as readonly string[]).includes(text)) {
      throw new Error(`?${key}=${text}: expected one of ${allowed.join(', ')}`);
    }
    return text as T;
  };
  const d = DEFAULT_FINETUNE;
  return {
    fineTune: {
      steps: number('steps', d.steps, true),
      batchSize: number('batch', d.batchSize, true),
      learningRate: number('lr', d.learningRate, false),
      rank: number('rank', d.rank, true),
      cutoffLen: number('cutoff', d.cutoffLen, true),
      schedule: choice<ScheduleName>('schedule', SCHEDULE_NAMES, d.schedule),
      seed: number('seed', d.seed, true),
    },
    data: choice<IdentityData>('data', ['name-first', 'all'], 'name-first'),
    featureLevel: choice<FeatureLevel>('featureLevel', ['core', 'compatibility'], 'core'),
  };
}

/** One line for the page: what a fine-tune will do. */
export function describeRecipe({ fineTune: o, data }: PageOptions): string {
  const records =
    data === 'name-first' ? 'the name-first identity records' : 'all identity records';
  return (
    `${o.steps} steps of ${o.batchSize} examples (${o.cutoffLen} tokens at most) from ${records}, ` +
    `LoRA r ${o.rank}, lr ${o.learningRate} ${o.schedule}, seed ${o.seed}`
  );
}
