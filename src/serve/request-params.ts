/**
 * Validation of the OpenAI request fields the server supports. Each reader names the offending
 * field in a 400 (`param`) so clients can tell what to fix; unknown fields are ignored, as
 * OpenAI-compatible servers commonly do.
 */
import { badRequest, notFound } from './api-error.ts';
import type { ChatMessage, SamplingParams, ServeEngine } from './engine.ts';

type Body = Record<string, unknown>;

const MAX_STOP_STRINGS = 16;
const ROLES = new Set(['system', 'user', 'assistant']);

const isAbsent = (value: unknown) => value === undefined || value === null;

function optionalNumber(
  body: Body,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const value = body[name];
  if (isAbsent(value)) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw badRequest(`'${name}' must be a number.`, name);
  }
  if (value < min || value > max)
    throw badRequest(`'${name}' must be between ${min} and ${max}.`, name);
  return value;
}

function optionalInteger(body: Body, name: string): number | undefined {
  const value = body[name];
  if (isAbsent(value)) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw badRequest(`'${name}' must be an integer.`, name);
  }
  return value;
}

export function optionalBoolean(body: Body, name: string): boolean {
  const value = body[name];
  if (isAbsent(value)) return false;
  if (typeof value !== 'boolean') throw badRequest(`'${name}' must be a boolean.`, name);
  return value;
}

export function requiredString(body: Body, name: string): string {
  const value = body[name];
  if (typeof value !== 'string') {
    throw badRequest(
      isAbsent(value) ? `'${name}' is required.` : `'${name}' must be a string.`,
      name,
    );
  }
  return value;
}

/** The adapter a `model` field selects: null for the base model; 404 for an unknown name. */
export function resolveModel(body: Body, engine: ServeEngine): string | null {
  const model = requiredString(body, 'model');
  if (model === engine.baseModelId) return null;
  if (engine.listAdapters().includes(model)) return model;
  throw notFound(`The model '${model}' does not exist.`, 'model_not_found');
}

export function parseSampling(body: Body): SamplingParams {
  const n = optionalInteger(body, 'n');
  if (n !== undefined && n !== 1) throw badRequest("Only 'n': 1 is supported.", 'n');
  const topP = optionalNumber(body, 'top_p', 1, 0, 1);
  if (topP === 0) throw badRequest("'top_p' must be greater than 0.", 'top_p');
  return {
    temperature: optionalNumber(body, 'temperature', 1, 0, 2),
    topP,
    seed: optionalInteger(body, 'seed'),
  };
}

export function parseStop(body: Body): string[] {
  const stop = body.stop;
  if (isAbsent(stop)) return [];
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && s !== '')) {
    throw badRequest("'stop' must be a non-empty string or an array of non-empty strings.", 'stop');
  }
  if (list.length > MAX_STOP_STRINGS) {
    throw badRequest(`'stop' may hold at most ${MAX_STOP_STRINGS} strings.`, 'stop');
  }
  return list;
}

/**
 * The token budget: the client's `max_tokens` (or chat's newer `max_completion_tokens`), else
 * `fallback`, capped by what the context leaves. A prompt that leaves no room is a 400.
 */
export function parseMaxTokens(
  body: Body,
  promptTokens: number,
  maxContext: number,
  fallback: number,
): number {
  const field = isAbsent(body.max_completion_tokens) ? 'max_tokens' : 'max_completion_tokens';
  const requested = optionalInteger(body, field);
  if (requested !== undefined && requested < 1)
    throw badRequest(`'${field}' must be at least 1.`, field);
  const room = maxContext - promptTokens;
  if (room < 1 || (requested !== undefined && requested > room)) {
    throw badRequest(
      `This model's maximum context length is ${maxContext} tokens; the prompt has ${promptTokens}` +
        (requested !== undefined ? ` and ${requested} were requested for the completion.` : '.'),
      requested !== undefined && room >= 1 ? field : 'messages',
      'context_length_exceeded',
    );
  }
  return Math.min(requested ?? fallback, room);
}

/** `messages` with string content or text-only content parts. */
export function parseMessages(body: Body): ChatMessage[] {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw badRequest("'messages' must be a non-empty array.", 'messages');
  }
  return messages.map((message: unknown, i) => {
    const param = `messages[${i}]`;
    if (typeof message !== 'object' || message === null)
      throw badRequest(`'${param}' must be an object.`, param);
    const { role, content } = message as Body;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw badRequest(`'${param}.role' must be one of system, user, assistant.`, `${param}.role`);
    }
    return { role: role as ChatMessage['role'], content: messageText(content, `${param}.content`) };
  });
}

function messageText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  const isTextPart = (part: unknown) =>
    typeof part === 'object' &&
    part !== null &&
    (part as Body).type === 'text' &&
    typeof (part as Body).text === 'string';
  if (Array.isArray(content) && content.every(isTextPart)) {
    return content.map((part) => (part as { text: string }).text).join('');
  }
  throw badRequest(`'${param}' must be a string or an array of text parts.`, param);
}

/** `stream_options.include_usage`, only meaningful (and only allowed) with `stream: true`. */
export function parseIncludeUsage(body: Body, stream: boolean): boolean {
  const options = body.stream_options;
  if (isAbsent(options)) return false;
  if (!stream)
    throw badRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw badRequest("'stream_options' must be an object.", 'stream_options');
  }
  return optionalBoolean(options as Body, 'include_usage');
}
