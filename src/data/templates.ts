import { LoraforgeError } from '../util/errors.ts';
import { ChatTemplate } from '../io/chat-template.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { isObject } from './records.ts';
import { ChatTemplatePrompt } from './template-chat.ts';
import { TUTORIAL_CHAT_TEMPLATE, TutorialTemplate } from './template-tutorial.ts';
import {
  TEMPLATE_NAMES,
  type PromptTemplate,
  type PromptTemplateSpec,
  type TemplateName,
} from './prompt-template.ts';

export { IGNORE_INDEX, TEMPLATE_NAMES } from './prompt-template.ts';
export type {
  EncodedConversation,
  PromptTemplate,
  PromptTemplateSpec,
  TemplateName,
} from './prompt-template.ts';
export type { ChatMessage, Conversation } from './conversation.ts';

/** Qwen-style ChatML, for models whose tokenizer has no chat_template. */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * The template to train with, by name: `tutorial`, `chatml`, or `model` (alias `chat`) for the
 * tokenizer's own chat_template.
 */
export function createTemplate(name: string, tokenizer: Tokenizer): PromptTemplate {
  const canonical = name === 'chat' ? 'model' : name;
  if (canonical === 'tutorial') return TutorialTemplate.create(tokenizer);
  if (canonical === 'chatml')
    return chatTemplatePrompt('chatml', CHATML_TEMPLATE, tokenizer, tokenSpec(tokenizer));
  if (canonical === 'model') {
    if (tokenizer.chatTemplate === undefined) {
      throw new LoraforgeError(
        'the model has no chat template (tokenizer_config.json has no chat_template)',
        'use --template chatml or --template tutorial',
      );
    }
    return chatTemplatePrompt('model', tokenizer.chatTemplate, tokenizer, tokenSpec(tokenizer));
  }
  throw new LoraforgeError(
    `unknown prompt template "${name}"`,
    `templates: ${TEMPLATE_NAMES.join(', ')} (or chat for model)`,
  );
}

/** Rebuilds the template recorded with an adapter (`toJSON()` output, e.g. from loraforge.json). */
export function templateFromSpec(spec: unknown, tokenizer: Tokenizer): PromptTemplate {
  const checked = checkSpec(spec);
  const tokens = { ...tokenSpec(tokenizer), ...checked.specialTokens };
  switch (checked.name) {
    case 'tutorial':
      return TutorialTemplate.create(tokenizer, tokens.eos);
    case 'chatml':
      return chatTemplatePrompt(
        'chatml',
        checked.chatTemplate ?? CHATML_TEMPLATE,
        tokenizer,
        tokens,
      );
    case 'model':
      if (checked.chatTemplate === undefined)
        throw new LoraforgeError('prompt template spec "model" has no chatTemplate');
      return chatTemplatePrompt('model', checked.chatTemplate, tokenizer, tokens);
  }
}

/**
 * The Jinja chat template that renders what a template spec renders, for writing into a model
 * folder's tokenizer_config.json (`chat_template`), where transformers and vLLM look for it.
 */
export function chatTemplateSource(spec: unknown): string {
  const checked = checkSpec(spec);
  if (checked.name === 'tutorial') return TUTORIAL_CHAT_TEMPLATE;
  return checked.chatTemplate ?? CHATML_TEMPLATE;
}

function chatTemplatePrompt(
  name: 'model' | 'chatml',
  source: string,
  tokenizer: Tokenizer,
  specialTokens: PromptTemplateSpec['specialTokens'],
): PromptTemplate {
  const renderer = new ChatTemplate(source, {
    bos_token: specialTokens.bos,
    eos_token: specialTokens.eos,
  });
  return new ChatTemplatePrompt(name, renderer, tokenizer, {
    name,
    chatTemplate: source,
    specialTokens,
  });
}

/** The tokenizer's bos/eos as text, which chat templates interpolate (`{{ bos_token }}`). */
function tokenSpec(tokenizer: Tokenizer): PromptTemplateSpec['specialTokens'] {
  const text = (id: number | undefined) =>
    id === undefined ? undefined : tokenizer.decode([id], { skipSpecialTokens: false });
  return { eos: text(tokenizer.eosTokenId), bos: text(tokenizer.bosTokenId) };
}

function checkSpec(spec: unknown): PromptTemplateSpec {
  const bad = (problem: string) => new LoraforgeError(`prompt template spec: ${problem}`);
  if (!isObject(spec)) throw bad('expected an object');
  if (!(TEMPLATE_NAMES as readonly unknown[]).includes(spec.name))
    throw bad(`unknown name ${JSON.stringify(spec.name)}`);
  if (spec.chatTemplate !== undefined && typeof spec.chatTemplate !== 'string')
    throw bad('chatTemplate must be a string');
  const tokens = spec.specialTokens ?? {};
  if (
    !isObject(tokens) ||
    Object.values(tokens).some((t) => t !== undefined && typeof t !== 'string')
  ) {
    throw bad('specialTokens must map names to token texts');
  }
  return {
    name: spec.name as TemplateName,
    chatTemplate: spec.chatTemplate,
    specialTokens: tokens,
  };
}
