/**
 * Adapters on disk in PEFT's format: adapter_config.json + adapter_model.safetensors (keys
 * base_model.model.<module>.lora_A.weight / lora_B.weight), plus loraforge.json recording how the
 * adapter was trained (prompt template, base model) so inference uses the same template.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.ts';
import { readJsonObject } from '../io/hf-folder.ts';
import { SafetensorsFile, encodeSafetensors, type NamedTensorData } from '../io/safetensors.ts';
import { loadTensor } from '../models/load.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { LoraforgeError } from '../util/errors.ts';
import { LoraAdapter, type LoraPair } from './adapter.ts';
import { isTargeted, parsePeftConfig, toPeftConfig } from './config.ts';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const LORAFORGE_META_FILE = 'loraforge.json';

/** What loraforge records beside the PEFT files. */
export interface AdapterMeta {
  /** Prompt template spec used in training (data/templates). */
  template?: unknown;
  baseModel?: string;
  [key: string]: unknown;
}

/** Host copies of the adapter tensors in PEFT's key order. */
export async function adapterTensors(adapter: LoraAdapter): Promise<NamedTensorData[]> {
  const out: NamedTensorData[] = [];
  for (const [name, t] of adapter.namedParameters()) {
    out.push({ name, dtype: 'F32', shape: t.shape, data: await t.toFloat32() });
  }
  return out;
}

/** Writes the adapter folder atomically (a crash leaves the previous version intact). */
export async function saveAdapter(
  dir: string,
  adapter: LoraAdapter,
  meta: AdapterMeta = {},
): Promise<void> {
  const tensors = await adapterTensors(adapter);
  writeDirAtomic(dir, (tmp) => writeAdapterFiles(tmp, adapter, tensors, meta));
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
  writeFileAtomic(
    join(dir, ADAPTER_CONFIG_FILE),
    JSON.stringify(toPeftConfig(adapter.config, adapter.moduleNames()), null, 2) + '\n',
  );
  writeFileAtomic(join(dir, ADAPTER_WEIGHTS_FILE), encodeSafetensors(tensors));
  writeFileAtomic(join(dir, LORAFORGE_META_FILE), JSON.stringify(meta, null, 2) + '\n');
  writeFileAtomic(
    join(dir, 'README.md'),
    `---\nlibrary_name: peft\nbase_model: ${adapter.config.baseModelNameOrPath ?? ''}\n---\n\nLoRA adapter trained with loraforge.\n`,
  );
}

/** Whether `dir` holds a PEFT adapter (adapter_config.json). */
export function isAdapterFolder(dir: string): boolean {
  return existsSync(join(dir, ADAPTER_CONFIG_FILE));
}

/** What loraforge recorded beside an adapter (prompt template, base model, training config). */
export function readAdapterMeta(dir: string): AdapterMeta {
  const path = join(dir, LORAFORGE_META_FILE);
  return existsSync(path) ? (readJsonObject(path) as AdapterMeta) : {};
}

/** Loads a PEFT adapter folder for `model` (shapes checked against the model's projections). */
export function loadAdapter(dir: string, model: DecoderModel): LoraAdapter {
  if (!isAdapterFolder(dir)) {
    throw new LoraforgeError(`${dir}: not a LoRA adapter folder (no ${ADAPTER_CONFIG_FILE})`);
  }
  const config = parsePeftConfig(
    readJsonObject(join(dir, ADAPTER_CONFIG_FILE)),
    join(dir, ADAPTER_CONFIG_FILE),
  );
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) throw new LoraforgeError(`${dir}: missing ${ADAPTER_WEIGHTS_FILE}`);
  const file = SafetensorsFile.open(weightsPath);
  const modules = new Map<string, LoraPair>();
  try {
    // PEFT sometimes writes keys with the adapter name (…lora_A.default.weight); accept both.
    const keyFor = (path: string, which: 'A' | 'B'): string => {
      const plain = `base_model.model.${path}.lora_${which}.weight`;
      return file.has(plain) ? plain : `base_model.model.${path}.lora_${which}.default.weight`;
    };
    for (const [path, p] of model.projections()) {
      if (!isTargeted(config, path)) continue;
      const [outFeatures, inFeatures] = p.weight.shape as [number, number];
      modules.set(path, {
        a: loadTensor(file, keyFor(path, 'A'), [config.r, inFeatures], 'f32', weightsPath),
        b: loadTensor(file, keyFor(path, 'B'), [outFeatures, config.r], 'f32', weightsPath),
      });
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
  } finally {
    file.close();
  }
  return new LoraAdapter(config, modules);
}
