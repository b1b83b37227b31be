/** POST /v1/chat/completions, POST /v1/completions and the optional tutorial-style route alias. */
import { randomUUID } from 'node:crypto';
import type { RequestContext } from './context.ts';
import {
  generateText,
  type TextGenerationRequest,
  type TextGenerationResult,
} from './generation.ts';
import { checkPromptBytes, renderedTexts } from './prompt-limit.ts';
import { sendJson, SseWriter } from './http-io.ts';
import {
  optionalBoolean,
  parseIncludeUsage,
  parseMaxTokens,
  parseMessages,
  parseSampling,
  parseStop,
  refuseUnsupported,
  requiredString,
  resolveModel,
} from './request-params.ts';
import type { ChatMessage } from './engine.ts';
import type { FinishReason } from './scheduler.ts';

/** The parts in which chat and text completions differ on the wire. */
interface WireShape {
  idPrefix: string;
  object: string;
  chunkObject: string;
  choice(text: string, finishReason: FinishReason): object;
  /** Chat opens a stream with a chunk announcing the assistant role; completions do not. */
  openingChoice: object | null;
  deltaChoice(text: string): object;
  finalChoice(finishReason: FinishReason): object;
}

const CHAT: WireShape = {
  idPrefix: 'chatcmpl-',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (text, finishReason) => ({
    index: 0,
    message: { role: 'assistant', content: text },
    logprobs: null,
    finish_reason: finishReason,
  }),
  openingChoice: {
    index: 0,
    delta: { role: 'assistant', content: '' },
    logprobs: null,
    finish_reason: null,
  },
  deltaChoice: (text) => ({
    index: 0,
    delta: { content: text },
    logprobs: null,
    finish_reason: null,
  }),
  finalChoice: (finishReason) => ({
    index: 0,
    delta: {},
    logprobs: null,
    finish_reason: finishReason,
  }),
};

const TEXT: WireShape = {
  idPrefix: 'cmpl-',
  object: 'text_completion',
  chunkObject: 'text_completion',
  choice: (text, finishReason) => ({ index: 0, text, logprobs: null, finish_reason: finishReason }),
  openingChoice: null,
  deltaChoice: (text) => ({ index: 0, text, logprobs: null, finish_reason: null }),
  finalChoice: (finishReason) => ({
    index: 0,
    text: '',
    logprobs: null,
    finish_reason: finishReason,
  }),
};

export async function handleChatCompletions(ctx: RequestContext): Promise<void> {
  const { engine } = ctx.state;
  const adapter = resolveModel(ctx.body, engine);
  const messages = parseMessages(ctx.body);
  const stop = [...parseStop(ctx.body), ...engine.chatStopStrings(adapter)];
  checkPromptBytes(engine, renderedTexts(messages), 'messages');
  const promptIds = await engine.encodeChat(messages, adapter);
  await respond(ctx, CHAT, buildRequest(ctx, promptIds, adapter, stop));
}

export async function handleCompletions(ctx: RequestContext): Promise<void> {
  const { engine } = ctx.state;
  const adapter = resolveModel(ctx.body, engine);
  const prompt = requiredString(ctx.body, 'prompt');
  checkPromptBytes(engine, [prompt], 'prompt');
  const promptIds = await engine.encodeText(prompt);
  await respond(ctx, TEXT, buildRequest(ctx, promptIds, adapter, parseStop(ctx.body)));
}

/** `POST <alias> {prompt, max_tokens?}` -> `{text}`: the prompt is one user turn of a chat. */
export async function handleRouteAlias(ctx: RequestContext): Promise<void> {
  const { engine, routeAliasModel } = ctx.state;
  const adapter = resolveModel({ model: routeAliasModel }, engine);
  const messages: ChatMessage[] = [{ role: 'user', content: requiredString(ctx.body, 'prompt') }];
  checkPromptBytes(engine, renderedTexts(messages), 'prompt');
  const promptIds = await engine.encodeChat(messages, adapter);
  const request = buildRequest(ctx, promptIds, adapter, engine.chatStopStrings(adapter));
  const result = await generateText(ctx.state.scheduler, engine, request, null, ctx.signal);
  sendJson(ctx.res, 200, { text: result.text });
}

function buildRequest(
  ctx: RequestContext,
  promptIds: number[],
  adapter: string | null,
  stop: string[],
): TextGenerationRequest {
  const { engine, maxTokensDefault } = ctx.state;
  refuseUnsupported(ctx.body);
  return {
    sequence: {
      promptIds,
      adapter,
      sampling: parseSampling(ctx.body),
      maxNewTokens: parseMaxTokens(ctx.body, promptIds.length, engine.maxContext, maxTokensDefault),
    },
    stop,
  };
}

const usageOf = (result: TextGenerationResult) => ({
  prompt_tokens: result.promptTokens,
  completion_tokens: result.completionTokens,
  total_tokens: result.promptTokens + result.completionTokens,
});

async function respond(
  ctx: RequestContext,
  shape: WireShape,
  request: TextGenerationRequest,
): Promise<void> {
  const stream = optionalBoolean(ctx.body, 'stream');
  const includeUsage = parseIncludeUsage(ctx.body, stream);
  const envelope = {
    id: shape.idPrefix + randomUUID().replaceAll('-', ''),
    created: Math.floor(Date.now() / 1000),
    model: ctx.body.model as string,
  };
  const { engine, scheduler } = ctx.state;
  if (!stream) {
    const result = await generateText(scheduler, engine, request, null, ctx.signal);
    sendJson(ctx.res, 200, {
      ...envelope,
      object: shape.object,
      choices: [shape.choice(result.text, result.finishReason)],
      usage: usageOf(result),
    });
    return;
  }

  const sse = new SseWriter(ctx.res);
  // With include_usage, OpenAI marks every chunk but the last with `usage: null`.
  const chunk = (choice: object) => ({
    ...envelope,
    object: shape.chunkObject,
    choices: [choice],
    ...(includeUsage ? { usage: null } : {}),
  });
  // Headers go out with the first text, so a request refused or failed before that (queue full,
  // prefill error) still gets a proper status code instead of an error inside a 200 stream.
  let opened = false;
  const open = () => {
    if (opened) return;
    opened = true;
    sse.open();
    if (shape.openingChoice) sse.send(chunk(shape.openingChoice));
  };
  const result = await generateText(
    scheduler,
    engine,
    request,
    (text) => {
      open();
      sse.send(chunk(shape.deltaChoice(text)));
    },
    ctx.signal,
  );
  open();
  sse.send(chunk(shape.finalChoice(result.finishReason)));
  if (includeUsage)
    sse.send({ ...envelope, object: shape.chunkObject, choices: [], usage: usageOf(result) });
  sse.end();
}
