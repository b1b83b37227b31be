/**
 * `loraforge export --format gguf`: a Hugging Face model folder (plus, optionally, a LoRA adapter
 * merged in tensor by tensor) as one llama.cpp GGUF file: architecture metadata, tokenizer, chat
 * template and the weights under llama.cpp's names, converted or quantized while streaming.
 */
import { basename, join } from 'node:path';
import type { GgufMetadata, GgufValue } from '../io/gguf/format.ts';
import { GGML_TYPES } from '../io/gguf/ggml-types.ts';
import { type GgufTensorPlan, writeGguf } from '../io/gguf/writer.ts';
import {
  bytesToF32,
  DTYPE_BYTES,
  SafetensorsFolder,
  type SafetensorsDtype,
} from '../io/safetensors.ts';
import type { HfTokenizer } from '../io/tokenizer.ts';
import { withCurrentNames } from '../models/checkpoint-names.ts';
import type { DecoderConfig } from '../models/config.ts';
import { defaultInverseFrequencies, ropeInverseFrequencies } from '../models/rope-frequencies.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { adapterTouches, checkMergeable, mergedValues } from '../peft/merge.ts';
import { LoraforgeError } from '../util/errors.ts';
import {
  architectureKeys,
  ggufArchitecture,
  ggufModuleName,
  interleaveRopeRows,
  ropeRotatedRows,
  type GgufArchitecture,
} from './architectures.ts';
import { type ExportType, FILE_TYPE, tensorType } from './quant-mix.ts';
import { tokenizerMetadata } from './tokenizer-metadata.ts';

export interface GgufModelExport {
  modelDir: string;
  config: DecoderConfig;
  tokenizer: HfTokenizer;
  /** Merged into the weights when given. */
  adapter?: LoraAdapter;
  type: ExportType;
  /** Jinja chat template recorded in the file. */
  chatTemplate: string | undefined;
  out: string;
  overwrite?: boolean;
  onTensor?: (index: number, total: number, name: string) => void;
}

/**
 * The architecture's hyper-parameters under llama.cpp's `<arch>.*` keys; throws for what
 * llama.cpp's graph for the architecture cannot express (`where` names the config).
 */
export function architectureMetadata(
  arch: GgufArchitecture,
  c: DecoderConfig,
  name: string,
  type: ExportType,
  where: string,
): GgufMetadata {
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufValue => ({ type: 'f32', value });
  const a = arch.name;
  const meta: GgufMetadata = new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', u32(FILE_TYPE[type])],
    [`${a}.vocab_size`, u32(c.vocabSize)],
    [`${a}.context_length`, u32(c.maxPositionEmbeddings)],
    [`${a}.embedding_length`, u32(c.hiddenSize)],
    [`${a}.block_count`, u32(c.numLayers)],
    [`${a}.feed_forward_length`, u32(c.intermediateSize)],
    [`${a}.attention.head_count`, u32(c.numHeads)],
    [`${a}.attention.head_count_kv`, u32(c.numKvHeads)],
    [`${a}.attention.key_length`, u32(c.headDim)],
    [`${a}.attention.value_length`, u32(c.headDim)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(c.rmsNormEps)],
    [`${a}.rope.freq_base`, f32(c.ropeTheta)],
    // The rotated part of a head (Phi-3's partial_rotary_factor); the rest passes through.
    [`${a}.rope.dimension_count`, u32(c.rotaryDim)],
  ]);
  for (const [key, value] of architectureKeys(arch, c, where)) meta.set(`${a}.${key}`, value);
  if (type === 'q8_0' || type === 'q4_k_m') meta.set('general.quantization_version', u32(2));
  if (c.ropeScaling?.type === 'linear') {
    meta.set(`${a}.rope.scaling.type`, { type: 'string', value: 'linear' });
    meta.set(`${a}.rope.scaling.factor`, f32(c.ropeScaling.factor));
  }
  return meta;
}

/** A 1-D f32 tensor of per-frequency RoPE divisors. */
function factorTensor(name: string, values: ArrayLike<number>): GgufTensorPlan {
  return {
    name,
    shape: [values.length],
    type: GGML_TYPES.F32,
    chunks: () => [Float32Array.from(values)],
  };
}

/**
 * Frequency-dependent RoPE scalings have no metadata key in llama.cpp: its converter writes
 * per-frequency divisors as tensors. Llama 3's as `rope_freqs.weight` (theta_j / factor_j);
 * LongRoPE's two lists as `rope_factors_short` / `rope_factors_long`, of which llama.cpp picks
 * one per context (long when its context per sequence exceeds rope.scaling.original_context_length).
 */
function ropeFactorTensors(c: DecoderConfig): GgufTensorPlan[] {
  if (c.ropeScaling?.type === 'longrope') {
    return [
      factorTensor('rope_factors_long.weight', c.ropeScaling.longFactor),
      factorTensor('rope_factors_short.weight', c.ropeScaling.shortFactor),
    ];
  }
  if (c.ropeScaling?.type !== 'llama3') return [];
  const plain = defaultInverseFrequencies(c.rotaryDim, c.ropeTheta);
  const scaled = ropeInverseFrequencies(c.rotaryDim, c.ropeTheta, c.ropeScaling);
  return [
    factorTensor(
      'rope_freqs.weight',
      plain.map((v, j) => v / scaled[j]!),
    ),
  ];
}

/** Rows widened to f32 a few MB at a time: the embedding of a large vocabulary is never all f32. */
function* widenByRows(
  dtype: SafetensorsDtype,
  raw: Uint8Array,
  rowLength: number,
  what: string,
): Generator<Float32Array> {
  const rowBytes = DTYPE_BYTES[dtype] * rowLength;
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
  for (let start = 0; start < raw.length; start += rowsPerChunk * rowBytes) {
    yield bytesToF32(dtype, raw.subarray(start, start + rowsPerChunk * rowBytes), what);
  }
}

const CHUNK_BYTES = 8 << 20;

/**
 * Every weight of the folder as a GGUF tensor plan (values produced lazily, one at a time). A
 * multimodal folder gives its text model only (llama.cpp keeps vision towers in a separate
 * projector file), whichever transformers version spelled its names.
 */
function weightPlans(
  folder: SafetensorsFolder,
  arch: GgufArchitecture,
  c: DecoderConfig,
  type: ExportType,
  adapter: LoraAdapter | undefined,
): GgufTensorPlan[] {
  const source = withCurrentNames(folder);
  const plans: GgufTensorPlan[] = [];
  const hasOutput = !c.tieWordEmbeddings;
  if (adapter) checkMergeable(adapter, hasOutput);
  const multimodal = c.modulePrefix !== 'model';
  for (const hfName of source.names()) {
    // Tied models may still carry lm_head.weight; llama.cpp reuses token_embd when output is absent.
    if (hfName === 'lm_head.weight' && !hasOutput) continue;
    const textModel = hfName.startsWith(`${c.modulePrefix}.`) || hfName.startsWith('lm_head.');
    if (multimodal && !textModel) continue;
    const m = /^(.+)\.(weight|bias)$/.exec(hfName);
    const module = m ? ggufModuleName(arch, c.modulePrefix, m[1]!) : undefined;
    if (!m || !module) {
      throw new LoraforgeError(
        `${folder.dir}: tensor '${hfName}' has no llama.cpp name for ${c.architecture} (missing: its GGUF tensor mapping)`,
      );
    }
    const name = `${module}.${m[2]}`;
    const info = source.info(hfName);
    const shape = info.shape;
    const rotated = arch.interleavedRope ? ropeRotatedRows(module) : undefined;
    // Gemma scales by (1 + w); llama.cpp's norms multiply by the stored weight, so its converter
    // stores 1 + w (added here in f32, as transformers computes it).
    const plusOne = c.normPlusOne && m[2] === 'weight' && /norm$/.test(m[1]!);
    plans.push({
      name,
      shape,
      type: tensorType(type, name, shape, { layers: c.numLayers, hasOutput }),
      chunks: async function* () {
        const raw = source.read(hfName);
        const what = `${folder.dir}: '${hfName}'`;
        const merged = adapter !== undefined && adapterTouches(adapter, hfName);
        if (!merged && !rotated && !plusOne) {
          yield* widenByRows(info.dtype, raw, shape[shape.length - 1]!, what);
          return;
        }
        let values = bytesToF32(info.dtype, raw, what);
        if (merged) values = await mergedValues(adapter, hfName, values);
        if (plusOne) for (let i = 0; i < values.length; i++) values[i] = values[i]! + 1;
        if (rotated) {
          const heads = rotated === 'q' ? c.numHeads : c.numKvHeads;
          values = interleaveRopeRows(values, heads, shape.length === 2 ? shape[1]! : 1);
        }
        yield values;
      },
    });
  }
  return plans;
}

export async function exportGgufModel(e: GgufModelExport): Promise<void> {
  const where = join(e.modelDir, 'config.json');
  const arch = ggufArchitecture(e.config, where);
  const metadata = architectureMetadata(arch, e.config, basename(e.modelDir), e.type, where);
  const tokenizer = tokenizerMetadata({
    modelDir: e.modelDir,
    tokenizer: e.tokenizer,
    vocabSize: e.config.vocabSize,
    chatTemplate: e.chatTemplate,
  });
  for (const [key, value] of tokenizer) metadata.set(key, value);
  const source = SafetensorsFolder.open(e.modelDir);
  try {
    const plans = weightPlans(source, arch, e.config, e.type, e.adapter);
    plans.push(...ropeFactorTensors(e.config));
    await writeGguf(e.out, metadata, plans, { overwrite: e.overwrite, onTensor: e.onTensor });
  } finally {
    source.close();
  }
}
