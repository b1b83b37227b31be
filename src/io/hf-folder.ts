/**
 * A Hugging Face model folder as `save_pretrained` writes it: `config.json`, optional
 * `generation_config.json`, and safetensors weights (one file or an index plus shards).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';
import {
  parseJsonChecked,
  readCheckedAsync,
  readTextChecked,
  decodeUtf8,
  READ_LIMITS,
  type SafeReadOptions,
} from './safe-read.ts';
import { readWeightMap } from './safetensors.ts';

export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

export type JsonObject = Record<string, unknown>;

export interface ModelFolder {
  readonly dir: string;
  /** config.json as parsed; interpreting it is the models/ layer's job. */
  readonly config: JsonObject;
  readonly generationConfig: JsonObject | undefined;
  /** Absolute paths of the safetensors files holding the weights. */
  readonly weightFiles: string[];
}

/** Parses a JSON file that must hold an object (a regular file of config size); errors name the file. */
export function readJsonObject(path: string, opts: Partial<SafeReadOptions> = {}): JsonObject {
  const text = readTextChecked(path, { maxBytes: READ_LIMITS.config, ...opts });
  return expectJsonObject(parseJsonChecked(text, path), path);
}

/** readJsonObject without blocking the event loop (the server's path). */
export async function readJsonObjectAsync(
  path: string,
  opts: Partial<SafeReadOptions> = {},
): Promise<JsonObject> {
  const bytes = await readCheckedAsync(path, { maxBytes: READ_LIMITS.config, ...opts });
  return expectJsonObject(parseJsonChecked(decodeUtf8(bytes, path), path), path);
}

function expectJsonObject(value: unknown, path: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LoraforgeError(`${path}: expected a JSON object`);
  }
  return value as JsonObject;
}

function assertFolder(dir: string): void {
  if (!existsSync(dir)) {
    throw new LoraforgeError(
      `${dir}: no such folder`,
      'pass a local model folder or a Hugging Face model id such as Qwen/Qwen2.5-0.5B-Instruct',
    );
  }
  if (!statSync(dir).isDirectory())
    throw new LoraforgeError(`${dir}: is a file, expected a model folder`);
}

/** config.json of a model folder; explains what the folder looks like instead when it is missing. */
export function readModelConfig(dir: string): JsonObject {
  assertFolder(dir);
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) {
    const isAdapter = existsSync(join(dir, 'adapter_config.json'));
    throw new LoraforgeError(
      `${dir}: not a model folder (no ${CONFIG_FILE})`,
      isAdapter
        ? 'this is a LoRA adapter folder; pass it as the adapter and the base model as the model'
        : 'expected a Hugging Face model folder with config.json and model.safetensors',
    );
  }
  return readJsonObject(path);
}

export function readGenerationConfig(dir: string): JsonObject | undefined {
  const path = join(dir, GENERATION_CONFIG_FILE);
  return existsSync(path) ? readJsonObject(path) : undefined;
}

/** The safetensors files of a model folder: the shards named by the index, else model.safetensors. */
export function listWeightFiles(dir: string): string[] {
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (existsSync(indexPath)) {
    const shards = [...new Set(Object.values(readWeightMap(indexPath)))].sort();
    for (const shard of shards) {
      if (!existsSync(join(dir, shard))) {
        throw new LoraforgeError(
          `${indexPath}: lists ${shard}, which is missing`,
          'the download is incomplete; fetch the model again',
        );
      }
    }
    return shards.map((shard) => join(dir, shard));
  }
  if (existsSync(join(dir, WEIGHTS_FILE))) return [join(dir, WEIGHTS_FILE)];
  const hasTorchWeights = readdirSync(dir).some((name) => /^pytorch_model.*\.bin$/.test(name));
  throw new LoraforgeError(
    `${dir}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}`,
    hasTorchWeights
      ? 'only safetensors weights are supported; re-save with transformers save_pretrained(safe_serialization=True)'
      : 'the folder holds no model weights',
  );
}

export function readModelFolder(dir: string): ModelFolder {
  const config = readModelConfig(dir);
  return {
    dir,
    config,
    generationConfig: readGenerationConfig(dir),
    weightFiles: listWeightFiles(dir),
  };
}
