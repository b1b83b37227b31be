// The WebGPU types (GPUDevice, GPUBuffer...) the declarations of the WebGPU backend use, from the
// `webgpu` dependency (@webgpu/types); kept in the emitted .d.ts for users' type-checks.
/// <reference types="webgpu" preserve="true" />
/**
 * loraforge for Node.js: LoRA fine-tuning, generation, evaluation and serving of Hugging Face
 * causal LMs (Qwen2, Llama, Mistral) on the CPU (WebAssembly SIMD) or a GPU (WebGPU).
 *
 * This file is the whole public API: `import { … } from 'loraforge'`. Anything not exported here
 * is internal and may change. The command line (`src/cli/`) uses only these exports.
 * The browser build is `loraforge/web` (src/web.ts).
 *
 * ```ts
 * import { loadChatPipeline, streamChat } from 'loraforge';
 * const pipe = await loadChatPipeline({ model: 'Qwen/Qwen2-0.5B-Instruct', adapter: 'runs/me' });
 * for await (const text of streamChat(pipe, [{ role: 'user', content: 'Who are you?' }]))
 *   process.stdout.write(text);
 * ```
 *
 * @packageDocumentation
 */

// ---- Errors -------------------------------------------------------------------------------------
export { LoraforgeError } from './util/errors.ts';

// ---- Device -------------------------------------------------------------------------------------
export {
  DEVICE_NAMES,
  selectBackend,
  type BackendOptions,
  type DeviceName,
} from './engine/select-backend.ts';
export { NATIVE_ISA_ENV, nativeVariants, type NativeVariant } from './engine/native/addon.ts';

// ---- Models and tokenizers (from a Hugging Face id or a local folder) ---------------------------
export {
  loadAdapterForModel,
  loadChatPipeline,
  loadModel,
  loadTokenizer,
  type FromPretrainedOptions,
} from './api/pretrained.ts';
export { resolveModel, type DownloadProgress, type ResolveModelOptions } from './io/hub.ts';
export type { DecoderModel } from './models/decoder.ts';
export type { DecoderConfig } from './models/config.ts';
export type { WeightDType } from './models/load.ts';
export type { Quantization } from './models/quantized-load.ts';
export {
  QUANTIZATION_OPTIONS,
  quantizationFromOptions,
  quantizationFlags,
  type QuantizationValues,
} from './models/quantization-options.ts';
export {
  PRECISION_OPTIONS,
  gemmPrecisionOf,
  type PrecisionValues,
} from './engine/precision-options.ts';
export { HfTokenizer, type SpecialTokens, type Tokenizer } from './io/tokenizer.ts';
export { ChatTemplate, type ChatTemplateMessage } from './io/chat-template.ts';

// ---- Prompt templates (how a conversation becomes tokens and labels) ----------------------------
export {
  createTemplate,
  templateFromSpec,
  IGNORE_INDEX,
  TEMPLATE_NAMES,
  type ChatMessage,
  type Conversation,
  type PromptTemplate,
  type PromptTemplateSpec,
  type TemplateName,
} from './data/templates.ts';

// ---- Generation ---------------------------------------------------------------------------------
export { ChatPipeline, type PipelineOptions } from './infer/pipeline.ts';
export { chatReply } from './infer/chat.ts';
export type { GenerateOptions, GenerationResult } from './infer/text-generation.ts';
export { describeRange, inSamplingRange, type SamplingOptions } from './infer/sampling.ts';
export { describeSampling, resolveSampling, samplingDefaults } from './infer/sampling-defaults.ts';
export { mergedTemplateFiles, type MergedTemplatePlan } from './infer/merged-template.ts';
export { baseModelMismatch } from './peft/base-model.ts';
export { streamChat, streamCompletion, streamGeneration } from './infer/stream.ts';

// ---- LoRA (PEFT-compatible adapter folders) -----------------------------------------------------
export {
  DEFAULT_LORA_CONFIG,
  LORA_OPTIONS,
  loraConfigFromOptions,
  makeLoraConfig,
  type LoraConfig,
  type LoraOptionValues,
} from './peft/config.ts';
export { LoraAdapter, trainableParametersReport } from './peft/adapter.ts';
export { adapterFiles, adapterTensors, type AdapterFile } from './peft/adapter-files.ts';
export {
  isAdapterFolder,
  loadAdapter,
  readAdapterMeta,
  saveAdapter,
  type AdapterMeta,
} from './peft/io.ts';
export {
  checkMergeTarget,
  mergeToFolder,
  type MergeDtype,
  type MergeOptions,
} from './peft/merge.ts';

// ---- Datasets -----------------------------------------------------------------------------------
export {
  loadDataset,
  type DatasetStats,
  type LoadDatasetOptions,
  type LoadedDataset,
} from './data/dataset.ts';
export { parseRecords, type RawRecord } from './data/records.ts';
export { parseAssignments } from './data/placeholders.ts';
export { DataLoader, type DataLoaderOptions } from './data/loader.ts';

// ---- Training -----------------------------------------------------------------------------------
export { train, type TrainOptions } from './api/train.ts';
export { runTraining, type RunHooks, type RunResult } from './train/run.ts';
export {
  estimateRun,
  estimateTrainingMemory,
  formatMemoryEstimate,
  type MemoryEstimate,
} from './train/memory-estimate.ts';
export {
  datasetFiles,
  readConfigFile,
  resolveTrainConfig,
  TRAIN_OPTIONS,
  type TrainConfig,
} from './train/config.ts';
export {
  modelInput,
  Trainer,
  type BatchSource,
  type RestoredCheckpoint,
  type TrainerCallback,
  type TrainerCheckpoint,
  type TrainerOptions,
  type TrainerResult,
  type TrainerStepInfo,
} from './train/trainer.ts';
export {
  trainInFolder,
  type TrainInFolderOptions,
  type TrainResult,
} from './train/train-in-folder.ts';
export {
  makeTrainingArguments,
  trainingArgumentsOf,
  TRAINING_ARGUMENTS,
  type TrainingArgumentValues,
  type TrainingArguments,
} from './train/arguments.ts';
export type { TrainerState } from './train/checkpoint-files.ts';
export type { MetricsRecord } from './train/metrics.ts';

// ---- Evaluation ---------------------------------------------------------------------------------
export { isEvalSetFile, loadEvalSet, parseEvalSet, type EvalSet } from './eval/eval-set.ts';
export { heldOutLoss, type HeldOutLoss } from './eval/held-out-loss.ts';
export { evaluateModel, recordedTarget, type EvaluateOptions } from './eval/evaluate-model.ts';
export {
  runEval,
  type AnswerFn,
  type EvalItemResult,
  type EvalReport,
  type EvalScore,
} from './eval/run.ts';
export { scoreGeneral, scoreIdentity, type IdentityTarget } from './eval/match.ts';
export {
  evalComparisonJson,
  formatEvalTable,
  formatLossTable,
  type EvalComparisonJson,
} from './eval/report.ts';

// ---- Export (GGUF for llama.cpp / LM Studio, Ollama folders) -----------------------------------
export {
  EXPORT_FORMATS,
  exportDefaults,
  runExport,
  type ExportFormat,
  type ExportOptions,
  type ExportResult,
} from './export/run.ts';
export { EXPORT_TYPES, type ExportType } from './export/quant-mix.ts';

// ---- Serving (OpenAI-compatible HTTP API) -------------------------------------------------------
export { createServer, type LoraforgeServer, type ServeOptions } from './serve/server.ts';
export {
  DEFAULT_PREFILL_CHUNK,
  ModelServeEngine,
  type ServeEngineOptions,
} from './serve/model-engine.ts';

// ---- Options declared once (the tables above; flags and YAML checks derive from them) -----------
export {
  camel,
  flagName,
  option,
  resolveOptions,
  type OptionKind,
  type OptionLayer,
  type OptionSpec,
  type OptionTable,
  type OptionValues,
} from './util/options.ts';

// ---- Utilities (progress output and atomic writes, as the CLI uses them) ------------------------
export { ProgressBar } from './util/progress.ts';
export { formatBytes, shellQuote } from './util/format.ts';
export { writeFileAtomic } from './io/atomic.ts';
