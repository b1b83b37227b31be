/**
 * The golden-style check of a quantized base (QLoRA): the tiny golden model loaded with its
 * projections quantized gives the logits and LoRA gradients of the same model whose projections
 * were dequantized first (a dense f32 model holding exactly the dequantized values, run by the
 * dense path that the golden tests check against transformers). Shared by the CPU and WebGPU runs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { QuantType } from '../../src/engine/quant/formats.ts';
import { dequantize, quantize } from '../../src/engine/quant/quantize.ts';
import { SafetensorsBuffer } from '../../src/io/safetensors-buffer.ts';
import { encodeSafetensors, type NamedTensorData } from '../../src/io/safetensors-format.ts';
import { parseDecoderConfig } from '../../src/models/config.ts';
import { projectionPath, type DecoderModel } from '../../src/models/decoder.ts';
import { modelFromTensors } from '../../src/models/from-tensors.ts';
import { projectionShapes } from '../../src/models/shapes.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { backward, noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { readGolden, TINY } from '../helpers.ts';

export const QUANTIZED_CASES: { type: QuantType; doubleQuant: boolean }[] = [
  { type: 'nf4', doubleQuant: true },
  { type: 'fp4', doubleQuant: false },
  { type: 'int8', doubleQuant: false },
];

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The golden model's config and tensors, projections replaced by dequantize(quantize(W)). */
export function dequantizedFirst(type: QuantType, doubleQuant: boolean): DecoderModel {
  const config = parseDecoderConfig(
    JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')),
    'config.json',
  );
  const golden = readGolden(join(TINY, 'model.safetensors'));
  const projections = new Set<string>();
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const [name] of projectionShapes(config))
      projections.add(`${projectionPath(layer, name)}.weight`);
  }
  const tensors: NamedTensorData[] = golden.names().map((name) => {
    const { data, shape } = golden.f32(name);
    if (!projections.has(name)) return { name, dtype: 'F32', shape, data };
    const q = quantize(data, shape as [number, number], type, { doubleQuant });
    return { name, dtype: 'F32', shape, data: dequantize(q) };
  });
  const bytes = concat(encodeSafetensors(tensors));
  return modelFromTensors(config, new SafetensorsBuffer(bytes, 'dequantized'), 'dequantized');
}

/**
 * Logits of the golden padded batch, or (`short`) of the first 6 tokens of its first row: few
 * enough rows that quantized projections read their codes directly, as in decoding.
 */
export async function goldenLogits(model: DecoderModel, short = false): Promise<Float32Array> {
  const g = readGolden(join(TINY, 'forward.safetensors'));
  const ids = g.i32('input_ids');
  const [batch, seq] = ids.shape as [number, number];
  const input = short
    ? { batch: 1, seq: 6, inputIds: ids.data.slice(0, 6) }
    : { batch, seq, inputIds: ids.data, attentionMask: g.i32('attention_mask').data };
  const logits = noGrad(() => tidy(() => model.logits(model.forwardHidden(input))));
  const values = await logits.toFloat32();
  logits.dispose();
  return values;
}

/** Gradients of every LoRA tensor of the golden adapter_randB on the golden LoRA batch. */
export async function goldenLoraGrads(model: DecoderModel): Promise<Map<string, Float32Array>> {
  const adapter = loadAdapter(join(TINY, 'lora', 'adapter_randB'), model);
  adapter.attach(model);
  adapter.setTrainable(true);
  const g = readGolden(join(TINY, 'lora', 'batch.safetensors'));
  const ids = g.i32('input_ids');
  const [batch, seq] = ids.shape as [number, number];
  const input = { batch, seq, inputIds: ids.data, attentionMask: g.i32('attention_mask').data };
  tidy(() => backward(model.loss(input, g.i32('labels').data).loss));
  const grads = new Map<string, Float32Array>();
  for (const [name, param] of adapter.namedParameters())
    grads.set(name, await param.grad!.toFloat32());
  adapter.dispose();
  return grads;
}
