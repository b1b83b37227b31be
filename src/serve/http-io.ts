/** Reading JSON bodies and writing JSON / Server-Sent-Events responses with plain node:http. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, badRequest } from './api-error.ts';

const tooLarge = (limit: number) =>
  new ApiError(
    413,
    `Request body is larger than ${limit} bytes.`,
    'invalid_request_error',
    'body_too_large',
  );

/** A size above which a body is read to its end but neither kept nor parsed. */
export interface DrainAbove {
  bytes: number;
  /** The refusal once the body has been read (the connection stays usable). */
  error: () => ApiError;
}

/**
 * Reads and parses a JSON object body. Stops reading as soon as `limit` bytes are exceeded (the
 * caller answers 413 and the connection is closed, so the rest is never buffered). Above
 * `drain.bytes` the rest is read and dropped: parsing a megabyte of JSON costs the event loop
 * milliseconds that every stream and /health would wait for.
 */
export function readJsonObject(
  req: IncomingMessage,
  limit: number,
  drain?: DrainAbove,
): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        detach();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      if (drain && size > drain.bytes) chunks.length = 0;
      else chunks.push(chunk);
    };
    const onEnd = () => {
      detach();
      if (drain && size > drain.bytes) return reject(drain.error());
      try {
        resolve(parseObject(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(err);
      }
    };
    const onError = (err: Error) => {
      detach();
      reject(err);
    };
    // Covers a client that disconnects mid-body without the stream reporting an error.
    const onClose = () => onError(new Error('request body incomplete: the client disconnected'));
    const detach = () => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

function parseObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest('We could not parse the JSON body of your request.', null, 'invalid_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('The request body must be a JSON object.', null, 'invalid_json');
  }
  return value as Record<string, unknown>;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Writes `data: <json>\n\n` events; `end()` sends the OpenAI `[DONE]` sentinel. */
export class SseWriter {
  constructor(private readonly res: ServerResponse) {}

  open(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      // Proxies such as nginx would otherwise buffer the whole stream.
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  send(event: unknown): void {
    if (this.writable) this.res.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  end(): void {
    if (this.writable) this.res.end('data: [DONE]\n\n');
  }

  /** False once the client is gone; the scheduler is told via the abort signal, not here. */
  private get writable(): boolean {
    return !this.res.writableEnded && !this.res.destroyed;
  }
}
