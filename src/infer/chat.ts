/**
 * The assistant's reply to a conversation, through a prompt template, with no file system: the
 * CLI's ChatPipeline (pipeline.ts) and the browser page both answer with it.
 */
import type { ChatMessage, PromptTemplate } from '../data/templates.ts';
import type { Tokenizer } from '../io/hf-tokenizer.ts';
import type { SequenceDecoder } from './sequences.ts';
import { generateText, type GenerateOptions, type GenerationResult } from './text-generation.ts';

/**
 * Generates the reply that follows `messages`, prompted and stopped as `template` was trained
 * (its stop strings and end-of-turn tokens); options override either.
 */
export function chatReply(
  decoder: SequenceDecoder,
  tokenizer: Tokenizer,
  template: PromptTemplate,
  messages: ChatMessage[],
  opts: GenerateOptions = {},
): Promise<GenerationResult> {
  return generateText(decoder, tokenizer, template.encodePrompt(messages), {
    stopStrings: template.stopStrings,
    stopTokenIds: template.stopTokenIds,
    ...opts,
  });
}
