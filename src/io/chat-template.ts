/**
 * Renders a model's Jinja chat template the way transformers' `apply_chat_template(tokenize=False)`
 * does. @huggingface/jinja always parses with trim_blocks + lstrip_blocks and drops one trailing
 * newline, which is exactly the environment transformers uses.
 *
 * Known differences from Python's jinja2 that chat templates rarely hit: printing a value directly
 * renders booleans as `true`/`false` (Python: `True`/`False`), none as '' (Python: `None`) and
 * whole floats without `.0`.
 */
import { Template } from '@huggingface/jinja';
import { LoraforgeError } from '../util/errors.ts';
import type { SpecialTokens } from './tokenizer.ts';

/** One message as a Jinja chat template sees it. */
export interface ChatTemplateMessage {
  role: string;
  content: string;
  /** Templates may read more fields (tool_calls, name, ...), passed through unchanged. */
  [field: string]: unknown;
}

export interface ChatTemplateRenderOptions {
  /** Append the header that opens the assistant's turn (e.g. `<|im_start|>assistant\n`). */
  addGenerationPrompt: boolean;
  /** JSON-schema tool definitions, for templates that support tool calling. */
  tools?: unknown[];
  /** Further template variables (e.g. `enable_thinking`); they override the special tokens. */
  extra?: Record<string, unknown>;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

/** A model's Jinja chat template (tokenizer_config.json `chat_template`), rendered as transformers' `apply_chat_template` does. */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    private readonly specialTokens: SpecialTokens = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new LoraforgeError(
        `chat template: cannot parse (${firstLine(err)})`,
        'check the chat_template in tokenizer_config.json',
      );
    }
  }

  /** The prompt text for `messages`. */
  render(messages: readonly ChatTemplateMessage[], opts: ChatTemplateRenderOptions): string {
    try {
      return this.template.render({
        ...this.specialTokens,
        ...opts.extra,
        messages,
        // transformers passes these as None when unused, and templates test `tools is not none`.
        tools: opts.tools ?? null,
        documents: null,
        add_generation_prompt: opts.addGenerationPrompt,
      });
    } catch (err) {
      // Templates reject unsupported conversations with raise_exception(...), whose text is the useful part.
      throw new LoraforgeError(`chat template: ${firstLine(err)}`);
    }
  }
}
