/**
 * `loraforge export --format gguf-adapter`: the LoRA adapter alone, in llama.cpp's adapter GGUF
 * (what its convert_lora_to_gguf writes), to apply on a GGUF of the base model without merging.
 * Each targeted projection gives `blk.N.<tensor>.weight.lora_a` (PEFT's A, [r, in]) and
 * `.lora_b` (B, [out, r]); llama.cpp scales B·A by adapter.lora.alpha / r, so alpha is written
 * as scale · r, which also covers rsLoRA's alpha / √r.
 */
import { basename, join } from 'node:path';
import type { GgufMetadata } from '../io/gguf/format.ts';
import { GGML_TYPES, type GgmlType } from '../io/gguf/ggml-types.ts';
import { type GgufTensorPlan, writeGguf } from '../io/gguf/writer.ts';
import type { DecoderConfig } from '../models/config.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { loraScale } from '../peft/config.ts';
import { LoraforgeError } from '../util/errors.ts';
import {
  architectureKeys,
  ggufArchitecture,
  ggufModuleName,
  interleaveRopeRows,
  ropeRotatedRows,
} from './architectures.ts';
import type { ExportType } from './quant-mix.ts';

export interface GgufAdapterExport {
  adapterDir: string;
  /** The base model's folder (its config.json is named in errors). */
  modelDir: string;
  config: DecoderConfig;
  adapter: LoraAdapter;
  type: ExportType;
  out: string;
  overwrite?: boolean;
}

/** LoRA tensors stay in float (they are small): f32 or bf16 as asked, else f16. */
function adapterTensorType(type: ExportType): GgmlType {
  if (type === 'f32') return GGML_TYPES.F32;
  if (type === 'bf16') return GGML_TYPES.BF16;
  return GGML_TYPES.F16;
}

/**
 * llama.cpp's adapter holds LoRA pairs under one alpha (each tensor scaled by alpha / its rank):
 * the alpha this adapter needs, or a refusal naming what the format cannot hold.
 */
function llamaCppAlpha(e: GgufAdapterExport): number {
  const { adapter } = e;
  const extra = [...adapter.modules.values()].some((p) => p.magnitude)
    ? 'DoRA magnitudes'
    : adapter.biases.size
      ? 'trained biases'
      : adapter.copies.size
        ? 'modules_to_save copies'
        : null;
  const alphas = new Set(
    [...adapter.modules].map(([path, pair]) => loraScale(adapter.config, path) * pair.a.shape[0]!),
  );
  const reason = extra ?? (alphas.size > 1 ? 'a different alpha per module' : null);
  if (reason) {
    throw new LoraforgeError(
      `${e.adapterDir}: llama.cpp's LoRA adapter GGUF cannot hold ${reason}`,
      'export the merged model instead (--format gguf)',
    );
  }
  return [...alphas][0]!;
}

export async function exportGgufAdapter(e: GgufAdapterExport): Promise<void> {
  const where = join(e.modelDir, 'config.json');
  const arch = ggufArchitecture(e.config, where);
  // The base it applies to must be one llama.cpp runs as loraforge does.
  architectureKeys(arch, e.config, where);
  const type = adapterTensorType(e.type);
  const metadata: GgufMetadata = new Map([
    ['general.architecture', { type: 'string', value: arch.name }],
    ['general.type', { type: 'string', value: 'adapter' }],
    ['general.name', { type: 'string', value: basename(e.adapterDir) }],
    ['adapter.type', { type: 'string', value: 'lora' }],
    ['adapter.lora.alpha', { type: 'f32', value: llamaCppAlpha(e) }],
  ]);
  const plans: GgufTensorPlan[] = [];
  for (const [path, pair] of e.adapter.modules) {
    const module = ggufModuleName(arch, e.config.modulePrefix, path);
    if (!module) {
      throw new LoraforgeError(
        `${e.adapterDir}: LoRA module '${path}' has no llama.cpp tensor (missing: its GGUF tensor mapping)`,
      );
    }
    const rotated = arch.interleavedRope ? ropeRotatedRows(module) : undefined;
    const heads = rotated === 'q' ? e.config.numHeads : e.config.numKvHeads;
    plans.push(
      {
        name: `${module}.weight.lora_a`,
        shape: pair.a.shape,
        type,
        chunks: () => [pair.a.readSync() as Float32Array],
      },
      {
        name: `${module}.weight.lora_b`,
        shape: pair.b.shape,
        type,
        chunks: () => {
          const b = pair.b.readSync() as Float32Array;
          // B's rows are the projection's output rows: permuted like the base q/k weights.
          return [rotated ? interleaveRopeRows(b, heads, pair.b.shape[1]!) : b];
        },
      },
    );
  }
  await writeGguf(e.out, metadata, plans, { overwrite: e.overwrite });
}
