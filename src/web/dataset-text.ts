/** A dataset file's text → conversations with `{{name}}` placeholders filled, as `--set` does. */
import type { Conversation } from '../data/conversation.ts';
import { detectFormat, toConversation } from '../data/formats.ts';
import { fillConversation } from '../data/placeholders.ts';
import { parseRecords } from '../data/records.ts';

/** Conversations from the text of a dataset file (any format `loraforge train` reads). */
export function conversationsFromText(
  text: string,
  file: string,
  values: Readonly<Record<string, string>>,
): Conversation[] {
  const records = parseRecords(text, file);
  return records.map((record) =>
    fillConversation(toConversation(record, detectFormat(record)), values),
  );
}

/**
 * The identity records whose replies give the assistant's name before its author's ("我是 小李，由
 * 小张 开发…"; 72 of examples/identity.json's 90). The other 18 open with the author ("我是由 小张
 * 开发的…"), which pulls the tiny model's `我是 小…` towards 张 early in a short fine-tune.
 */
export function nameFirst(
  conversations: readonly Conversation[],
  identity: { name: string; author: string },
): Conversation[] {
  return conversations.filter((conv) =>
    conv.messages.every((m) => {
      if (m.role !== 'assistant') return true;
      const name = m.content.indexOf(identity.name);
      const author = m.content.indexOf(identity.author);
      return name >= 0 && (author < 0 || name < author);
    }),
  );
}
