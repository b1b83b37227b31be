import { LoraforgeError } from '../util/errors.ts';
import type { ChatMessage } from './conversation.ts';

/** A user message and the assistant's reply, which is missing for the turn being generated. */
export interface Turn {
  user: string;
  assistant?: string;
}

/**
 * Splits messages (optional leading system, then user/assistant alternating) into turns. Only the
 * last turn may lack a reply. Used where a template needs the user/assistant pairing.
 */
export function splitTurns(messages: readonly ChatMessage[]): { system?: string; turns: Turn[] } {
  const system = messages[0]?.role === 'system' ? messages[0].content : undefined;
  const rest = system === undefined ? messages : messages.slice(1);
  const turns: Turn[] = [];
  rest.forEach((message, i) => {
    const expected = i % 2 === 0 ? 'user' : 'assistant';
    const article = expected === 'user' ? 'a' : 'an';
    if (message.role !== expected) {
      throw new LoraforgeError(
        `message ${i + 1}: expected ${article} ${expected} message, got ${message.role}`,
        'after an optional system message, messages must alternate user, assistant, user, ...',
      );
    }
    if (expected === 'user') turns.push({ user: message.content });
    else turns[turns.length - 1]!.assistant = message.content;
  });
  return { system, turns };
}
