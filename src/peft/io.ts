/**
 * Adapters on disk in PEFT's format: adapter_config.json + adapter_model.safetensors (keys
 * base_model.model.<module>.lora_A.weight / lora_B.weight), plus loraforge.json recording how the
 * adapter was trained (prompt template, base model) so inference uses the same template.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { denseWeight } from '../engine/quant/quantized-weight.ts';
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
import type { DecoderConfig } from '../models/config.ts';
import { projectionPath, type DecoderModel } from '../models/decoder.ts';
import { hasBias, projectionShapes } from '../models/shapes.ts';
import { LoraforgeError } from '../util/errors.ts';
import { Tensor } from '../engine/tensor.ts';
import {
  adaptableModules,
  biasIsTrained,
  hostF32,
  LoraAdapter,
  layoutOf,
  loraShapes,
  peftKey,
  residualStart,
  targetedModules,
  type LoraPair,
  type ModuleLayout,
  type ResidualStart,
} from './adapter.ts';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  LORAFORGE_META_FILE,
  README_SIGNATURE,
  adapterFiles,
  adapterTensors,
  type AdapterMeta,
} from './adapter-files.ts';
import {
  EMBED_PATH,
  embeddingIsTargeted,
  isSavedModule,
  isTargeted,
  LM_HEAD_PATH,
  moduleLora,
  type LoraConfig,
} from './config.ts';
import { parsePeftConfig } from './peft-json.ts';
import { isResidualInit } from './residual-init.ts';

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
  if (!existsSync(join(dir, ADAPTER_WEIGHTS_FILE))) {
    if (existsSync(join(dir, 'adapter_model.bin'))) {
      throw new LoraforgeError(
        `${dir}: adapter_model.bin is a PyTorch pickle, which loraforge never loads`,
        'convert it with Python: from safetensors.torch import save_file; import torch; ' +
          "save_file(torch.load('adapter_model.bin', weights_only=True), 'adapter_model.safetensors')",
      );
    }
    throw new LoraforgeError(`${dir}: missing ${ADAPTER_WEIGHTS_FILE}`);
  }
}

/**
 * Loads a PEFT adapter folder for `model`. Every tensor the config implies must be in the file,
 * with its shape, and every tensor of the file must be used: anything else is an error naming
 * both lists, never a partial load.
 */
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
    return adapterFromTensors(dir, config, file, moduleLayouts(model), model);
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
  const source = new SafetensorsBuffer(bytes, weightsPath);
  return adapterFromTensors(dir, config, source, moduleLayouts(model), model);
}

function moduleLayouts(model: DecoderModel): ModuleLayout[] {
  return adaptableModules(model).map(layoutOf);
}

/** The adaptable modules of a model of this config, from its shapes alone. */
function configLayouts(config: DecoderConfig): ModuleLayout[] {
  const shapes = projectionShapes(config);
  const table = [config.vocabSize, config.hiddenSize];
  const projections = Array.from({ length: config.numLayers }, (_, layer) =>
    [...shapes].map(([name, shape]): ModuleLayout => ({
      path: projectionPath(layer, name, config.modulePrefix),
      kind: 'linear',
      shape,
      biasShape: hasBias(config, name) ? [shape[0]] : null,
    })),
  ).flat();
  return [
    { path: EMBED_PATH, kind: 'embedding', shape: table, biasShape: null },
    ...projections,
    { path: LM_HEAD_PATH, kind: 'linear', shape: table, biasShape: null },
  ];
}

/**
 * The adapter for a model of this config without loading the model's weights: an export that
 * streams the base tensor by tensor needs only the module shapes. Adapters whose reading needs the
 * base weights (PiSSA / OLoRA, LoRA on the embeddings) are refused by name.
 */
export function loadAdapterForConfig(dir: string, config: DecoderConfig): LoraAdapter {
  checkAdapterFolder(dir);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const peftConfig = parsePeftConfig(readJsonObject(configPath), configPath);
  const file = SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS_FILE));
  try {
    return adapterFromTensors(dir, peftConfig, file, configLayouts(config), null);
  } finally {
    file.close();
  }
}

/** Why reading an adapter needs the base model's weights (checked against them), or null. */
function baseWeightsNeed(config: LoraConfig, expected: readonly ExpectedTensor[]): string | null {
  if (isResidualInit(config.init)) return `init_lora_weights "${config.init}"`;
  if (expected.some((e) => e.role === 'baseWeight')) return 'LoRA on embed_tokens / lm_head';
  return null;
}

/**
 * Whether reading the adapter at `dir` for a model of this config needs the model's weights
 * (PiSSA / OLoRA starts, LoRA on the embeddings); otherwise loadAdapterForConfig reads it from
 * the shapes alone and a merge never holds the model.
 */
export function adapterNeedsBaseWeights(dir: string, config: DecoderConfig): boolean {
  checkAdapterFolder(dir);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const peftConfig = parsePeftConfig(readJsonObject(configPath), configPath);
  return baseWeightsNeed(peftConfig, expectedTensors(configLayouts(config), peftConfig)) !== null;
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

/** A tensor an adapter file must hold for a config and model: key, shape, and what it is. */
export interface ExpectedTensor {
  key: string;
  shape: number[];
  /** Module path and role (lora A / B, DoRA magnitude, trained bias, saved copy, base weight). */
  path: string;
  role: 'a' | 'b' | 'magnitude' | 'bias' | 'copy' | 'baseWeight';
}

/**
 * Every tensor PEFT 0.18.1 writes for `config` on a model of these modules, in the order
 * loraforge writes them.
 */
export function expectedTensors(
  modules: readonly ModuleLayout[],
  config: LoraConfig,
): ExpectedTensor[] {
  const out: ExpectedTensor[] = [];
  const targeted = modules.filter((m) => isTargeted(config, m.path, m.kind === 'linear'));
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
      out.push({ key, shape: [m.shape[0]!], path: m.path, role: 'magnitude' });
    }
  }
  const adapted = new Set(targeted.map((m) => m.path));
  for (const m of modules) {
    if (m.biasShape && biasIsTrained(config)) {
      const key = peftKey.bias(m.path, adapted.has(m.path));
      out.push({ key, shape: [...m.biasShape], path: m.path, role: 'bias' });
    }
    if (isSavedModule(config, m.path)) {
      out.push({ key: peftKey.copy(m.path), shape: [...m.shape], path: m.path, role: 'copy' });
    }
  }
  if (
    embeddingIsTargeted(
      config,
      modules.map((m) => m.path),
    )
  ) {
    for (const m of targeted.filter((t) => t.path === EMBED_PATH || t.path === LM_HEAD_PATH)) {
      const key = peftKey.baseWeight(m.path);
      out.push({ key, shape: [...m.shape], path: m.path, role: 'baseWeight' });
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
 * The adapter of `file` for a model of `layouts`. `model` holds the base weights that PiSSA /
 * OLoRA adapters and saved embedding weights are checked against; without it (an export that
 * streams the base), such adapters are refused by name.
 */
function adapterFromTensors(
  dir: string,
  config: LoraConfig,
  file: TensorSource,
  layouts: readonly ModuleLayout[],
  model: DecoderModel | null,
): LoraAdapter {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const expected = expectedTensors(layouts, config);
  if (expected.length === 0) {
    throw new LoraforgeError(
      `${configPath}: the adapter targets no module of this model`,
      'is it for another base model?',
    );
  }
  const fileKey = new Map(file.names().map((name) => [withoutAdapterName(name), name]));
  const missing = expected.filter((e) => !fileKey.has(e.key)).map((e) => e.key);
  const wanted = new Set(expected.map((e) => e.key));
  const unexpected = [...fileKey.keys()].filter((k) => !wanted.has(k));
  if (missing.length || unexpected.length) {
    throw new LoraforgeError(
      `${weightsPath}: the tensors do not match ${ADAPTER_CONFIG_FILE}: missing ${someNames(missing)}; unexpected ${someNames(unexpected)}`,
      'a file from another config or base model, or edited by hand; loraforge never loads part of an adapter',
    );
  }
  if (!model) {
    const needsBase = baseWeightsNeed(config, expected);
    if (needsBase) {
      throw new LoraforgeError(
        `${configPath}: an adapter with ${needsBase} needs the base weights loaded to be read`,
        'merge it first (loraforge merge), then use the merged folder',
      );
    }
  }
  const modules = new Map<string, LoraPair>();
  const biases = new Map<string, Tensor>();
  const copies = new Map<string, Tensor>();
  const baseWeights = new Map<string, Tensor>();
  const loaded: Tensor[] = [];
  try {
    for (const e of expected) {
      const key = fileKey.get(e.key)!;
      const t = loadTensor(file, key, e.shape, 'f32', weightsPath);
      loaded.push(t);
      checkFinite(file, key, weightsPath);
      if (e.role === 'a' || e.role === 'b' || e.role === 'magnitude') {
        const pair = modules.get(e.path) ?? ({ magnitude: null } as unknown as LoraPair);
        pair[e.role] = t;
        modules.set(e.path, pair);
      } else if (e.role === 'bias') biases.set(e.path, t);
      else if (e.role === 'copy') copies.set(e.path, t);
      else {
        checkSameAsBase(t, e, model!, weightsPath);
        loaded.pop()!.dispose();
        baseWeights.set(
          e.key,
          denseWeight(adaptableModules(model!).find((m) => m.path === e.path)!.weight, e.key),
        );
      }
    }
  } catch (err) {
    for (const t of loaded) t.dispose();
    throw err;
  }
  // PEFT redoes PiSSA's SVD / OLoRA's QR on the base when it loads such an adapter.
  const residualStarts = new Map<string, ResidualStart>();
  if (isResidualInit(config.init)) {
    for (const m of targetedModules(model!, config)) {
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
  const base = hostF32(
    denseWeight(adaptableModules(model).find((m) => m.path === e.path)!.weight, e.key),
  );
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
