import { LoraforgeError } from '../util/errors.ts';
import type { ChatMessage, Conversation } from './conversation.ts';
import { isObject, type RawRecord } from './records.ts';

export const DATASET_FORMATS = ['alpaca', 'sharegpt', 'openai'] as const;
/** alpaca: instruction/input/output; sharegpt: conversations of {from, value}; openai: messages of {role, content}. */
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

/** Field names the formats read; a column mapping renames them (`{instruction: "question"}`). */
export const MAPPABLE_FIELDS = [
  'instruction',
  'input',
  'output',
  'system',
  'history', // alpaca
  'conversations',
  'from',
  'value', // sharegpt (plus system)
  'messages',
  'role',
  'content', // openai
] as const;
export type MappableField = (typeof MAPPABLE_FIELDS)[number];
export type ColumnMapping = Partial<Record<MappableField, string>>;

/**
 * ShareGPT role values of a dataset that names its roles otherwise (LLaMA-Factory's `tags`:
 * `user_tag`, `assistant_tag`, `system_tag`), e.g. {user: "customer", assistant: "agent"}.
 */
export type RoleTags = Partial<Record<ChatMessage['role'], string>>;

/** Checks a user-supplied column mapping (from a config file or `--columns`). */
export function parseColumnMapping(mapping: Record<string, unknown>): ColumnMapping {
  for (const [field, column] of Object.entries(mapping)) {
    if (!(MAPPABLE_FIELDS as readonly string[]).includes(field)) {
      throw new LoraforgeError(
        `column mapping: unknown field "${field}"`,
        `mappable fields: ${MAPPABLE_FIELDS.join(', ')}`,
      );
    }
    if (typeof column !== 'string' || column === '') {
      throw new LoraforgeError(`column mapping: "${field}" must map to a column name`);
    }
  }
  return mapping as ColumnMapping;
}

export function parseDatasetFormat(name: string): DatasetFormat {
  if ((DATASET_FORMATS as readonly string[]).includes(name)) return name as DatasetFormat;
  throw new LoraforgeError(
    `unknown dataset format "${name}"`,
    `formats: ${DATASET_FORMATS.join(', ')}`,
  );
}

/** Guesses the format from one record's fields. */
export function detectFormat(record: RawRecord, columns: ColumnMapping = {}): DatasetFormat {
  const has = (field: MappableField) => (columns[field] ?? field) in record.fields;
  if (has('messages')) return 'openai';
  if (has('conversations')) return 'sharegpt';
  if (has('instruction') || has('output')) return 'alpaca';
  const fields = Object.keys(record.fields)
    .map((k) => `"${k}"`)
    .join(', ');
  throw new LoraforgeError(
    `${record.where}: cannot tell the dataset format from the fields ${fields || '(none)'}`,
    'pass a format (alpaca, sharegpt, openai) and a column mapping such as {"instruction": "question", "output": "answer"}',
  );
}

/** Converts a record to a Conversation, with errors that name the record, the field and the format. */
export function toConversation(
  record: RawRecord,
  format: DatasetFormat,
  columns: ColumnMapping = {},
  roleTags: RoleTags = {},
): Conversation {
  const reader = new FieldReader(record, format, columns, roleTags);
  switch (format) {
    case 'alpaca':
      return alpacaConversation(reader);
    case 'sharegpt':
      return sharegptConversation(reader);
    case 'openai':
      return openaiConversation(reader);
  }
}

/** Reads mapped fields of one record and words errors consistently. */
class FieldReader {
  constructor(
    readonly record: RawRecord,
    readonly format: DatasetFormat,
    private readonly columns: ColumnMapping,
    readonly roleTags: RoleTags = {},
  ) {}

  column(field: MappableField): string {
    return this.columns[field] ?? field;
  }

  /** `"answer"` or, when renamed by the mapping, `"answer" (mapped from output)`. */
  label(field: MappableField, path = ''): string {
    const column = this.column(field);
    return `"${path}${column}"${column === field ? '' : ` (mapped from ${field})`}`;
  }

  fail(problem: string): never {
    throw new LoraforgeError(`${this.record.where}: ${problem} (${this.format} format)`);
  }

  raw(field: MappableField): unknown {
    return this.record.fields[this.column(field)];
  }

  string(field: MappableField): string {
    const value = this.raw(field);
    if (value === undefined) this.fail(`missing ${this.label(field)}`);
    if (typeof value !== 'string')
      this.fail(`${this.label(field)} must be a string, got ${describe(value)}`);
    return value;
  }

  /** Absent, null and "" all mean "not given". */
  optionalString(field: MappableField): string | undefined {
    const value = this.raw(field);
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value !== 'string')
      this.fail(`${this.label(field)} must be a string, got ${describe(value)}`);
    return value;
  }

  array(field: MappableField): unknown[] {
    const value = this.raw(field);
    if (value === undefined) this.fail(`missing ${this.label(field)}`);
    if (!Array.isArray(value))
      this.fail(`${this.label(field)} must be an array, got ${describe(value)}`);
    return value;
  }
}

function alpacaConversation(r: FieldReader): Conversation {
  const instruction = r.string('instruction');
  const input = r.optionalString('input');
  const output = r.string('output');
  const messages: ChatMessage[] = [];
  const history = r.raw('history');
  // An empty CSV cell reads as "": no history, like an absent field.
  if (history !== undefined && history !== null && history !== '') {
    if (!Array.isArray(history))
      r.fail(`${r.label('history')} must be an array of [user, assistant] pairs`);
    history.forEach((pair, i) => {
      if (
        !Array.isArray(pair) ||
        pair.length !== 2 ||
        typeof pair[0] !== 'string' ||
        typeof pair[1] !== 'string'
      ) {
        r.fail(`${r.label('history')}[${i}] must be a [user, assistant] pair of strings`);
      }
      messages.push({ role: 'user', content: pair[0] }, { role: 'assistant', content: pair[1] });
    });
  }
  // Same join as the tutorial ("instruction\ninput"); without input the tutorial's strip() drops the "\n".
  const user = input === undefined ? instruction : `${instruction}\n${input}`;
  messages.push({ role: 'user', content: user }, { role: 'assistant', content: output });
  return { system: r.optionalString('system'), messages };
}

const SHAREGPT_ROLES: Record<string, ChatMessage['role']> = {
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  system: 'system',
};

/** The dataset's own role names when it declares them, else ShareGPT's and OpenAI's. */
function sharegptRole(value: string, tags: RoleTags): ChatMessage['role'] | undefined {
  for (const [role, tag] of Object.entries(tags) as [ChatMessage['role'], string][]) {
    if (tag === value) return role;
  }
  return Object.hasOwn(SHAREGPT_ROLES, value) ? SHAREGPT_ROLES[value] : undefined;
}

function sharegptConversation(r: FieldReader): Conversation {
  const turns = r.array('conversations').map((turn, i): ChatMessage => {
    const at = `${r.column('conversations')}[${i}]`;
    if (!isObject(turn))
      r.fail(`${at} must be an object with "${r.column('from')}" and "${r.column('value')}"`);
    const from = turn[r.column('from')];
    const role = typeof from === 'string' ? sharegptRole(from, r.roleTags) : undefined;
    if (!role) {
      const expected = Object.values(r.roleTags).length
        ? Object.values(r.roleTags).join(', ')
        : 'human, gpt, system, user or assistant';
      r.fail(`${at}: unsupported ${r.label('from')} ${describe(from)}; expected ${expected}`);
    }
    const value = turn[r.column('value')];
    if (typeof value !== 'string')
      r.fail(`${at}: ${r.label('value')} must be a string, got ${describe(value)}`);
    return { role, content: value };
  });
  return alternatingConversation(r, turns, r.column('conversations'), r.optionalString('system'));
}

function openaiConversation(r: FieldReader): Conversation {
  const turns = r.array('messages').map((message, i): ChatMessage => {
    const at = `${r.column('messages')}[${i}]`;
    if (!isObject(message))
      r.fail(`${at} must be an object with "${r.column('role')}" and "${r.column('content')}"`);
    const role = message[r.column('role')];
    if (role !== 'system' && role !== 'user' && role !== 'assistant') {
      r.fail(
        `${at}: unsupported ${r.label('role')} ${describe(role)}; expected system, user or assistant`,
      );
    }
    return { role, content: openaiContent(r, message[r.column('content')], at) };
  });
  return alternatingConversation(r, turns, r.column('messages'), undefined);
}

/** OpenAI content is a string or a list of parts; only text parts can be trained on. */
function openaiContent(r: FieldReader, content: unknown, at: string): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part, j) => {
        if (isObject(part) && part.type === 'text' && typeof part.text === 'string')
          return part.text;
        return r.fail(`${at}: content part ${j} is not a {"type": "text", "text": ...} part`);
      })
      .join('');
  }
  return r.fail(
    `${at}: ${r.label('content')} must be a string or a list of text parts, got ${describe(content)}`,
  );
}

/**
 * Checks the turn order templates rely on: an optional leading system message, then user and
 * assistant alternating, ending with the assistant (the part that is learned).
 */
function alternatingConversation(
  r: FieldReader,
  turns: ChatMessage[],
  listName: string,
  recordSystem: string | undefined,
): Conversation {
  let system = recordSystem;
  let first = 0;
  if (turns[0]?.role === 'system') {
    if (system !== undefined) r.fail(`two system prompts: ${r.label('system')} and ${listName}[0]`);
    system = turns[0].content;
    first = 1;
  }
  const messages = turns.slice(first);
  messages.forEach((message, i) => {
    const expected = i % 2 === 0 ? 'user' : 'assistant';
    const article = expected === 'user' ? 'a' : 'an';
    if (message.role !== expected) {
      r.fail(
        `${listName}[${i + first}]: expected ${article} ${expected} message, got ${message.role} (turns must alternate user, assistant)`,
      );
    }
  });
  if (messages.length === 0) r.fail(`${listName} has no user/assistant messages`);
  if (messages.length % 2 === 1)
    r.fail(`${listName} must end with an assistant message (the part that is learned)`);
  return { system, messages };
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return typeof value;
}
