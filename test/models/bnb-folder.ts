/**
 * Writes a model folder as transformers + bitsandbytes save a 4-bit model (`save_pretrained` of a
 * model loaded with BitsAndBytesConfig(load_in_4bit=True)): config.json with its
 * quantization_config, and each decoder projection as Params4bit serializes it (quant_storage
 * uint8): the packed codes, absmax, quant_map, the nested absmax and map when double-quantized,
 * and the non-tensor quant state as JSON bytes under `.quant_state.bitsandbytes__<type>`.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { QuantizedData } from '../../src/engine/quant/quantize.ts';
import { quantize } from '../../src/engine/quant/quantize.ts';
import type { NamedTensorData } from '../../src/io/safetensors-format.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { parseDecoderConfig } from '../../src/models/config.ts';
import { projectionPath } from '../../src/models/decoder.ts';
import { projectionShapes } from '../../src/models/shapes.ts';
import { readGolden } from '../helpers.ts';

/** The serialized tensors of one 4-bit weight `name` (bnb's QuantState.as_dict(packed=True)). */
export function bnbWeightTensors(name: string, q: QuantizedData): NamedTensorData[] {
  const nested = q.nested;
  const state: Record<string, unknown> = {
    quant_type: q.type,
    blocksize: q.blockSize,
    dtype: 'float32',
    shape: q.shape,
    ...(nested && {
      nested_blocksize: nested.blockSize,
      nested_dtype: 'float32',
      nested_offset: nested.offset,
    }),
  };
  const json = new TextEncoder().encode(JSON.stringify(state));
  const f32 = (suffix: string, data: Float32Array): NamedTensorData => ({
    name: `${name}.${suffix}`,
    dtype: 'F32',
    shape: [data.length],
    data,
  });
  return [
    { name, dtype: 'U8', shape: [q.codes.length, 1], data: q.codes },
    nested
      ? { name: `${name}.absmax`, dtype: 'U8', shape: [nested.codes.length], data: nested.codes }
      : f32('absmax', q.absmax!),
    f32('quant_map', q.table),
    ...(nested ? [f32('nested_absmax', nested.absmax), f32('nested_quant_map', nested.table)] : []),
    {
      name: `${name}.quant_state.bitsandbytes__${q.type}`,
      dtype: 'U8',
      shape: [json.length],
      data: json,
    },
  ];
}

/**
 * `source` (a dense f32 HF folder) written to `out` as a bnb 4-bit folder; returns the
 * quantization of each projection weight by name.
 */
export function writeBnb4bitFolder(
  source: string,
  out: string,
  type: 'nf4' | 'fp4',
  doubleQuant: boolean,
): Map<string, QuantizedData> {
  const rawConfig = JSON.parse(readFileSync(join(source, 'config.json'), 'utf8'));
  const config = parseDecoderConfig(rawConfig, 'config.json');
  const shapes = new Map<string, [number, number]>();
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const [name, shape] of projectionShapes(config))
      shapes.set(`${projectionPath(layer, name)}.weight`, shape);
  }
  const golden = readGolden(join(source, 'model.safetensors'));
  const quantized = new Map<string, QuantizedData>();
  const tensors: NamedTensorData[] = [];
  for (const name of golden.names()) {
    const { data, shape } = golden.f32(name);
    const projection = shapes.get(name);
    if (!projection) {
      tensors.push({ name, dtype: 'F32', shape, data });
      continue;
    }
    const q = quantize(data, projection, type, { doubleQuant });
    quantized.set(name, q);
    tensors.push(...bnbWeightTensors(name, q));
  }
  mkdirSync(out, { recursive: true });
  writeSafetensors(join(out, 'model.safetensors'), tensors);
  rawConfig.quantization_config = {
    quant_method: 'bitsandbytes',
    load_in_4bit: true,
    load_in_8bit: false,
    bnb_4bit_quant_type: type,
    bnb_4bit_use_double_quant: doubleQuant,
    bnb_4bit_compute_dtype: 'float32',
    bnb_4bit_quant_storage: 'uint8',
    llm_int8_threshold: 6.0,
    llm_int8_skip_modules: null,
    llm_int8_has_fp16_weight: false,
    llm_int8_enable_fp32_cpu_offload: false,
  };
  writeFileSync(join(out, 'config.json'), JSON.stringify(rawConfig, null, 2));
  return quantized;
}
