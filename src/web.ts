// The WebGPU types (GPUDevice, GPUBuffer...) the declarations of the WebGPU backend use, from the
// `webgpu` dependency (@webgpu/types); kept in the emitted .d.ts for users' type-checks.
/// <reference types="webgpu" preserve="true" />
/**
 * loraforge in the browser (`import { … } from 'loraforge/web'`): load a model folder from URLs
 * or picked files, chat with it and fine-tune a LoRA on WebGPU. Nothing in this module's import
 * graph uses a Node built-in, so any bundler takes it without configuration (the `webgpu`
 * package, Dawn for Node, is mapped away by package.json's `browser` field).
 *
 * ```ts
 * import { filesAtUrl, loadModelFiles, setBackend, WebGpuBackend } from 'loraforge/web';
 * setBackend(await WebGpuBackend.create());
 * const { model, tokenizer } = await loadModelFiles(filesAtUrl('/models/tiny-chat/'));
 * ```
 *
 * @packageDocumentation
 */

// ---- Errors -------------------------------------------------------------------------------------
export { LoraforgeError } from './util/errors.ts';

// ---- Device (WebGPU through navigator.gpu) ------------------------------------------------------
export { setBackend } from './engine/tensor.ts';
export { WebGpuBackend } from './engine/webgpu/backend.ts';

// ---- Models and tokenizers from bytes (fetched URLs or picked files) ----------------------------
export { filesAtUrl, pickedFiles, type ModelFiles } from './web/model-files.ts';
export { loadModelFiles, type LoadedModel } from './web/load-model.ts';
export { HfTokenizer } from './io/hf-tokenizer.ts';
export type { WeightDType } from './models/from-tensors.ts';
export type { DecoderModel } from './models/decoder.ts';

// ---- Prompt templates and data ------------------------------------------------------------------
export {
  createTemplate,
  templateFromSpec,
  type ChatMessage,
  type Conversation,
  type PromptTemplate,
} from './data/templates.ts';
export { parseRecords, type RawRecord } from './data/records.ts';
export { conversationsFromText } from './web/dataset-text.ts';

// ---- LoRA ---------------------------------------------------------------------------------------
export { DEFAULT_LORA_CONFIG, makeLoraConfig, type LoraConfig } from './peft/config.ts';
export { LoraAdapter } from './peft/adapter.ts';

// ---- Fine-tuning and generation in the page -----------------------------------------------------
// BROWSER LOOP: today the page has its own loop and greedy decoder; the `arch` branch replaces
// them with the library's node-free Trainer and generator — export those here when it lands.
export {
  DEFAULT_FINETUNE,
  fineTuneLora,
  type FineTuneOptions,
  type FineTuneResult,
} from './web/lora-finetune.ts';
export { greedyReply, type GreedyOptions } from './web/greedy.ts';
