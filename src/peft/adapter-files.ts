/**
 * An adapter folder's files as bytes, with no file system: PEFT's adapter_config.json and
 * adapter_model.safetensors plus loraforge.json (template, base model) and a model card. io.ts
 * writes them to disk; the browser page offers them as downloads.
 */
import { encodeSafetensors, type NamedTensorData } from '../io/safetensors-format.ts';
import type { LoraAdapter } from './adapter.ts';
import { toPeftConfig } from './peft-json.ts';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const LORAFORGE_META_FILE = 'loraforge.json';
/** The model card's line that marks a README.md as loraforge's own (a user's is never replaced). */
export const README_SIGNATURE = 'LoRA adapter trained with loraforge.';

/** What loraforge records beside the PEFT files. */
export interface AdapterMeta {
  /** Prompt template spec used in training (data/templates). */
  template?: unknown;
  baseModel?: string;
  [key: string]: unknown;
}

/** One file of an adapter folder: text, or binary chunks to concatenate. */
export interface AdapterFile {
  name: string;
  contents: string | Uint8Array[];
}

/** Host copies of the adapter tensors in PEFT's key order. */
export async function adapterTensors(adapter: LoraAdapter): Promise<NamedTensorData[]> {
  const out: NamedTensorData[] = [];
  for (const [name, t] of [...adapter.namedParameters(), ...adapter.baseWeights]) {
    // Base weights keep the model's storage dtype, as PEFT saves them.
    const dtype = ({ f32: 'F32', bf16: 'BF16', f16: 'F16' } as const)[t.dtype as 'f32'];
    out.push({ name, dtype, shape: t.shape, data: await t.toFloat32() });
  }
  return out;
}

/** The files of an adapter folder, as PEFT's save_pretrained lays them out (plus loraforge.json). */
export function adapterFiles(
  adapter: LoraAdapter,
  tensors: readonly NamedTensorData[],
  meta: AdapterMeta,
): AdapterFile[] {
  return [
    {
      name: ADAPTER_CONFIG_FILE,
      contents:
        JSON.stringify(toPeftConfig(adapter.config, [...adapter.modules.keys()]), null, 2) + '\n',
    },
    { name: ADAPTER_WEIGHTS_FILE, contents: encodeSafetensors(tensors) },
    { name: LORAFORGE_META_FILE, contents: JSON.stringify(meta, null, 2) + '\n' },
    {
      name: 'README.md',
      contents: `---\nlibrary_name: peft\nbase_model: ${adapter.config.baseModelNameOrPath ?? ''}\n---\n\n${README_SIGNATURE}\n`,
    },
  ];
}
