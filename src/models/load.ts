/** Loads a Hugging Face model folder (config.json + safetensors weights) into a DecoderModel. */
import { join } from 'node:path';
import { readModelConfig } from '../io/hf-folder.ts';
import { SafetensorsFolder } from '../io/safetensors.ts';
import { parseDecoderConfig, type DecoderConfig } from './config.ts';
import type { DecoderModel } from './decoder.ts';
import { modelFromTensors, type LoadModelOptions } from './from-tensors.ts';
import { checkQuantizationConfig } from './quantized-load.ts';

export { loadTensor, type LoadModelOptions, type WeightDType } from './from-tensors.ts';

export function loadDecoderConfig(dir: string): DecoderConfig {
  return parseDecoderConfig(readModelConfig(dir), join(dir, 'config.json'));
}

export function loadModel(dir: string, opts: LoadModelOptions = {}): DecoderModel {
  checkQuantizationConfig(readModelConfig(dir), join(dir, 'config.json'));
  const config = loadDecoderConfig(dir);
  const source = SafetensorsFolder.open(dir);
  try {
    return modelFromTensors(config, source, dir, opts);
  } finally {
    source.close();
  }
}
