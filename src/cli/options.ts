/** Options several commands share: model loading, device, sampling. */
import { Option, type Command } from 'commander';
import {
  camel,
  describeRange,
  DEVICE_NAMES,
  flagName,
  gemmPrecisionOf,
  PRECISION_OPTIONS,
  QUANTIZATION_OPTIONS,
  quantizationFromOptions,
  resolveOptions,
  type OptionTable,
  inSamplingRange,
  loadChatPipeline,
  LoraforgeError,
  ProgressBar,
  type BackendOptions,
  type ChatPipeline,
  type DeviceName,
  type SamplingOptions,
  type WeightDType,
} from '../index.ts';

export function addDeviceOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--device <device>',
        'compute device: auto (a hardware GPU through WebGPU if there is one, else the CPU), cpu (native code if built for this machine, else WebAssembly), wasm (WebAssembly), or webgpu (any adapter, software ones included)',
      )
        .choices(DEVICE_NAMES)
        .default('auto'),
    )
    .option('--threads <n>', 'CPU threads, native or wasm (default: all cores)', parseInteger);
}

/** One flag per key of an option table (`--lora-rank <value>`), with its help, choices and default. */
export function addTableFlags(cmd: Command, table: OptionTable): Command {
  for (const [key, spec] of Object.entries(table)) {
    const value = spec.kind === 'boolean' ? '[bool]' : '<value>';
    const choices = spec.choices ? `: ${spec.choices.join(' | ')}` : '';
    const def = spec.default !== undefined ? ` (default ${JSON.stringify(spec.default)})` : '';
    cmd.addOption(new Option(`${flagName(key)} ${value}`, `${spec.help}${choices}${def}`));
  }
  return cmd;
}

/** The values of a table's flags that were given, under the table's keys. */
export function givenTableFlags(
  table: OptionTable,
  flags: Record<string, unknown>,
): Record<string, unknown> {
  const given: Record<string, unknown> = {};
  for (const key of Object.keys(table)) {
    if (flags[camel(key)] !== undefined) given[key] = flags[camel(key)];
  }
  return given;
}

export function addModelOptions(cmd: Command): Command {
  addTableFlags(cmd, QUANTIZATION_OPTIONS);
  addTableFlags(cmd, PRECISION_OPTIONS);
  return addDeviceOptions(cmd)
    .requiredOption('-m, --model <model>', 'model folder or Hugging Face id')
    .option('-a, --adapter <dir>', 'LoRA adapter folder (PEFT format)')
    .option(
      '--template <name>',
      "prompt template: tutorial | chatml | model (default: the adapter's, else the model's)",
    )
    .option(
      '--dtype <dtype>',
      'storage of the weights: auto (bf16 above 100M parameters) | f32 | bf16 | f16',
      parseWeightDtype,
      'auto',
    );
}

/** A parser for a sampling flag that refuses values outside the field's range, naming it. */
function samplingValue(flag: string, field: Parameters<typeof describeRange>[0]) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !inSamplingRange(field, n))
      throw new LoraforgeError(`${flag} ${value}: must be ${describeRange(field)}`);
    return n;
  };
}

const FROM_MODEL = "default: the model's generation_config.json, else greedy";

export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('--max-new-tokens <n>', 'tokens to generate at most', parseInteger, 256)
    .option(
      '--temperature <t>',
      `sampling temperature, 0 = greedy (${FROM_MODEL})`,
      samplingValue('--temperature', 'temperature'),
    )
    .option(
      '--top-k <k>',
      "keep the k most likely tokens, 0 = off (default: the model's)",
      samplingValue('--top-k', 'topK'),
    )
    .option(
      '--top-p <p>',
      "nucleus sampling mass in (0, 1] (default: the model's)",
      samplingValue('--top-p', 'topP'),
    )
    .option(
      '--repetition-penalty <p>',
      "penalty for repeated tokens, 1 = off (default: the model's)",
      samplingValue('--repetition-penalty', 'repetitionPenalty'),
    )
    .option('--seed <n>', 'sampling seed', parseInteger);
}

export interface ModelFlags {
  /** The QUANTIZATION_OPTIONS and PRECISION_OPTIONS flags, under their camelCase names. */
  [quantizationFlag: string]: unknown;
  model: string;
  adapter?: string;
  template?: string;
  dtype: WeightDType | 'auto';
  device: DeviceName;
  threads?: number;
}

/** Unset sampling flags leave the model's generation_config.json defaults in place. */
export interface SamplingFlags {
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed?: number;
}

export function samplingFrom(flags: SamplingFlags): SamplingOptions & { maxNewTokens: number } {
  return {
    maxNewTokens: flags.maxNewTokens,
    temperature: flags.temperature,
    topK: flags.topK,
    topP: flags.topP,
    repetitionPenalty: flags.repetitionPenalty,
    seed: flags.seed,
  };
}

/** The backend a model-loading command's flags ask for (device, threads, bf16 products). */
export function backendOptionsOf(
  flags: Pick<ModelFlags, 'device' | 'threads'> & Record<string, unknown>,
): BackendOptions {
  const precision = resolveOptions(PRECISION_OPTIONS, [
    { values: givenTableFlags(PRECISION_OPTIONS, flags), source: 'command line' },
  ]);
  return {
    device: flags.device,
    threads: flags.threads,
    gemmPrecision: gemmPrecisionOf(precision),
  };
}

/** Selects the device and loads model, tokenizer, adapter and template, with a progress bar. */
export async function loadPipeline(flags: ModelFlags): Promise<ChatPipeline> {
  let bar: ProgressBar | undefined;
  const pipeline = await loadChatPipeline({
    ...backendOptionsOf(flags),
    model: flags.model,
    adapter: flags.adapter,
    template: flags.template,
    dtype: flags.dtype,
    quantization: quantizationFromOptions(
      resolveOptions(QUANTIZATION_OPTIONS, [
        { values: givenTableFlags(QUANTIZATION_OPTIONS, flags), source: 'command line' },
      ]),
    ),
    onWarning: (message) => process.stderr.write(`warning: ${message}\n`),
    onLoadProgress: (done, total) => {
      bar ??= new ProgressBar({ total, label: 'loading', unit: 'tensor' });
      bar.update(done);
    },
  });
  bar?.done();
  return pipeline;
}

const DTYPES = ['f32', 'bf16', 'f16'] as const;
type DtypeName = (typeof DTYPES)[number];

/** A weight dtype flag, lowercase everywhere; BF16 and Bf16 are accepted too. */
export function parseDtype(value: string): DtypeName {
  const dtype = value.toLowerCase();
  if (!(DTYPES as readonly string[]).includes(dtype))
    throw new LoraforgeError(`--dtype ${value}: expected one of ${DTYPES.join(', ')}`);
  return dtype as DtypeName;
}

/** `--dtype` of the commands that load a model: auto or a dtype, case-insensitive. */
export function parseWeightDtype(value: string): DtypeName | 'auto' {
  if (value.toLowerCase() === 'auto') return 'auto';
  try {
    return parseDtype(value);
  } catch {
    throw new LoraforgeError(`--dtype ${value}: expected one of auto, ${DTYPES.join(', ')}`);
  }
}

export function parseInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new LoraforgeError(`"${value}" is not a whole number`);
  return n;
}

export function parseNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new LoraforgeError(`"${value}" is not a number`);
  return n;
}
