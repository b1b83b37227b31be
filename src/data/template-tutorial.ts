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
import { pythonStrip } from './text.ts';
import { splitTurns, type Turn } from './turns.ts';

/**
 * The tutorial's plain-text format:
 *
 *     prompt   = ("Human: " + instruction + "\n" + input).strip() + "\n\nAssistant: "
 *     ids      = tok(prompt) + tok(output) + [eos]        (each without special tokens)
 *     labels   = [-100] * len(tok(prompt)) + tok(output) + [eos]
 *
 * A single-turn example without system prompt is byte-for-byte the tutorial's preprocessing.
 * Extensions, chosen so that they reduce to it:
 * - a system prompt is stripped and put on its own line before the first "Human:";
 * - earlier turns are rendered the same way and each reply ends with eos; the next turn starts
 *   with "\n" so that "\nHuman:" (a stop string) marks a new turn in decoded text too;
 * - every assistant reply (and its eos) is learned, not only the last one.
 *
 * So a two-turn conversation with a system prompt is tokenized piecewise as
 *     tok("S\nHuman: u1\n\nAssistant: ") tok("a1") eos tok("\nHuman: u2\n\nAssistant: ") tok("a2") eos
 */
/**
 * The same format as a Jinja chat template, for model folders that other tools read (a merged
 * model's tokenizer_config.json): transformers' `apply_chat_template` renders the text
 * `renderPrompt` does. The prompt always ends with "Assistant: ", so there is no separate
 * generation prompt.
 */
export const TUTORIAL_CHAT_TEMPLATE = [
  '{%- set ns = namespace(turn=0) -%}',
  '{%- for message in messages -%}',
  "{%- if message['role'] == 'system' -%}{{ message['content'] | trim }}{{ '\n' }}",
  "{%- elif message['role'] == 'user' -%}",
  "{%- if ns.turn > 0 -%}{{ '\n' }}{%- endif -%}",
  "{{ ('Human: ' + message['content']) | trim }}{{ '\n\nAssistant: ' }}",
  '{%- set ns.turn = ns.turn + 1 -%}',
  "{%- else -%}{{ message['content'] }}{{ eos_token }}",
  '{%- endif -%}',
  '{%- endfor -%}',
].join('');

export class TutorialTemplate implements PromptTemplate {
  readonly name = 'tutorial';
  readonly stopStrings = ['\nHuman:'];
  readonly stopTokenIds: number[];
  private readonly eosText: string;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly eosId: number,
  ) {
    this.stopTokenIds = [eosId];
    this.eosText = tokenizer.decode([eosId], { skipSpecialTokens: false });
  }

  /** Uses the recorded eos token if the tokenizer knows it, else the tokenizer's own eos. */
  static create(tokenizer: Tokenizer, eosToken?: string): TutorialTemplate {
    const eosId =
      (eosToken === undefined ? undefined : tokenizer.tokenToId(eosToken)) ?? tokenizer.eosTokenId;
    if (eosId === undefined) {
      throw new LoraforgeError(
        'the tutorial template needs an end-of-sequence token, and the tokenizer defines none',
        'set eos_token in tokenizer_config.json',
      );
    }
    return new TutorialTemplate(tokenizer, eosId);
  }

  encodeConversation(conv: Conversation, opts: { trainOnPrompt: boolean }): EncodedConversation {
    const inputIds: number[] = [];
    const labels: number[] = [];
    const { system, turns } = splitTurns(withSystem(conv));
    turns.forEach((turn, i) => {
      const promptIds = this.encode(this.turnPrompt(turn, i, system));
      const replyIds = [...this.encode(turn.assistant ?? ''), this.eosId];
      appendAll(inputIds, promptIds);
      appendAll(inputIds, replyIds);
      appendAll(labels, opts.trainOnPrompt ? promptIds : promptIds.map(() => IGNORE_INDEX));
      appendAll(labels, replyIds);
    });
    return { inputIds, labels };
  }

  renderPrompt(messages: ChatMessage[]): string {
    return this.pieces(messages)
      .map((piece) => (typeof piece === 'string' ? piece : this.eosText))
      .join('');
  }

  encodePrompt(messages: ChatMessage[]): number[] {
    return this.pieces(messages).flatMap((piece) =>
      typeof piece === 'string' ? this.encode(piece) : [piece],
    );
  }

  toJSON(): PromptTemplateSpec {
    return { name: 'tutorial', specialTokens: { eos: this.eosText } };
  }

  /** Text pieces and eos ids in order, ending with the last turn's open "Assistant: ". */
  private pieces(messages: ChatMessage[]): (string | number)[] {
    const { system, turns } = splitTurns(messages);
    const last = turns[turns.length - 1];
    if (!last || last.assistant !== undefined) {
      throw new LoraforgeError('a prompt must end with a user message');
    }
    return turns.flatMap((turn, i) => {
      const prompt = this.turnPrompt(turn, i, system);
      return turn.assistant === undefined ? [prompt] : [prompt, turn.assistant, this.eosId];
    });
  }

  private turnPrompt(turn: Turn, index: number, system: string | undefined): string {
    const lead = index > 0 ? '\n' : system === undefined ? '' : `${pythonStrip(system)}\n`;
    return `${lead}${pythonStrip(`Human: ${turn.user}`)}\n\nAssistant: `;
  }

  private encode(text: string): number[] {
    return text === '' ? [] : this.tokenizer.encode(text, { addSpecialTokens: false });
  }
}
