/**
 * Which sampling settings a generation uses: the model's `generation_config.json` gives the
 * defaults (as transformers' `generate()` and vLLM do), and what the user asks for (a CLI flag,
 * a request field) overrides them one field at a time. Every command (`chat`, `generate`, `eval`,
 * `serve`) resolves its settings here, so the same prompt gets the same text everywhere.
 */
import type { JsonObject } from '../io/hf-folder.ts';
import type { SamplingOptions } from './sampling.ts';

/**
 * transformers' GenerationConfig defaults when a file enables sampling but leaves a field out
 * (`do_sample: true` alone means temperature 1 and top-k 50 there).
 */
const TRANSFORMERS_SAMPLING = { temperature: 1, topK: 50, topP: 1 };

const numberField = (config: JsonObject, key: string): number | undefined => {
  const value = config[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
};

/**
 * The defaults a `generation_config.json` implies. Without `do_sample: true` decoding is greedy
 * (temperature 0), as in transformers; a repetition penalty applies either way.
 */
export function samplingDefaults(generationConfig: JsonObject | undefined): SamplingOptions {
  const config = generationConfig ?? {};
  const repetitionPenalty = numberField(config, 'repetition_penalty') ?? 1;
  if (config.do_sample !== true) return { temperature: 0, topK: 0, topP: 1, repetitionPenalty };
  return {
    temperature: numberField(config, 'temperature') ?? TRANSFORMERS_SAMPLING.temperature,
    topK: numberField(config, 'top_k') ?? TRANSFORMERS_SAMPLING.topK,
    topP: numberField(config, 'top_p') ?? TRANSFORMERS_SAMPLING.topP,
    repetitionPenalty,
  };
}

const SAMPLING_KEYS = [
  'temperature',
  'topK',
  'topP',
  'repetitionPenalty',
  'presencePenalty',
  'frequencyPenalty',
  'seed',
] as const satisfies readonly (keyof SamplingOptions)[];

/**
 * The defaults with every sampling field the caller set (not undefined) put over them; other
 * fields of `requested` (a token budget, callbacks) are not copied.
 */
export function resolveSampling(
  defaults: SamplingOptions,
  requested: SamplingOptions = {},
): SamplingOptions {
  const resolved: SamplingOptions = { ...defaults };
  for (const key of SAMPLING_KEYS) {
    if (requested[key] !== undefined) resolved[key] = requested[key];
  }
  return resolved;
}

/** One line for start-up messages, e.g. "greedy" or "temperature 0.7, top-p 0.8, top-k 20". */
export function describeSampling(options: SamplingOptions): string {
  const parts: string[] = [];
  if (!options.temperature) parts.push('greedy');
  else {
    parts.push(`temperature ${options.temperature}`);
    if (options.topP !== undefined && options.topP < 1) parts.push(`top-p ${options.topP}`);
    if (options.topK) parts.push(`top-k ${options.topK}`);
  }
  if (options.repetitionPenalty !== undefined && options.repetitionPenalty !== 1)
    parts.push(`repetition penalty ${options.repetitionPenalty}`);
  return parts.join(', ');
}
