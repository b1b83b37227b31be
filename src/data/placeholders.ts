import { LoraforgeError } from '../util/errors.ts';
import type { Conversation } from './conversation.ts';

/** `{{name}}` or `{{ name }}`; names are letters, digits, `_`, `-` and `.` in any script. */
const PLACEHOLDER = /\{\{\s*([\p{L}\p{N}_.-]+)\s*\}\}/gu;

/**
 * Replaces `{{name}}` with `values[name]`. Placeholders whose name is not in `values` are left
 * as they are, because datasets legitimately contain `{{...}}` (Jinja, Handlebars, code).
 */
export function fillPlaceholders(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(PLACEHOLDER, (whole, name: string) =>
    Object.hasOwn(values, name) ? values[name]! : whole,
  );
}

/** Fills placeholders in the system prompt and every message of a conversation. */
export function fillConversation(
  conv: Conversation,
  values: Readonly<Record<string, string>>,
): Conversation {
  if (Object.keys(values).length === 0) return conv;
  return {
    system: conv.system === undefined ? undefined : fillPlaceholders(conv.system, values),
    messages: conv.messages.map((m) => ({
      role: m.role,
      content: fillPlaceholders(m.content, values),
    })),
  };
}

/** Parses `--set name=value` arguments (the value may itself contain `=`). */
export function parseAssignments(assignments: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const assignment of assignments) {
    const eq = assignment.indexOf('=');
    if (eq <= 0)
      throw new LoraforgeError(
        `--set ${assignment}: expected name=value`,
        'for example --set name=小李',
      );
    values[assignment.slice(0, eq).trim()] = assignment.slice(eq + 1);
  }
  return values;
}
