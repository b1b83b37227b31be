/** A dataset file's text → conversations with `{{name}}` placeholders filled, as `--set` does. */
import type { Conversation } from '../data/conversation.ts';
import { detectFormat, toConversation } from '../data/formats.ts';
import { fillConversation } from '../data/placeholders.ts';
import { parseRecords } from '../data/records.ts';

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
