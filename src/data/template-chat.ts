import { appendAll } from '../util/arrays.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { withSystem, type ChatMessage, type Conversation } from './conversation.ts';
import {
  IGNORE_INDEX,
  type EncodedConversation,
  type PromptTemplate,
  type PromptTemplateSpec,
} from './prompt-template.ts';

/** What this module needs from a Jinja chat template (io/chat-template.ts provides it). */
export interface ChatRenderer {
  render(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string;
}

/** A text range of the rendered conversation that is learned: one assistant reply. */
interface Span {
  start: number;
  end: number;
}

/**
 * A prompt template driven by a Jinja chat template: the model's own (`model`) or the built-in
 * ChatML one (`chatml`). Templates only render whole message lists, so where each assistant reply
 * sits in the rendered text is found by rendering prefixes of the conversation:
 * - a reply starts where `render(messages before it, addGenerationPrompt)` ends;
 * - it ends where `render(messages up to and including it)` ends, so the end-of-turn marker
 *   (e.g. `<|im_end|>\n`) is learned and the model learns to stop.
 * Every assistant reply is learned. The text is tokenized piece by piece (prompt, reply, prompt,
 * ...), so labels fall exactly on token boundaries.
 */
export class ChatTemplatePrompt implements PromptTemplate {
  readonly stopStrings: string[];
  readonly stopTokenIds: number[];

  constructor(
    readonly name: 'model' | 'chatml',
    private readonly renderer: ChatRenderer,
    private readonly tokenizer: Tokenizer,
    private readonly spec: PromptTemplateSpec,
  ) {
    const endOfTurn = this.endOfTurnMarker();
    const eosText = spec.specialTokens.eos;
    this.stopStrings = [...new Set([endOfTurn, eosText].filter((s): s is string => !!s))];
    const ids = this.stopStrings.map((s) => tokenizer.tokenToId(s));
    if (tokenizer.eosTokenId !== undefined) ids.push(tokenizer.eosTokenId);
    this.stopTokenIds = [...new Set(ids.filter((id): id is number => id !== undefined))];
  }

  encodeConversation(conv: Conversation, opts: { trainOnPrompt: boolean }): EncodedConversation {
    const messages = withSystem(conv);
    const text = this.renderer.render(messages, { addGenerationPrompt: false });
    return this.encodeRendered(messages, text, opts.trainOnPrompt);
  }

  renderPrompt(messages: ChatMessage[]): string {
    return this.renderer.render(messages, { addGenerationPrompt: true });
  }

  /** Tokenized in the same pieces as in training, so earlier replies get the same tokens. */
  encodePrompt(messages: ChatMessage[]): number[] {
    return this.encodeRendered(messages, this.renderPrompt(messages), false).inputIds;
  }

  toJSON(): PromptTemplateSpec {
    return this.spec;
  }

  /** Tokenizes `text` (rendered from `messages`) piecewise: prompt, reply, prompt, ... */
  private encodeRendered(
    messages: ChatMessage[],
    text: string,
    trainOnPrompt: boolean,
  ): EncodedConversation {
    const inputIds: number[] = [];
    const labels: number[] = [];
    const add = (from: number, to: number, learned: boolean) => {
      const ids = this.encode(text.slice(from, to));
      appendAll(inputIds, ids);
      appendAll(labels, learned ? ids : ids.map(() => IGNORE_INDEX));
    };
    let pos = 0;
    for (const span of this.replySpans(messages, text)) {
      add(pos, span.start, trainOnPrompt);
      add(span.start, span.end, true);
      pos = span.end;
    }
    add(pos, text.length, trainOnPrompt);
    return { inputIds, labels };
  }

  private replySpans(messages: ChatMessage[], text: string): Span[] {
    const spans: Span[] = [];
    let prevEnd = 0;
    messages.forEach((message, i) => {
      if (message.role !== 'assistant') return;
      const before = this.renderer.render(messages.slice(0, i), { addGenerationPrompt: true });
      const through = this.renderer.render(messages.slice(0, i + 1), {
        addGenerationPrompt: false,
      });
      const start =
        consistentPrefix(text, before, prevEnd) ??
        this.findReply(text, message.content, prevEnd, i);
      const end =
        consistentPrefix(text, through, start) ??
        this.findReplyEnd(text, through, message.content, start, i);
      spans.push({ start, end });
      prevEnd = end;
    });
    return spans;
  }

  /**
   * Some templates render the last reply differently from earlier ones (Qwen3 adds an empty
   * <think> block to the last one only), so a prefix render is not a prefix of the whole text.
   * Then the reply is located by its content, followed by whatever the template put after it.
   */
  private findReplyEnd(
    text: string,
    through: string,
    content: string,
    start: number,
    index: number,
  ): number {
    const contentAt = through.lastIndexOf(content);
    if (content === '' || contentAt < 0) this.inconsistent(index);
    const after = through.slice(contentAt + content.length);
    const at = text.indexOf(content + after, start);
    if (at < 0) this.inconsistent(index);
    return at + content.length + after.length;
  }

  private findReply(text: string, content: string, from: number, index: number): number {
    const at = text.indexOf(content, from);
    if (content === '' || at < 0) this.inconsistent(index);
    return at;
  }

  private inconsistent(index: number): never {
    throw new LoraforgeError(
      `the ${this.name} chat template renders message ${index + 1} (assistant) in a way loraforge cannot locate for masking`,
      'train with --template chatml or --template tutorial instead',
    );
  }

  /** The text a template puts after a reply (`<|im_end|>`, `<|eot_id|>`), found with a probe reply. */
  private endOfTurnMarker(): string | undefined {
    const question = 'loraforge-probe-question';
    const probe = 'loraforge-probe-reply';
    const text = this.renderer.render(
      [
        { role: 'user', content: question },
        { role: 'assistant', content: probe },
      ],
      { addGenerationPrompt: false },
    );
    const marker = text.slice(text.lastIndexOf(probe) + probe.length).trim();
    // A template that renders the question after the reply has no end-of-turn marker to stop on.
    return marker === '' || marker.includes(question) ? undefined : marker;
  }

  private encode(text: string): number[] {
    return text === '' ? [] : this.tokenizer.encode(text, { addSpecialTokens: false });
  }
}

/** `prefix.length` if `text` starts with `prefix` and that is not before `min`. */
function consistentPrefix(text: string, prefix: string, min: number): number | undefined {
  return prefix.length >= min && text.startsWith(prefix) ? prefix.length : undefined;
}
