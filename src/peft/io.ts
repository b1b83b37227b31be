/**
 * Adapters on disk in PEFT's format: adapter_config.json + adapter_model.safetensors (keys
 * base_model.model.<module>.lora_A.weight / lora_B.weight), plus loraforge.json recording how the
 * adapter was trained (prompt template, base model) so inference uses the same template.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { publishFiles, writeFileAtomic } from '../io/atomic.ts';
import { readJsonObject, readJsonObjectAsync } from '../io/hf-folder.ts';
import { readCheckedAsync, readTextChecked, READ_LIMITS } from '../io/safe-read.ts';
import { SafetensorsBuffer } from '../io/safetensors-buffer.ts';
import {
  SafetensorsFile,
  bytesToF32,
  type NamedTensorData,
  type TensorSource,
} from '../io/safetensors.ts';
import { loadTensor } from '../models/load.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { LoraforgeError } from '../util/errors.ts';
import { LoraAdapter, type LoraPair } from './adapter.ts';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  LORAFORGE_META_FILE,
  adapterFiles,
  README_SIGNATURE,
  adapterTensors,
  type AdapterMeta,
} from './adapter-files.ts';
import { isTargeted, parsePeftConfig, type LoraConfig } from './config.ts';

export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  LORAFORGE_META_FILE,
  adapterTensors,
  type AdapterMeta,
} from './adapter-files.ts';

/** For publishFiles: a README.md in `dir` that loraforge did not write is the user's, kept. */
export function keepUserReadme(dir: string): (name: string) => boolean {
  return (name) => {
    const path = join(dir, name);
    if (name !== 'README.md' || !existsSync(path)) return false;
    try {
      return !readTextChecked(path, { maxBytes: READ_LIMITS.config }).includes(README_SIGNATURE);
    } catch {
      return true; // unreadable, a FIFO, not UTF-8...: certainly not ours
    }
  };
}

/**
 * Writes the adapter files into `dir` (created if missing) file by file, adapter_config.json
 * last: a crash leaves the previous adapter or the new one, and other files in `dir` stay.
 */
export async function saveAdapter(
  dir: string,
  adapter: LoraAdapter,
  meta: AdapterMeta = {},
): Promise<void> {
  const tensors = await adapterTensors(adapter);
  publishFiles(dir, (tmp) => writeAdapterFiles(tmp, adapter, tensors, meta), {
    commitLast: [ADAPTER_CONFIG_FILE],
    keep: keepUserReadme(dir),
  });
}

/** Writes the adapter files into an existing folder (used inside checkpoint folders). */
export function writeAdapterFiles(
  dir: string,
  adapter: LoraAdapter,
  tensors: NamedTensorData[],
  meta: AdapterMeta,
): void {
  mkdirSync(dir, { recursive: true });
  // Each file is fsynced so the folder rename that publishes it is durable.
  for (const { name, contents } of adapterFiles(adapter, tensors, meta)) {
    writeFileAtomic(join(dir, name), contents);
  }
}

/** Whether `dir` holds a PEFT adapter (adapter_config.json). */
export function isAdapterFolder(dir: string): boolean {
  return existsSync(join(dir, ADAPTER_CONFIG_FILE));
}

/** Where an adapter's files may be read from. */
export interface AdapterReadOptions {
  /** Real path of a folder every file read must stay inside (the server's --adapters-dir). */
  within?: string;
}

/** What loraforge recorded beside an adapter (prompt template, base model, training config). */
export function readAdapterMeta(dir: string, opts: AdapterReadOptions = {}): AdapterMeta {
  const path = join(dir, LORAFORGE_META_FILE);
  return existsSync(path) ? (readJsonObject(path, opts) as AdapterMeta) : {};
}

/** readAdapterMeta without blocking the event loop. */
export async function readAdapterMetaAsync(
  dir: string,
  opts: AdapterReadOptions = {},
): Promise<AdapterMeta> {
  const path = join(dir, LORAFORGE_META_FILE);
  return existsSync(path) ? ((await readJsonObjectAsync(path, opts)) as AdapterMeta) : {};
}

function checkAdapterFolder(dir: string): void {
  if (!isAdapterFolder(dir)) {
    throw new LoraforgeError(`${dir}: not a LoRA adapter folder (no ${ADAPTER_CONFIG_FILE})`);
  }
  if (!existsSync(join(dir, ADAPTER_WEIGHTS_FILE)))
    throw new LoraforgeError(`${dir}: missing ${ADAPTER_WEIGHTS_FILE}`);
}

/** Loads a PEFT adapter folder for `model` (shapes checked against the model's projections). */
export function loadAdapter(
  dir: string,
  model: DecoderModel,
  opts: AdapterReadOptions = {},
): LoraAdapter {
  checkAdapterFolder(dir);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const config = parsePeftConfig(readJsonObject(configPath, opts), configPath);
  const file = SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS_FILE), opts.within);
  try {
    return adapterFromTensors(dir, config, file, model);
  } finally {
    file.close();
  }
}

/**
 * loadAdapter for the server: the files are read without blocking the event loop (the weights
 * whole, into memory: adapters are megabytes), and each must be a regular file of bounded size.
 */
export async function loadAdapterAsync(
  dir: string,
  model: DecoderModel,
  opts: AdapterReadOptions = {},
): Promise<LoraAdapter> {
  checkAdapterFolder(dir);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const config = parsePeftConfig(await readJsonObjectAsync(configPath, opts), configPath);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const bytes = await readCheckedAsync(weightsPath, {
    maxBytes: READ_LIMITS.adapterWeights,
    within: opts.within,
  });
  return adapterFromTensors(dir, config, new SafetensorsBuffer(bytes, weightsPath), model);
}

/** A non-finite weight would turn every answer into NaN: refused by tensor and index. */
function checkFinite(source: TensorSource, key: string, where: string): void {
  const info = source.info(key);
  const values = bytesToF32(info.dtype, source.read(key), `${where}: '${key}'`);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      throw new LoraforgeError(
        `${where}: tensor '${key}' holds ${values[i]} at index ${i}; adapter weights must be finite`,
        'the adapter is corrupt or its training diverged: use an earlier checkpoint',
      );
    }
  }
}

function adapterFromTensors(
  dir: string,
  config: LoraConfig,
  source: TensorSource,
  model: DecoderModel,
): LoraAdapter {
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const modules = new Map<string, LoraPair>();
  try {
    // PEFT sometimes writes keys with the adapter name (…lora_A.default.weight); accept both.
    const keyFor = (path: string, which: 'A' | 'B'): string => {
      const plain = `base_model.model.${path}.lora_${which}.weight`;
      return source.has(plain) ? plain : `base_model.model.${path}.lora_${which}.default.weight`;
    };
    for (const [path, p] of model.projections()) {
      if (!isTargeted(config, path)) continue;
      const [outFeatures, inFeatures] = p.weight.shape as [number, number];
      const [keyA, keyB] = [keyFor(path, 'A'), keyFor(path, 'B')];
      const a = loadTensor(source, keyA, [config.r, inFeatures], 'f32', weightsPath);
      const b = loadTensor(source, keyB, [outFeatures, config.r], 'f32', weightsPath);
      modules.set(path, { a, b });
      checkFinite(source, keyA, weightsPath);
      checkFinite(source, keyB, weightsPath);
    }
    if (modules.size === 0) {
      throw new LoraforgeError(
        `${dir}: the adapter targets no module of this model`,
        'is it for another base model?',
      );
    }
  } catch (err) {
    for (const { a, b } of modules.values()) {
      a.dispose();
      b.dispose();
    }
    throw err;
  }
  return new LoraAdapter(config, modules);
}
