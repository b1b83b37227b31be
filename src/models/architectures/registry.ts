/**
 * Every architecture family loraforge runs, by config.json `architectures[0]`. Adding a family is
 * one file of differences from the shared decoder (see family.ts) plus its line here.
 */
import type { ArchitectureFamily } from './family.ts';
import { gemma3 } from './gemma3.ts';
import { llama, mistral } from './llama.ts';
import { phi3 } from './phi3.ts';
import { qwen2, qwen3 } from './qwen.ts';
import { smollm3 } from './smollm3.ts';

const FAMILIES: readonly ArchitectureFamily[] = [
  qwen2,
  qwen3,
  llama,
  mistral,
  gemma3,
  smollm3,
  phi3,
];

const BY_ARCHITECTURE = new Map(
  FAMILIES.flatMap((family) => family.architectures.map((name) => [name, family] as const)),
);

export const SUPPORTED_ARCHITECTURES = [...BY_ARCHITECTURE.keys()];

export function familyOf(architecture: string): ArchitectureFamily | undefined {
  return BY_ARCHITECTURE.get(architecture);
}

/**
 * The causal-LM class of a multimodal checkpoint's text model, by `text_config.model_type`: a
 * `*ForConditionalGeneration` folder is read as its language model alone.
 */
export const TEXT_MODEL_ARCHITECTURES: Record<string, string> = {
  gemma3_text: 'Gemma3ForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  ministral: 'MinistralForCausalLM',
  smollm3: 'SmolLM3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};
