/**
 * One-call loaders for library users (transformers.js' `from_pretrained` in spirit): a Hugging
 * Face id or a local folder in, the compute device chosen, the weights stored in the asked dtype.
 */
import { selectBackend, type BackendOptions } from '../engine/select-backend.ts';
import { ChatPipeline, type PipelineOptions } from '../infer/pipeline.ts';
import { resolveModel, type ResolveModelOptions } from '../io/hub.ts';
import { loadTokenizer as loadTokenizerFolder, type HfTokenizer } from '../io/tokenizer.ts';
import type { DecoderModel } from '../models/decoder.ts';
import type { Quantization } from '../models/quantized-load.ts';
import {
  loadDecoderConfig,
  loadModel as loadModelFolder,
  type WeightDType,
} from '../models/load.ts';
import { autoWeightDType } from '../models/shapes.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { adapterNeedsBaseWeights, loadAdapter, loadAdapterForConfig } from '../peft/io.ts';

/** Where the weights come from and where they run. */
export interface FromPretrainedOptions extends BackendOptions {
  /** Storage of the weight matrices; `auto` (default): bf16 above 100M parameters, else f32. */
  dtype?: WeightDType | 'auto';
  /** Quantize the decoder projections while loading (QLoRA's frozen base). */
  quantization?: Quantization | null;
  /** Hub cache and download settings, for a model given by id. */
  hub?: ResolveModelOptions;
  /** Called after each weight tensor is loaded (for progress bars). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Loads a causal LM from a Hugging Face id (cached or downloaded) or a local folder holding
 * `config.json` and safetensors weights, on `device` (`auto`: a hardware GPU through WebGPU if
 * there is one, else the CPU).
 */
export async function loadModel(
  model: string,
  options: FromPretrainedOptions = {},
): Promise<DecoderModel> {
  await selectBackend(options);
  const dir = await resolveModel(model, options.hub);
  const dtype =
    !options.dtype || options.dtype === 'auto'
      ? autoWeightDType(loadDecoderConfig(dir))
      : options.dtype;
  return loadModelFolder(dir, {
    dtype,
    quantization: options.quantization,
    onTensor: options.onProgress,
  });
}

/**
 * The adapter at `adapterDir` for the model folder `modelDir`, on `device`, for a merge or an
 * export: read against the model's shapes alone, so the model is never loaded, unless the adapter
 * is checked against the base weights (PiSSA / OLoRA, LoRA on the embeddings); then the model is
 * loaded too (bf16 unless `dtype` says otherwise).
 */
export async function loadAdapterForModel(
  modelDir: string,
  adapterDir: string,
  options: BackendOptions & { dtype?: WeightDType } = {},
): Promise<LoraAdapter> {
  await selectBackend({ device: options.device, threads: options.threads });
  const config = loadDecoderConfig(modelDir);
  if (!adapterNeedsBaseWeights(adapterDir, config)) return loadAdapterForConfig(adapterDir, config);
  const model = loadModelFolder(modelDir, { dtype: options.dtype ?? 'bf16' });
  return loadAdapter(adapterDir, model);
}

/** Loads the tokenizer (with its chat template) of a Hugging Face id or a local model folder. */
export async function loadTokenizer(
  model: string,
  options: { hub?: ResolveModelOptions } = {},
): Promise<HfTokenizer> {
  return loadTokenizerFolder(await resolveModel(model, options.hub));
}

/**
 * Model, tokenizer, optional LoRA adapter and prompt template in one object, ready to chat:
 * `(await loadChatPipeline({ model, adapter })).chat([{ role: 'user', content: 'hi' }])`.
 */
export async function loadChatPipeline(
  options: PipelineOptions & BackendOptions,
): Promise<ChatPipeline> {
  await selectBackend(options);
  return ChatPipeline.load(options);
}
