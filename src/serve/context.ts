/** What every route handler gets: the shared server state plus the request at hand. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServeEngine } from './engine.ts';
import type { Scheduler } from './scheduler.ts';

export interface ServeState {
  readonly engine: ServeEngine;
  readonly scheduler: Scheduler;
  readonly maxTokensDefault: number;
  /** Real path of the folder adapters may be loaded from; null = runtime loading disabled. */
  readonly adaptersRoot: string | null;
  /** Model the route alias generates with (base model id or adapter name). */
  readonly routeAliasModel: string;
  /** Adapter names with a load in progress, so two concurrent loads cannot race. */
  readonly loadingAdapters: Set<string>;
  /** Unix seconds, reported as `created` in /v1/models. */
  readonly startedAt: number;
}

export interface RequestContext {
  readonly state: ServeState;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly body: Record<string, unknown>;
  /** Aborted when the client disconnects before the response is complete. */
  readonly signal: AbortSignal;
}
