/**
 * CORS for browser clients (`--allowed-origins`): a page on another origin may call the API only
 * if its origin is listed (or `*` is). Preflight requests (OPTIONS) are answered here, before the
 * API-key check, because browsers send them without credentials.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './api-error.ts';

/** Headers a browser client of the OpenAI API sends (the `openai` package adds x-stainless-*). */
const DEFAULT_ALLOWED_HEADERS = 'authorization, content-type';
const PREFLIGHT_MAX_AGE_S = 600;

export class CorsPolicy {
  private readonly anyOrigin: boolean;
  private readonly origins: Set<string>;

  constructor(allowedOrigins: readonly string[]) {
    this.anyOrigin = allowedOrigins.includes('*');
    // Browsers send the origin without a trailing slash; users often paste one.
    this.origins = new Set(allowedOrigins.map((origin) => origin.replace(/\/+$/, '')));
  }

  private allows(origin: string): boolean {
    return this.anyOrigin || this.origins.has(origin);
  }

  /** Adds the response headers that let an allowed origin read the response. */
  decorate(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (origin === undefined || !this.allows(origin)) return;
    res.setHeader('access-control-allow-origin', this.anyOrigin ? '*' : origin);
    if (!this.anyOrigin) res.setHeader('vary', 'origin');
  }

  /** Answers a preflight for a route that takes `method`; 403 for an origin not listed. */
  preflight(req: IncomingMessage, res: ServerResponse, method: string): void {
    const origin = req.headers.origin;
    if (origin === undefined || !this.allows(origin)) {
      throw new ApiError(
        403,
        `Origin ${origin ?? '(none)'} is not allowed; start the server with --allowed-origins ${origin ?? '<origin>'}.`,
        'invalid_request_error',
        'origin_not_allowed',
      );
    }
    this.decorate(req, res);
    res.setHeader('access-control-allow-methods', `${method}, OPTIONS`);
    res.setHeader(
      'access-control-allow-headers',
      req.headers['access-control-request-headers'] ?? DEFAULT_ALLOWED_HEADERS,
    );
    res.setHeader('access-control-max-age', String(PREFLIGHT_MAX_AGE_S));
    res.writeHead(204).end();
  }
}
