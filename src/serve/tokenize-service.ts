/**
 * Runs inside the tokenizer worker thread: the model folder's own tokenizer, and the prompt
 * templates by spec, encode what the main thread sends. Same files, same code, so the ids are
 * exactly those the main thread would compute; it only keeps them off the event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { templateFromSpec, type ChatMessage, type PromptTemplate } from '../data/templates.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { TokenizeReply, TokenizeRequest } from './tokenizer-thread.ts';

const tokenizer = await loadTokenizer((workerData as { modelDir: string }).modelDir);
const templates = new Map<string, PromptTemplate>();

function templateOf(spec: unknown): PromptTemplate {
  const key = JSON.stringify(spec);
  let template = templates.get(key);
  if (!template) templates.set(key, (template = templateFromSpec(spec, tokenizer)));
  return template;
}

parentPort!.on('message', (request: TokenizeRequest) => {
  let reply: TokenizeReply;
  try {
    const ids =
      request.kind === 'text'
        ? tokenizer.encode(request.text)
        : templateOf(request.spec).encodePrompt(request.messages as ChatMessage[]);
    reply = { id: request.id, ids };
  } catch (err) {
    const e = err as Error;
    reply = {
      id: request.id,
      error: {
        message: e.message,
        hint: (err as LoraforgeError).hint,
        user: err instanceof LoraforgeError,
      },
    };
  }
  parentPort!.postMessage(reply);
});
parentPort!.postMessage({ id: 0, ids: [] } satisfies TokenizeReply); // ready
