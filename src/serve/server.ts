/**
 * The OpenAI-compatible HTTP server: routing, API-key check, body limits, error bodies and
 * graceful shutdown around the route handlers. No framework: node:http is all it needs, and it
 * keeps control over exactly when bodies are read and connections are closed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { realpathSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LoraforgeError } from '../util/errors.ts';
import { handleListModels, handleLoadAdapter, handleUnloadAdapter } from './adapter-routes.ts';
import { ApiError, badRequest, internalError, notFound, unavailable } from './api-error.ts';
import { handleChatCompletions, handleCompletions, handleRouteAlias } from './completion-routes.ts';
import type { RequestContext, ServeState } from './context.ts';
import { CorsPolicy } from './cors.ts';
import type { ServeEngine } from './engine.ts';
import { readJsonObject, sendJson, SseWriter } from './http-io.ts';
import { promptBodyDrain } from './prompt-limit.ts';
import { Scheduler } from './scheduler.ts';

/** Authentication, runtime adapter loading, batching and limits of the server. */
export interface ServeOptions {
  /** When set, every route except /health needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Folder that POST /v1/load_lora_adapter may load from; unset disables runtime loading. */
  adaptersDir?: string;
  /** Extra route taking `{prompt, max_tokens?}` and answering `{text}`, e.g. '/api/legal-assistant'. */
  routeAlias?: string;
  /** Model the route alias uses; defaults to the base model. */
  routeAliasModel?: string;
  /** Requests that may wait beyond the `maxBatch` running ones (default 64). */
  maxQueue?: number;
  /** Sequences decoded together per step (default 8). */
  maxBatch?: number;
  /** Default 1 MiB. */
  maxBodyBytes?: number;
  /** Completion budget when a request gives no `max_tokens` (default 256). */
  maxTokensDefault?: number;
  /** How long `close()` lets running requests finish before cancelling them (default 10 s). */
  shutdownGraceMs?: number;
  /** Browser origins allowed to call the API (CORS), or ['*']; unset: no CORS headers. */
  allowedOrigins?: string[];
}

/** A running OpenAI-compatible HTTP server. */
export interface LoraforgeServer {
  /** Starts listening; port 0 picks a free port. Resolves to the address actually bound. */
  listen(port: number, host: string): Promise<{ port: number; host: string }>;
  /** Stops accepting, lets running requests finish within the grace period, then cancels the rest. */
  close(): Promise<void>;
  readonly scheduler: Scheduler;
}

interface Route {
  method: 'GET' | 'POST';
  /** Bodies that carry a prompt: too large to hold one that fits, they are dropped unparsed. */
  prompt?: boolean;
  /** Health checks must work without credentials (load balancers have none). */
  public?: boolean;
  handle(ctx: RequestContext): void | Promise<void>;
}

/** Reason a request's signal is aborted with when its client goes away; never answered. */
class ClientGone extends Error {}

/** An OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, /v1/models) over `engine`; call `listen`, and `close` to stop. */
export function createServer(engine: ServeEngine, options: ServeOptions = {}): LoraforgeServer {
  const maxBatch = positiveInteger(options.maxBatch ?? 8, 'maxBatch');
  const maxQueue = nonNegativeInteger(options.maxQueue ?? 64, 'maxQueue');
  const maxBodyBytes = positiveInteger(options.maxBodyBytes ?? 1 << 20, 'maxBodyBytes');
  const shutdownGraceMs = nonNegativeInteger(options.shutdownGraceMs ?? 10_000, 'shutdownGraceMs');
  const scheduler = new Scheduler(engine, { maxBatch, maxQueue });
  const promptDrain = promptBodyDrain(engine);
  const state: ServeState = {
    engine,
    scheduler,
    maxTokensDefault: positiveInteger(options.maxTokensDefault ?? 256, 'maxTokensDefault'),
    adaptersRoot: options.adaptersDir === undefined ? null : realAdaptersDir(options.adaptersDir),
    routeAliasModel: options.routeAliasModel ?? engine.baseModelId,
    loadingAdapters: new Set(),
    startedAt: Math.floor(Date.now() / 1000),
  };
  const routes = buildRoutes(options.routeAlias);
  const checkKey = options.apiKey === undefined ? null : keyChecker(options.apiKey);
  const cors = options.allowedOrigins?.length ? new CorsPolicy(options.allowedOrigins) : null;
  let shuttingDown = false;
  let closing: Promise<void> | null = null;

  const server = http.createServer((req, res) => {
    void dispatch(req, res);
  });

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort(new ClientGone('client disconnected'));
    });
    // Keep-alive connections would otherwise outlive close().
    if (shuttingDown) res.shouldKeepAlive = false;
    try {
      // Plain split rather than `new URL()`, which throws on some request targets.
      const path = (req.url ?? '/').split('?', 1)[0]!;
      const route = routes.get(path);
      // Error responses carry the CORS headers too, so a page can read why it was refused.
      cors?.decorate(req, res);
      if (!route) throw notFound(`Unknown route: ${req.method} ${path}`, 'unknown_route');
      if (cors && req.method === 'OPTIONS') return cors.preflight(req, res, route.method);
      if (req.method !== route.method) {
        res.setHeader('allow', route.method);
        throw new ApiError(
          405,
          `Method ${req.method} is not allowed on ${path}.`,
          'invalid_request_error',
          'method_not_allowed',
        );
      }
      if (!route.public && checkKey && !checkKey(req.headers.authorization)) {
        throw new ApiError(
          401,
          'Incorrect or missing API key.',
          'invalid_request_error',
          'invalid_api_key',
        );
      }
      if (shuttingDown && !route.public) throw unavailable('The server is shutting down.');
      const body =
        route.method === 'POST'
          ? await readJsonObject(req, maxBodyBytes, route.prompt ? promptDrain : undefined)
          : {};
      await route.handle({ state, req, res, body, signal: controller.signal });
    } catch (err) {
      respondWithError(req, res, err);
    }
  }

  function buildRoutes(alias: string | undefined): Map<string, Route> {
    const routes = new Map<string, Route>([
      ['/health', { method: 'GET', public: true, handle: ({ res }) => health(res) }],
      ['/v1/models', { method: 'GET', handle: handleListModels }],
      ['/v1/chat/completions', { method: 'POST', prompt: true, handle: handleChatCompletions }],
      ['/v1/completions', { method: 'POST', prompt: true, handle: handleCompletions }],
      ['/v1/load_lora_adapter', { method: 'POST', handle: handleLoadAdapter }],
      ['/v1/unload_lora_adapter', { method: 'POST', handle: handleUnloadAdapter }],
    ]);
    if (alias !== undefined) {
      if (!alias.startsWith('/') || routes.has(alias)) {
        throw new LoraforgeError(
          `--route '${alias}' must start with '/' and not be a built-in route.`,
        );
      }
      routes.set(alias, { method: 'POST', prompt: true, handle: handleRouteAlias });
    }
    return routes;
  }

  function health(res: ServerResponse): void {
    if (shuttingDown) sendJson(res, 503, { status: 'shutting_down' });
    else
      sendJson(res, 200, {
        status: 'ok',
        active: scheduler.activeCount,
        queued: scheduler.queuedCount,
      });
  }

  return {
    scheduler,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          resolve({ port: address.port, host: address.address });
        });
      });
    },
    close() {
      closing ??= shutDown();
      return closing;
    },
  };

  async function shutDown(): Promise<void> {
    shuttingDown = true;
    scheduler.stopAccepting();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace-over'>((resolve) => {
      graceTimer = setTimeout(() => resolve('grace-over'), shutdownGraceMs);
    });
    if ((await Promise.race([scheduler.whenIdle(), graceOver])) === 'grace-over') {
      scheduler.cancelAll(unavailable('The server is shutting down.'));
      await scheduler.whenIdle();
    }
    clearTimeout(graceTimer);
    // Handlers write their last bytes after the scheduler settles them; let that reach the sockets.
    await new Promise((resolve) => setImmediate(resolve));
    server.closeAllConnections();
    await closed;
  }
}

function respondWithError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (err instanceof ClientGone || res.destroyed || res.writableEnded) return;
  const apiError = toApiError(err);
  if (res.headersSent) {
    // Mid-stream the status line is gone; OpenAI clients raise on an `error` event instead.
    const sse = new SseWriter(res);
    sse.send(apiError.toBody());
    res.end();
    return;
  }
  // An unread body (413, or a refusal before reading) is not worth draining: drop the connection.
  const headers: Record<string, string> = req.complete ? {} : { connection: 'close' };
  if (apiError.status === 429) headers['retry-after'] = '1';
  sendJson(res, apiError.status, apiError.toBody(), headers);
}

/**
 * Engine calls throw LoraforgeError for problems in what the request asked for (a prompt the
 * template cannot render, an adapter folder that is not an adapter): the client's to fix.
 */
function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof LoraforgeError) return badRequest(err.message);
  console.error('loraforge serve: request failed:', err);
  return internalError();
}

/** Compares digests so the check takes the same time whatever the key's length or prefix. */
function keyChecker(apiKey: string): (header: string | undefined) => boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  const expected = digest(apiKey);
  return (header) => {
    const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
    return match !== null && timingSafeEqual(digest(match[1]!), expected);
  };
}

function realAdaptersDir(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    throw new LoraforgeError(
      `Adapters folder '${dir}' does not exist.`,
      'Create it or fix --adapters-dir.',
    );
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new LoraforgeError(`${name} must be a positive integer, got ${value}.`);
  return value;
}

function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new LoraforgeError(`${name} must be a non-negative integer, got ${value}.`);
  return value;
}
