/** `loraforge serve`: the OpenAI-compatible HTTP server with per-request LoRA adapters. */
import type { Command } from 'commander';
import {
  createServer,
  DEFAULT_PREFILL_CHUNK,
  describeSampling,
  LoraforgeError,
  ModelServeEngine,
  PRECISION_OPTIONS,
  QUANTIZATION_OPTIONS,
  selectBackend,
  type DeviceName,
} from '../../index.ts';
import {
  addDeviceOptions,
  addTableFlags,
  backendOptionsOf,
  loadPipeline,
  parseInteger,
  parseWeightDtype,
} from '../options.ts';

interface ServeFlags {
  /** The QUANTIZATION_OPTIONS and PRECISION_OPTIONS flags, under their camelCase names. */
  [tableFlag: string]: unknown;
  model: string;
  adapter: string[];
  adaptersDir?: string;
  template?: string;
  dtype: 'auto' | 'f32' | 'bf16' | 'f16';
  device: DeviceName;
  threads?: number;
  host: string;
  port: number;
  apiKey?: string;
  route?: string;
  routeModel?: string;
  maxBatch: number;
  maxQueue: number;
  prefillChunk: number;
  servedModelName?: string;
  allowedOrigins?: string[];
}

function parseOrigins(value: string): string[] {
  return value
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
}

function parsePort(value: string): number {
  const port = parseInteger(value);
  if (port < 0 || port > 65535)
    throw new LoraforgeError(`--port ${value}: a port is from 0 to 65535 (0 picks a free one)`);
  return port;
}

function parseAdapterFlag(value: string, previous: string[]): string[] {
  if (!/^[^=]+=.+$/.test(value)) throw new LoraforgeError(`--adapter ${value}: expected NAME=DIR`);
  return [...previous, value];
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description(
      'serve a model and LoRA adapters over the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models)',
    )
    .requiredOption('-m, --model <model>', 'base model folder or Hugging Face id')
    .option(
      '-a, --adapter <name=dir>',
      'serve an adapter under a name (repeatable); pick it with "model": "<name>"',
      parseAdapterFlag,
      [],
    )
    .option('--adapters-dir <dir>', 'folder that POST /v1/load_lora_adapter may load adapters from')
    .option('--template <name>', "base model's prompt template (adapters use their recorded one)")
    .option(
      '--dtype <dtype>',
      'storage of the weights: auto (bf16 above 100M parameters) | f32 | bf16 | f16',
      parseWeightDtype,
      'auto',
    )
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', parsePort, 8000)
    .option('--api-key <key>', 'require Authorization: Bearer <key>')
    .option('--route <path>', 'extra {prompt} -> {text} endpoint, e.g. /api/legal-assistant')
    .option('--route-model <name>', 'adapter the --route endpoint uses (default: the base model)')
    .option(
      '--allowed-origins <origins>',
      'browser origins allowed to call the API (CORS), comma-separated, or *',
      parseOrigins,
    )
    .option('--served-model-name <name>', 'name of the base model in /v1/models (default: --model)')
    .option('--max-batch <n>', 'sequences decoded together per step', parseInteger, 8)
    .option(
      '--prefill-chunk <n>',
      'prompt tokens a request prefills per step, so long prompts do not stall running streams',
      parseInteger,
      DEFAULT_PREFILL_CHUNK,
    )
    .option(
      '--max-queue <n>',
      'requests waiting beyond the running ones before 429',
      parseInteger,
      64,
    );
  addTableFlags(cmd, QUANTIZATION_OPTIONS);
  addTableFlags(cmd, PRECISION_OPTIONS);
  addDeviceOptions(cmd);
  cmd.action(async (flags: ServeFlags) => {
    const pipeline = await loadPipeline({ ...flags, adapter: undefined });
    const engine = new ModelServeEngine(pipeline, flags.servedModelName ?? flags.model, {
      prefillChunk: flags.prefillChunk,
      onWarning: (message) => process.stderr.write(`warning: ${message}\n`),
    });
    for (const spec of flags.adapter) {
      const eq = spec.indexOf('=');
      await engine.loadAdapter(spec.slice(0, eq), spec.slice(eq + 1));
    }
    const server = createServer(engine, {
      apiKey: flags.apiKey,
      adaptersDir: flags.adaptersDir,
      routeAlias: flags.route,
      routeAliasModel: flags.routeModel,
      maxBatch: flags.maxBatch,
      maxQueue: flags.maxQueue,
      allowedOrigins: flags.allowedOrigins,
    });
    const { host, port } = await server.listen(flags.port, flags.host);
    const backend = await selectBackend(backendOptionsOf(flags));
    const adapters = flags.adapter.map((spec) => spec.replace('=', ' <- ')).join(', ');
    const lines = [
      `device:   ${backend.describe()}`,
      `model:    ${engine.baseModelId} (${pipeline.modelDir}), template ${pipeline.template.name}`,
      `adapters: ${adapters || 'none'}${flags.adaptersDir ? ` (more loadable from ${flags.adaptersDir})` : ''}`,
      `sampling: ${describeSampling(pipeline.samplingDefaults)} unless a request says otherwise (generation_config.json)`,
      ...(flags.allowedOrigins ? [`CORS:     ${flags.allowedOrigins.join(', ')}`] : []),
      `serving:  http://${host}:${port}/v1 (OpenAI API)${flags.route ? ` and POST http://${host}:${port}${flags.route}` : ''}`,
    ];
    process.stderr.write(lines.join('\n') + '\n');
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.stderr.write('shutting down: finishing running requests...\n');
        void server.close().then(resolve);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    pipeline.dispose();
  });
}
