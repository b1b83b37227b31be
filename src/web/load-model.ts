/** A model folder's model and tokenizer, from files in memory (see model-files.ts). */
import { tokenizerFromFiles, type HfTokenizer } from '../io/hf-tokenizer.ts';
import { SafetensorsBuffer } from '../io/safetensors-buffer.ts';
import { parseDecoderConfig } from '../models/config.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { modelFromTensors } from '../models/from-tensors.ts';
import { LoraforgeError } from '../util/errors.ts';
import { readJsonObject, type ModelFiles } from './model-files.ts';

/** A model and its tokenizer, loaded from bytes. */
export interface LoadedModel {
  model: DecoderModel;
  tokenizer: HfTokenizer;
}

/** Loads a model folder given as files (URLs or picked files) on the current backend. */
export async function loadModelFiles(files: ModelFiles): Promise<LoadedModel> {
  const missing = (name: string) => new LoraforgeError(`${files.label}: no ${name}`);
  const config = await readJsonObject(files, 'config.json');
  if (!config) throw missing('config.json');
  const tokenizerJson = await readJsonObject(files, 'tokenizer.json');
  if (!tokenizerJson) throw missing('tokenizer.json');
  const weights = await files.read('model.safetensors');
  if (!weights) throw missing('model.safetensors (the page loads single-file safetensors models)');

  const tokenizer = tokenizerFromFiles(
    {
      tokenizerJson,
      tokenizerConfig: (await readJsonObject(files, 'tokenizer_config.json')) ?? {},
      generationConfig: await readJsonObject(files, 'generation_config.json'),
    },
    `${files.label}tokenizer.json`,
  );
  const decoderConfig = parseDecoderConfig(config, `${files.label}config.json`);
  const source = new SafetensorsBuffer(new Uint8Array(weights), `${files.label}model.safetensors`);
  return { model: modelFromTensors(decoderConfig, source, files.label), tokenizer };
}
