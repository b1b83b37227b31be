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
import {
  adaptableModules,
  biasIsTrained,
  hostF32,
  LoraAdapter,
  loraShapes,
  peftKey,
  residualStart,
  targetedModules,
  type LoraPair,
  type ResidualStart,
} from './adapter.ts';
import {
  EMBED_PATH,
  embeddingIsTargeted,
  isSavedModule,
  LM_HEAD_PATH,
  moduleLora,
  type LoraConfig,
} from './config.ts';
import { parsePeftConfig, toPeftConfig } from './peft-json.ts';
import { isResidualInit } from './residual-init.ts';
import { Tensor } from '../engine/tensor.ts';

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
  for (const [name, t] of [...adapter.namedParameters(), ...adapter.baseWeights]) {
    // Base weights keep the model's storage dtype, as PEFT saves them.
    const dtype = ({ f32: 'F32', bf16: 'BF16', f16: 'F16' } as const)[t.dtype as 'f32'];
    out.push({ name, dtype, shape: t.shape, data: await t.toFloat32() });
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
    JSON.stringify(toPeftConfig(adapter.config, [...adapter.modules.keys()]), null, 2) + '\n',
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

/** A tensor an adapter file must hold for a config and model: key, shape, and what it is. */
export interface ExpectedTensor {
  key: string;
  shape: number[];
  /** Module path and role (lora A / B, DoRA magnitude, trained bias, saved copy, base weight). */
  path: string;
  role: 'a' | 'b' | 'magnitude' | 'bias' | 'copy' | 'baseWeight';
}

/** Every tensor PEFT 0.18.1 writes for `config` on `model`, in the order loraforge writes them. */
export function expectedTensors(model: DecoderModel, config: LoraConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const targeted = targetedModules(model, config);
  for (const m of targeted) {
    const [aShape, bShape] = loraShapes(m, moduleLora(config, m.path).r);
    out.push(
      { key: peftKey.a(m.path, m.kind), shape: aShape, path: m.path, role: 'a' },
      { key: peftKey.b(m.path, m.kind), shape: bShape, path: m.path, role: 'b' },
    );
    if (config.useDora) {
      if (m.kind === 'embedding')
        throw new LoraforgeError(`use_dora on ${m.path} (DoRA embedding) is not supported`);
      const key = peftKey.magnitude(m.path);
      out.push({ key, shape: [m.weight.shape[0]!], path: m.path, role: 'magnitude' });
    }
  }
  const adapted = new Set(targeted.map((m) => m.path));
  for (const m of adaptableModules(model)) {
    if (m.bias && biasIsTrained(config)) {
      const key = peftKey.bias(m.path, adapted.has(m.path));
      out.push({ key, shape: [...m.bias.shape], path: m.path, role: 'bias' });
    }
    if (isSavedModule(config, m.path)) {
      out.push({
        key: peftKey.copy(m.path),
        shape: [...m.weight.shape],
        path: m.path,
        role: 'copy',
      });
    }
  }
  if (
    embeddingIsTargeted(
      config,
      adaptableModules(model).map((m) => m.path),
    )
  ) {
    for (const m of targeted.filter((t) => t.path === EMBED_PATH || t.path === LM_HEAD_PATH)) {
      const key = peftKey.baseWeight(m.path);
      out.push({ key, shape: [...m.weight.shape], path: m.path, role: 'baseWeight' });
    }
  }
  return out;
}

/** "a, b, c and 4 more" */
function someNames(names: string[], few = 4): string {
  if (names.length === 0) return 'none';
  const shown = names.slice(0, few).join(', ');
  return names.length > few ? `${shown} and ${names.length - few} more` : shown;
}

/** PEFT's older files name the adapter inside keys (…lora_A.default.weight); drop that part. */
function withoutAdapterName(key: string): string {
  return key.replace(/\.default(\.weight|\.bias)?$/, '$1');
}

/**
 * Loads a PEFT adapter folder for `model`. Every tensor the config implies must be in the file,
 * with its shape, and every tensor of the file must be used: anything else is an error naming
 * both lists, never a partial load.
 */
export function loadAdapter(dir: string, model: DecoderModel): LoraAdapter {
  if (!isAdapterFolder(dir)) {
    throw new LoraforgeError(`${dir}: not a LoRA adapter folder (no ${ADAPTER_CONFIG_FILE})`);
  }
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const config = parsePeftConfig(readJsonObject(configPath), configPath);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) {
    if (existsSync(join(dir, 'adapter_model.bin'))) {
      throw new LoraforgeError(
        `${dir}: adapter_model.bin is a PyTorch pickle, which loraforge never loads`,
        'convert it with Python: from safetensors.torch import save_file; import torch; ' +
          "save_file(torch.load('adapter_model.bin', weights_only=True), 'adapter_model.safetensors')",
      );
    }
    throw new LoraforgeError(`${dir}: missing ${ADAPTER_WEIGHTS_FILE}`);
  }
  const expected = expectedTensors(model, config);
  if (expected.length === 0) {
    throw new LoraforgeError(
      `${configPath}: the adapter targets no module of this model`,
      'is it for another base model?',
    );
  }
  const file = SafetensorsFile.open(weightsPath);
  const fileKey = new Map(file.names().map((name) => [withoutAdapterName(name), name]));
  const missing = expected.filter((e) => !fileKey.has(e.key)).map((e) => e.key);
  const wanted = new Set(expected.map((e) => e.key));
  const unexpected = [...fileKey.keys()].filter((k) => !wanted.has(k));
  if (missing.length || unexpected.length) {
    file.close();
    throw new LoraforgeError(
      `${weightsPath}: the tensors do not match ${ADAPTER_CONFIG_FILE}: missing ${someNames(missing)}; unexpected ${someNames(unexpected)}`,
      'a file from another config or base model, or edited by hand; loraforge never loads part of an adapter',
    );
  }
  const modules = new Map<string, LoraPair>();
  const biases = new Map<string, Tensor>();
  const copies = new Map<string, Tensor>();
  const baseWeights = new Map<string, Tensor>();
  const loaded: Tensor[] = [];
  try {
    for (const e of expected) {
      const t = loadTensor(file, fileKey.get(e.key)!, e.shape, 'f32', weightsPath);
      loaded.push(t);
      if (e.role === 'a' || e.role === 'b' || e.role === 'magnitude') {
        const pair = modules.get(e.path) ?? ({ magnitude: null } as unknown as LoraPair);
        pair[e.role] = t;
        modules.set(e.path, pair);
      } else if (e.role === 'bias') biases.set(e.path, t);
      else if (e.role === 'copy') copies.set(e.path, t);
      else {
        checkSameAsBase(t, e, model, weightsPath);
        loaded.pop()!.dispose();
        baseWeights.set(e.key, adaptableModules(model).find((m) => m.path === e.path)!.weight);
      }
    }
  } catch (err) {
    for (const t of loaded) t.dispose();
    throw err;
  } finally {
    file.close();
  }
  // PEFT redoes PiSSA's SVD / OLoRA's QR on the base when it loads such an adapter.
  const residualStarts = new Map<string, ResidualStart>();
  if (isResidualInit(config.init)) {
    for (const m of targetedModules(model, config)) {
      if (m.kind === 'embedding') {
        for (const t of loaded) t.dispose();
        throw new LoraforgeError(
          `${configPath}: init_lora_weights "${config.init}" on ${m.path} is not supported`,
        );
      }
      const { r, scale } = moduleLora(config, m.path);
      residualStarts.set(m.path, residualStart(config.init, m, r, scale));
    }
  }
  return new LoraAdapter(config, modules, biases, copies, baseWeights, residualStarts);
}

/**
 * PEFT writes the base weights of a LoRA-adapted embed_tokens / lm_head and loads them back over
 * the model's; loraforge accepts them only when they are the model's own (within the model's
 * storage precision), since it never rewrites base weights.
 */
function checkSameAsBase(t: Tensor, e: ExpectedTensor, model: DecoderModel, where: string): void {
  const base = hostF32(adaptableModules(model).find((m) => m.path === e.path)!.weight);
  const saved = t.readSync() as Float32Array;
  const tolerance = model.embed.dtype === 'f32' ? 0 : 1 / 128;
  for (let i = 0; i < saved.length; i++) {
    if (Math.abs(saved[i]! - base[i]!) > tolerance * Math.abs(base[i]!)) {
      throw new LoraforgeError(
        `${where}: '${e.key}' differs from the base model's ${e.path} weight (element ${i}: ${saved[i]} vs ${base[i]})`,
        'the adapter was made on another base model, or trained that weight: not supported',
      );
    }
  }
}
