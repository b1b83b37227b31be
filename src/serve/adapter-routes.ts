/**
 * GET /v1/models and vLLM's runtime adapter endpoints, POST /v1/load_lora_adapter
 * `{lora_name, lora_path}` and POST /v1/unload_lora_adapter `{lora_name}` (plain-text success
 * replies, as vLLM sends).
 */
import { LoraforgeError } from '../util/errors.ts';
import { ApiError, badRequest, notFound } from './api-error.ts';
import { resolveAdapterDir } from './adapter-paths.ts';
import type { RequestContext, ServeState } from './context.ts';
import { sendJson, sendText } from './http-io.ts';
import { requiredString } from './request-params.ts';

const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function handleListModels(ctx: RequestContext): void {
  const { engine, startedAt } = ctx.state;
  const entry = (id: string, parent: string | null) => ({
    id,
    object: 'model',
    created: startedAt,
    owned_by: 'loraforge',
    root: id,
    parent,
  });
  sendJson(ctx.res, 200, {
    object: 'list',
    data: [
      entry(engine.baseModelId, null),
      ...engine.listAdapters().map((name) => entry(name, engine.baseModelId)),
    ],
  });
}

export async function handleLoadAdapter(ctx: RequestContext): Promise<void> {
  const { engine, loadingAdapters } = ctx.state;
  const root = requireAdaptersRoot(ctx.state);
  const name = requiredString(ctx.body, 'lora_name');
  if (!ADAPTER_NAME.test(name)) {
    throw badRequest("'lora_name' must be 1-128 letters, digits, '.', '_' or '-'.", 'lora_name');
  }
  if (
    name === engine.baseModelId ||
    engine.listAdapters().includes(name) ||
    loadingAdapters.has(name)
  ) {
    throw badRequest(`The adapter '${name}' is already loaded.`, 'lora_name');
  }
  const dir = await resolveAdapterDir(root, requiredString(ctx.body, 'lora_path'));
  loadingAdapters.add(name);
  try {
    await engine.loadAdapter(name, dir, { within: root });
  } catch (err) {
    if (err instanceof LoraforgeError) throw badRequest(err.message, 'lora_path');
    throw err;
  } finally {
    loadingAdapters.delete(name);
  }
  sendText(ctx.res, 200, `Success: LoRA adapter '${name}' added successfully.`);
}

export function handleUnloadAdapter(ctx: RequestContext): void {
  const { engine, scheduler } = ctx.state;
  requireAdaptersRoot(ctx.state);
  const name = requiredString(ctx.body, 'lora_name');
  if (!engine.listAdapters().includes(name)) {
    throw notFound(`The adapter '${name}' is not loaded.`, 'model_not_found');
  }
  if (scheduler.usesAdapter(name)) {
    throw new ApiError(
      409,
      `The adapter '${name}' is in use by running requests.`,
      'invalid_request_error',
      'adapter_in_use',
    );
  }
  engine.unloadAdapter(name);
  sendText(ctx.res, 200, `Success: LoRA adapter '${name}' removed successfully.`);
}

function requireAdaptersRoot(state: ServeState): string {
  if (state.adaptersRoot === null) {
    throw notFound(
      'Runtime adapter loading is disabled: the server was started without an adapters folder.',
    );
  }
  return state.adaptersRoot;
}
