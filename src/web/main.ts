/**
 * The browser page (web/index.html): loads a model folder (the shipped tiny model or one the user
 * picks), chats with it greedily and fine-tunes a LoRA on the identity dataset, all on WebGPU.
 * Element ids are the page's contract with test/web (the end-to-end test drives them).
 */
import { setBackend } from '../engine/tensor.ts';
import { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { createTemplate, type PromptTemplate } from '../data/templates.ts';
import { stripBom } from '../data/text.ts';
import { LoraAdapter } from '../peft/adapter.ts';
import { conversationsFromText } from './dataset-text.ts';
import { greedyReply } from './greedy.ts';
import { loadModelFiles, type LoadedModel } from './load-model.ts';
import { DEFAULT_FINETUNE, fineTuneLora, type FineTuneOptions } from './lora-finetune.ts';
import { filesAtUrl, pickedFiles, type ModelFiles } from './model-files.ts';

/** Served from the repository root, the page sits in web/. */
const SHIPPED_MODEL = new URL('../assets/tiny-chat/', location.href).href;
const IDENTITY_DATA = new URL('../examples/identity.json', location.href).href;
const IDENTITY = { name: '小李', author: '小张' };
const MAX_NEW_TOKENS = 64;

/** `?steps=6&batch=4` shortens the fine-tune (software WebGPU takes ~20 s per step of 4). */
function fineTuneOptions(): FineTuneOptions {
  const query = new URLSearchParams(location.search);
  const number = (key: string, fallback: number) => Number(query.get(key) ?? fallback);
  return {
    ...DEFAULT_FINETUNE,
    steps: number('steps', DEFAULT_FINETUNE.steps),
    batchSize: number('batch', DEFAULT_FINETUNE.batchSize),
  };
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');
const reply = $('reply');
const lossLog = $('loss-log');
const busyControls = ['load-shipped', 'pick-folder', 'ask', 'finetune'].map((id) =>
  $<HTMLButtonElement | HTMLInputElement>(id),
);

let loaded: (LoadedModel & { template: PromptTemplate }) | undefined;
let adapter: LoraAdapter | undefined;
let backendReady: Promise<void> | undefined;

function useWebGpu(): Promise<void> {
  backendReady ??= WebGpuBackend.create().then((backend) => setBackend(backend));
  return backendReady;
}

/** Runs one user action with the controls disabled; errors go to the status line. */
async function run(what: string, action: () => Promise<string>): Promise<void> {
  for (const c of busyControls) c.disabled = true;
  status.textContent = `${what}…`;
  status.dataset.state = 'busy';
  try {
    status.textContent = await action();
    status.dataset.state = 'ready';
  } catch (err) {
    status.textContent = `error: ${(err as Error).message}`;
    status.dataset.state = 'error';
    console.error(err);
  } finally {
    for (const c of busyControls) c.disabled = false;
    $<HTMLButtonElement>('ask').disabled = $<HTMLButtonElement>('finetune').disabled = !loaded;
  }
}

async function load(files: ModelFiles): Promise<string> {
  await useWebGpu();
  adapter?.dispose();
  adapter = undefined;
  loaded?.model.dispose();
  loaded = undefined;
  const { model, tokenizer } = await loadModelFiles(files);
  loaded = { model, tokenizer, template: createTemplate('tutorial', tokenizer) };
  const params = model.config;
  return `loaded ${files.label} (${params.numLayers} layers, hidden ${params.hiddenSize}) on WebGPU`;
}

async function ask(): Promise<string> {
  if (!loaded) throw new Error('load a model first');
  const question = $<HTMLInputElement>('question').value;
  reply.textContent = '';
  const text = await greedyReply(loaded.model, loaded.tokenizer, loaded.template, question, {
    maxNewTokens: MAX_NEW_TOKENS,
    onText: (t) => (reply.textContent = t),
  });
  reply.textContent = text;
  return adapter ? 'answered (with the LoRA)' : 'answered (base model)';
}

async function fineTune(): Promise<string> {
  if (!loaded) throw new Error('load a model first');
  const response = await fetch(IDENTITY_DATA);
  if (!response.ok) throw new Error(`${IDENTITY_DATA}: HTTP ${response.status}`);
  const conversations = conversationsFromText(
    stripBom(await response.text()),
    'identity.json',
    IDENTITY,
  );
  adapter?.dispose();
  LoraAdapter.detach(loaded.model);
  lossLog.textContent = '';
  const started = performance.now();
  const options = fineTuneOptions();
  const result = await fineTuneLora(
    loaded.model,
    loaded.tokenizer,
    loaded.template,
    conversations,
    {
      ...options,
      onStep: (step, loss) => (lossLog.textContent += `step ${step} loss ${loss.toFixed(4)}\n`),
    },
  );
  adapter = result.adapter;
  const [before, after] = [result.losses[0]!, result.firstBatchLossAfter];
  lossLog.textContent += `first batch: loss ${before.toFixed(4)} before, ${after.toFixed(4)} after\n`;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  return `fine-tuned ${options.steps} steps in ${seconds} s (${IDENTITY.name} / ${IDENTITY.author})`;
}

$('load-shipped').addEventListener('click', () =>
  run('loading the shipped model', () => load(filesAtUrl(SHIPPED_MODEL))),
);
$<HTMLInputElement>('pick-folder').addEventListener('change', (event) => {
  const files = (event.target as HTMLInputElement).files;
  if (files && files.length > 0)
    void run('loading the picked folder', () => load(pickedFiles(files)));
});
$('ask').addEventListener('click', () => run('generating', ask));
$('finetune').addEventListener('click', () => run('fine-tuning', fineTune));
status.textContent = navigator.gpu ? 'load a model' : 'this browser has no WebGPU (navigator.gpu)';
status.dataset.state = 'ready';
