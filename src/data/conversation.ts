/**
 * A chat message as templates see it. `system` only appears when handing messages to a chat
 * template. A type alias rather than an interface so that it is assignable to io's
 * ChatTemplateMessage, which has an index signature.
 */
export type ChatMessage = {
  role: 'system' | 'user' | 'assistant';
  content: string;
};

/**
 * One training example in a format-independent shape: an optional system prompt and messages
 * that alternate user, assistant, user, assistant, ... (roles user | assistant only).
 */
export interface Conversation {
  system?: string;
  messages: ChatMessage[];
}

/** The conversation as one message list, system prompt first, for chat templates. */
export function withSystem(conv: Conversation): ChatMessage[] {
  return conv.system === undefined
    ? conv.messages
    : [{ role: 'system', content: conv.system }, ...conv.messages];
}
