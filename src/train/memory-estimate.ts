/**
 * What a training config will need in memory, from config.json alone (`loraforge train
 * --dry-run`): the frozen weights as they will be stored (dtype or quantization), the adapter
 * with its gradients and AdamW moments, and the activations a step keeps for its backward pass,
 * with or without gradient checkpointing. The activation count follows what the ops keep (every
 * tensor a layer's forward creates lives until the step ends); the test compares it with a
 * measured step.
 */
import { join } from 'node:path';
import { BLOCK_SIZE_4BIT, NESTED_BLOCK_SIZE } from '../engine/quant/formats.ts';
import { readModelConfig } from '../io/hf-folder.ts';
import { resolveModel } from '../io/hub.ts';
import type { DecoderConfig } from '../models/config.ts';
import { loadDecoderConfig } from '../models/load.ts';
import { projectionPath } from '../models/decoder.ts';
import { quantizationFromOptions } from '../models/quantization-options.ts';
import { checkQuantizationConfig, type Quantization } from '../models/quantized-load.ts';
import { hasBias, layerNormShapes, projectionShapes } from '../models/shapes.ts';
import { isTargeted, loraConfigFromOptions, moduleLora } from '../peft/config.ts';
import { formatBytes } from '../util/format.ts';
import { frozenWeightDType, type TrainConfig } from './config.ts';

/** The wasm CPU backend's one shared memory (wasm32). */
const WASM_MEMORY_BYTES = 4 * 2 ** 30;

export interface MemoryEstimate {
  /** Frozen (or, full fine-tuning, trained) weights by kind, as stored. */
  weights: { what: string; bytes: number }[];
  /** Trained parameters: LoRA A / B (or every weight for full fine-tuning). */
  trainedParameters: number;
  /** Their values, gradients and AdamW moments (f32 each). */
  trainedBytes: number;
  /** Bytes a step keeps per token (all layers), and the layer recomputed at a time if checkpointing. */
  activationBytesPerToken: number;
  recomputeBytesPerToken: number;
  tokensPerStep: number;
  /** The fused LM-head loss's logits chunk. */
  lmHeadBytes: number;
  gradientCheckpointing: boolean;
  peakBytes: number;
  /** What would lower the peak, of what the config does not already do. */
  savings: string[];
}

/** Device bytes of a quantized [rows, cols] weight (engine/quant/quantized-weight.ts's tensors). */
export function quantizedBytes(rows: number, cols: number, q: Quantization): number {
  const words = (bytes: number) => Math.ceil(bytes / 4) * 4;
  const n = rows * cols;
  if (q.type === 'int8') return words(n) + rows * 4 + 256 * 4;
  const blocks = Math.ceil(n / BLOCK_SIZE_4BIT);
  const absmax = q.doubleQuant
    ? words(blocks) + Math.ceil(blocks / NESTED_BLOCK_SIZE) * 4 + 256 * 4
    : blocks * 4;
  return words(Math.ceil(n / 2)) + absmax + 16 * 4;
}

/** f32 elements one decoder layer's training forward creates per token (what stays alive). */
function layerActivations(c: DecoderConfig, loraRanks: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  // Two norm outputs, the attention and MLP outputs, two residual sums: 6 C (the layer input is
  // the previous layer's output); q, k, v and rotated q, k; the attention output and its
  // log-sum-exp per head; gate, up and their product; each adapted module's x·Aᵀ; norm rstd.
  const norms = c.qkNorm ? q + kv : 0;
  const sandwich = c.sandwichNorms ? 2 * C : 0;
  return 5 * C + 3 * q + 3 * kv + c.numHeads + 3 * I + loraRanks + 2 + norms + sandwich;
}

export function estimateTrainingMemory(config: DecoderConfig, cfg: TrainConfig): MemoryEstimate {
  const c = config;
  const full = cfg.finetuning_type === 'full';
  const dtype = frozenWeightDType(cfg, c);
  const elementBytes = dtype === 'f32' ? 4 : 2;
  const quantization = quantizationFromOptions(cfg);
  const shapes = projectionShapes(c);
  const lora = full ? null : loraConfigFromOptions(cfg, cfg.model);

  let projectionBytes = 0;
  let projectionParameters = 0;
  let smallBytes = 0;
  let loraParameters = 0;
  let ranksPerLayer = 0;
  for (let layer = 0; layer < c.numLayers; layer++) {
    for (const [name, [out, inF]] of shapes) {
      projectionParameters += out * inF;
      projectionBytes += quantization
        ? quantizedBytes(out, inF, quantization)
        : out * inF * elementBytes;
      if (hasBias(c, name)) smallBytes += out * 4;
      const path = projectionPath(layer, name, c.modulePrefix);
      if (lora && isTargeted(lora, path)) {
        const { r } = moduleLora(lora, path);
        loraParameters += r * (out + inF);
        if (layer === 0) ranksPerLayer += r;
      }
    }
    for (const [, size] of layerNormShapes(c)) smallBytes += size * 4;
  }
  smallBytes += c.hiddenSize * 4;
  const embedBytes = c.vocabSize * c.hiddenSize * elementBytes * (c.tieWordEmbeddings ? 1 : 2);
  const trainedParameters = full
    ? projectionParameters + c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2)
    : loraParameters;
  // Values, gradients, AdamW's m and v; full fine-tuning's values are the weights above.
  const trainedBytes = trainedParameters * (full ? 12 : 16);

  const perLayer = layerActivations(c, ranksPerLayer) * 4;
  const checkpointing = cfg.gradient_checkpointing;
  // Embeddings, the final norm's output and rstd; checkpointing keeps each layer's input only.
  const edges = (2 * c.hiddenSize + 1) * 4;
  const kept = edges + c.numLayers * (checkpointing ? c.hiddenSize * 4 : perLayer);
  // The backward pass of one layer needs gradients as large as its activations (and, with
  // checkpointing, the layer recomputed).
  const recompute = checkpointing ? 2 * perLayer : perLayer;
  const tokensPerStep = cfg.per_device_train_batch_size * cfg.cutoff_len;
  const lmHeadBytes = Math.min(16 << 20, tokensPerStep * c.vocabSize * 4);
  const weights = [
    {
      what: `projections ${quantization ? `${quantization.type}${quantization.doubleQuant ? ' + double quant' : ''}` : dtype}`,
      bytes: projectionBytes,
    },
    { what: `embeddings${c.tieWordEmbeddings ? '' : ' + lm_head'} ${dtype}`, bytes: embedBytes },
    { what: 'norms and biases f32', bytes: smallBytes },
  ];
  const weightBytes = weights.reduce((sum, w) => sum + w.bytes, 0);
  return {
    weights,
    trainedParameters,
    trainedBytes,
    activationBytesPerToken: kept,
    recomputeBytesPerToken: recompute,
    tokensPerStep,
    lmHeadBytes,
    gradientCheckpointing: checkpointing,
    peakBytes: weightBytes + trainedBytes + tokensPerStep * (kept + recompute) + lmHeadBytes,
    savings: [
      ...(checkpointing ? [] : ['gradient_checkpointing: true']),
      ...(quantization || full ? [] : ['quantization: nf4']),
      ...(cfg.per_device_train_batch_size > 1 ? ['a smaller per_device_train_batch_size'] : []),
      'a device without the 4 GiB cap (WebGPU, or the native CPU backend)',
    ],
  };
}

/** The estimate as the lines `train --dry-run` prints. */
export function formatMemoryEstimate(e: MemoryEstimate): string {
  const line = (what: string, bytes: number) => `  ${what.padEnd(40)} ${formatBytes(bytes)}`;
  return [
    'memory estimate (device memory: wasm heap, native heap or GPU buffers)',
    ...e.weights.map((w) => line(`weights: ${w.what}`, w.bytes)),
    line(
      `trained: ${e.trainedParameters.toLocaleString('en-US')} parameters + grads + AdamW`,
      e.trainedBytes,
    ),
    line(
      `activations: ${formatBytes(e.activationBytesPerToken)}/token × ${e.tokensPerStep} tokens${e.gradientCheckpointing ? ' (checkpointing)' : ''}`,
      e.activationBytesPerToken * e.tokensPerStep,
    ),
    line('backward of one layer', e.recomputeBytesPerToken * e.tokensPerStep),
    line('LM-head loss chunk', e.lmHeadBytes),
    line('peak', e.peakBytes),
    e.peakBytes < WASM_MEMORY_BYTES
      ? "  fits in the wasm CPU backend's 4 GiB"
      : `  does not fit in the wasm CPU backend's 4 GiB: try ${e.savings.join(', or ')}`,
  ].join('\n');
}

/** The estimate of a config's run, from its model's config.json (a Hub id is fetched if not cached). */
export async function estimateRun(cfg: TrainConfig): Promise<MemoryEstimate> {
  const dir = await resolveModel(cfg.model);
  checkQuantizationConfig(readModelConfig(dir), join(dir, 'config.json'));
  return estimateTrainingMemory(loadDecoderConfig(dir), cfg);
}
