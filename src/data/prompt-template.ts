import type { ChatMessage, Conversation } from './conversation.ts';

/** Label value for tokens that are not learned (PyTorch's CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;

export interface EncodedConversation {
  inputIds: number[];
  /** Same length as inputIds, not shifted: labels[t] is the token at t, or IGNORE_INDEX. */
  labels: number[];
}

/** What a model was trained with is what it is used with: one object does both. */
export interface PromptTemplate {
  readonly name: TemplateName;
  /** Token ids + labels (-100 where not learned) for a whole conversation. */
  encodeConversation(conv: Conversation, opts: { trainOnPrompt: boolean }): EncodedConversation;
  /** Prompt text for generation given the conversation so far (ends where the model speaks). */
  renderPrompt(messages: ChatMessage[]): string;
  /**
   * Token ids of that prompt, tokenized exactly as in training. Prefer this to encoding
   * renderPrompt()'s text: templates tokenize piecewise, and BPE merges across piece boundaries
   * (e.g. "Assistant: " + "Hi") would otherwise differ from what the model was trained on.
   */
  encodePrompt(messages: ChatMessage[]): number[];
  /** Generation stops when the output ends with one of these... */
  readonly stopStrings: string[];
  /** ...or when one of these tokens is sampled (eos, end-of-turn). */
  readonly stopTokenIds: number[];
  /** The spec recorded in the adapter folder (loraforge.json), read back by templateFromSpec. */
  toJSON(): PromptTemplateSpec; // recorded in the adapter folder (loraforge.json)
}

/** Names `createTemplate` accepts. */
export const TEMPLATE_NAMES = ['tutorial', 'chatml', 'model'] as const;
/** tutorial: "Human: ...\n\nAssistant: "; chatml: built-in Qwen-style; model: the tokenizer's chat_template. */
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

/** Everything needed to rebuild a template later, independent of the tokenizer's current config. */
export interface PromptTemplateSpec {
  name: TemplateName;
  /** Jinja source for `chatml` and `model`, as used in training. */
  chatTemplate?: string;
  /** Texts of the special tokens the template uses (eos for all; bos for some chat templates). */
  specialTokens: { eos?: string; bos?: string };
}
