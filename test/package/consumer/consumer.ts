/**
 * A strict TypeScript user of the packed package (never run, only type-checked by pack.test.ts
 * against the shipped .d.ts): the public API must be typed, not `any`.
 */
import {
  ChatPipeline,
  createServer,
  LoraAdapter,
  LoraforgeError,
  loadAdapter,
  loadChatPipeline,
  loadEvalSet,
  loadModel,
  loadTokenizer,
  makeLoraConfig,
  mergeToFolder,
  ModelServeEngine,
  evaluateModel,
  saveAdapter,
  streamChat,
  train,
  type ChatMessage,
  type DeviceName,
  type EvalReport,
  type FromPretrainedOptions,
  type GenerationResult,
  type LoraConfig,
  type LoraforgeServer,
  type RunResult,
  type TrainOptions,
} from 'loraforge';
import { filesAtUrl, loadModelFiles, setBackend, WebGpuBackend } from 'loraforge/web';

export async function useEverything(): Promise<void> {
  const device: DeviceName = 'cpu';
  const options: FromPretrainedOptions = { device, dtype: 'bf16' };
  const model = await loadModel('Qwen/Qwen2-0.5B-Instruct', options);
  const tokenizer = await loadTokenizer('Qwen/Qwen2-0.5B-Instruct');
  const ids: number[] = tokenizer.encode('hello');
  const text: string = tokenizer.decode(ids);

  const config: LoraConfig = makeLoraConfig({ r: 16, loraAlpha: 32 });
  const adapter = LoraAdapter.create(model, config, 42);
  adapter.attach(model);
  await saveAdapter('runs/adapter', adapter, { template: 'tutorial' });
  const reloaded: LoraAdapter = loadAdapter('runs/adapter', model);
  await mergeToFolder('models/base', reloaded, 'models/merged', { dtype: 'BF16' });

  const pipeline: ChatPipeline = await loadChatPipeline({ model: 'models/base', adapter: 'a' });
  const messages: ChatMessage[] = [{ role: 'user', content: text }];
  const result: GenerationResult = await pipeline.chat(messages, { maxNewTokens: 8 });
  let streamed = '';
  for await (const delta of streamChat(pipeline, messages, { temperature: 0.7, seed: 1 })) {
    streamed += delta;
  }
  const report: EvalReport = await evaluateModel(pipeline, loadEvalSet('eval.json'), {
    name: 'Pico',
    author: 'loraforge',
  });

  const trainOptions: TrainOptions = { model: 'models/base', dataset: 'data.json', lora_rank: 8 };
  const run: RunResult = await train(trainOptions, { onLog: (record) => record.step });

  const server: LoraforgeServer = createServer(new ModelServeEngine(pipeline, 'base'));
  const { port }: { port: number } = await server.listen(0, '127.0.0.1');
  await server.close();

  const error: Error = new LoraforgeError('bad input', 'a hint');
  setBackend(await WebGpuBackend.create());
  const browserModel = await loadModelFiles(filesAtUrl('/models/tiny/'));

  // @ts-expect-error a misspelt option must not type-check (the API is typed, not `any`)
  await loadModel('x', { devise: 'cpu' });
  // @ts-expect-error train() requires a dataset
  await train({ model: 'x' });

  void [result, streamed, report, run, port, error, browserModel];
}
