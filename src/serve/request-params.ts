/**
 * Validation of the OpenAI request fields the server supports. Each reader names the offending
 * field in a 400 (`param`) so clients can tell what to fix; unknown fields are ignored, as
 * OpenAI-compatible servers commonly do.
 */
import { describeRange, inSamplingRange } from '../infer/sampling.ts';
import { badRequest, notFound } from './api-error.ts';
import type { ChatMessage, SamplingParams, ServeEngine } from './engine.ts';

type Body = Record<string, unknown>;

const MAX_STOP_STRINGS = 16;
const ROLES = new Set(['system', 'user', 'assistant']);

const isAbsent = (value: unknown) => value === undefined || value === null;

type RangedField = Parameters<typeof describeRange>[0];

/** A sampling field checked against the range the CLI uses too; absent = the model's default. */
function samplingField(body: Body, name: string, field: RangedField): number | undefined {
  const value = body[name];
  if (isAbsent(value)) return undefined;
  if (typeof value !== 'number' || !inSamplingRange(field, value))
    throw badRequest(
      `'${name}' must be ${describeRange(field)}; got ${JSON.stringify(value)}.`,
      name,
    );
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

/**
 * Sampling fields; the ones a request leaves out take the model's generation_config.json
 * defaults, as in `loraforge generate`. `top_k: -1` is vLLM's "off", like 0.
 */
export function parseSampling(body: Body): SamplingParams {
  const n = optionalInteger(body, 'n');
  if (n !== undefined && n !== 1) throw badRequest("Only 'n': 1 is supported.", 'n');
  const topK = body.top_k === -1 ? 0 : samplingField(body, 'top_k', 'topK');
  return {
    temperature: samplingField(body, 'temperature', 'temperature'),
    topP: samplingField(body, 'top_p', 'topP'),
    topK,
    repetitionPenalty: samplingField(body, 'repetition_penalty', 'repetitionPenalty'),
    presencePenalty: samplingField(body, 'presence_penalty', 'presencePenalty'),
    frequencyPenalty: samplingField(body, 'frequency_penalty', 'frequencyPenalty'),
    seed: optionalInteger(body, 'seed'),
  };
}

const isOff = (value: unknown) => isAbsent(value) || value === false || value === 0;

/**
 * Fields this server does not implement are refused by name rather than silently ignored: a
 * client asking for tool calls, log probabilities or JSON output would otherwise get an answer
 * that looks right and is not what it asked for.
 */
export function refuseUnsupported(body: Body): void {
  const tools = body.tools ?? body.functions;
  if (!isAbsent(tools) && !(Array.isArray(tools) && tools.length === 0)) {
    const name = isAbsent(body.tools) ? 'functions' : 'tools';
    throw badRequest(
      `'${name}' is not supported: this server does not do function / tool calling.`,
      name,
    );
  }
  for (const name of ['logprobs', 'top_logprobs'] as const) {
    if (!isOff(body[name]))
      throw badRequest(`'${name}' is not supported by this server; leave it out.`, name);
  }
  const format = body.response_format;
  if (!isAbsent(format)) {
    const type = typeof format === 'object' ? (format as Body).type : undefined;
    if (type !== 'text') {
      throw badRequest(
        `'response_format' ${JSON.stringify(type ?? format)} is not supported; only {"type": "text"}.`,
        'response_format',
      );
    }
  }
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
