/** Options several commands share: model loading, device, sampling. */
import { Option, type Command } from 'commander';
import {
  loadChatPipeline,
  LoraforgeError,
  ProgressBar,
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
        'compute device: auto (a hardware GPU through WebGPU if there is one, else the CPU), cpu, or webgpu (any adapter, software ones included)',
      )
        .choices(['cpu', 'webgpu', 'auto'])
        .default('auto'),
    )
    .option('--threads <n>', 'CPU threads (default: all cores)', parseInteger);
}

export function addModelOptions(cmd: Command): Command {
  return addDeviceOptions(cmd)
    .requiredOption('-m, --model <model>', 'model folder or Hugging Face id')
    .option('-a, --adapter <dir>', 'LoRA adapter folder (PEFT format)')
    .option(
      '--template <name>',
      "prompt template: tutorial | chatml | model (default: the adapter's, else the model's)",
    )
    .addOption(
      new Option('--dtype <dtype>', 'storage of the weights (auto: bf16 above 100M parameters)')
        .choices(['auto', 'f32', 'bf16', 'f16'])
        .default('auto'),
    );
}

export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('--max-new-tokens <n>', 'tokens to generate at most', parseInteger, 256)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', parseNumber, 0)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', parseInteger, 0)
    .option('--top-p <p>', 'nucleus sampling mass', parseNumber, 1)
    .option('--repetition-penalty <p>', 'penalty for repeated tokens (1 = off)', parseNumber, 1)
    .option('--seed <n>', 'sampling seed', parseInteger);
}

export interface ModelFlags {
  model: string;
  adapter?: string;
  template?: string;
  dtype: WeightDType | 'auto';
  device: DeviceName;
  threads?: number;
}

export interface SamplingFlags {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
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

/** Selects the device and loads model, tokenizer, adapter and template, with a progress bar. */
export async function loadPipeline(flags: ModelFlags): Promise<ChatPipeline> {
  let bar: ProgressBar | undefined;
  const pipeline = await loadChatPipeline({
    device: flags.device,
    threads: flags.threads,
    model: flags.model,
    adapter: flags.adapter,
    template: flags.template,
    dtype: flags.dtype,
    onLoadProgress: (done, total) => {
      bar ??= new ProgressBar({ total, label: 'loading', unit: 'tensor' });
      bar.update(done);
    },
  });
  bar?.done();
  return pipeline;
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
