/**
 * The browser page (web/index.html): loads a model folder (the shipped tiny model or one the user
 * picks), chats with it greedily and fine-tunes a LoRA on the identity dataset, on WebGPU, or on
 * the wasm CPU backend when the browser offers no WebGPU adapter (the page says which runs).
 * Element ids are the page's contract with test/web (the end-to-end test drives them); the URL
 * query overrides the recipe and the adapter choice (page-options.ts).
 */
import { createTemplate, type PromptTemplate } from '../data/templates.ts';
import { stripBom } from '../data/text.ts';
import { chatReply } from '../infer/chat.ts';
import { SequenceDecoder } from '../infer/sequences.ts';
import { LoraAdapter } from '../peft/adapter.ts';
import { downloadAdapter } from './adapter-download.ts';
import { conversationsFromText, nameFirst } from './dataset-text.ts';
import { loadModelFiles, type LoadedModel } from './load-model.ts';
import { fineTuneLora } from './lora-finetune.ts';
import { filesAtUrl, pickedFiles, type ModelFiles } from './model-files.ts';
import { startPageBackend, type PageBackendName } from './page-backend.ts';
import {
  describeRecipe,
  pageOptions,
  type FeatureLevel,
  type PageOptions,
} from './page-options.ts';

/** Served from the repository root, the page sits in web/. */
const SHIPPED_MODEL = new URL('../assets/tiny-chat/', location.href).href;
const IDENTITY_DATA = new URL('../examples/identity.json', location.href).href;
const BUILD_DIR = new URL('../build/', location.href).href;
const IDENTITY = { name: '小李', author: '小张' };
const MAX_NEW_TOKENS = 64;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');
const adapterLine = $('adapter');
const reply = $('reply');
const lossLog = $('loss-log');
const busyControls = ['load-shipped', 'pick-folder', 'ask', 'finetune', 'save-adapter'].map((id) =>
  $<HTMLButtonElement | HTMLInputElement>(id),
);

let options: PageOptions | undefined;
let loaded: (LoadedModel & { template: PromptTemplate; label: string }) | undefined;
let adapter: LoraAdapter | undefined;
let backendReady: Promise<PageBackendName> | undefined;

/** WebGPU, or the CPU kernels when there is no adapter; chosen once (retried after a failure). */
function useBackend(first: FeatureLevel): Promise<PageBackendName> {
  backendReady ??= startPageBackend(first, BUILD_DIR, adapterLine).catch((err: unknown) => {
    backendReady = undefined; // let the next load try again
    throw err;
  });
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
    $<HTMLButtonElement>('save-adapter').disabled = !adapter;
  }
}

async function load(files: ModelFiles): Promise<string> {
  if (!options) throw new Error('the page options are invalid');
  const backendName = await useBackend(options.featureLevel);
  adapter?.dispose();
  adapter = undefined;
  loaded?.model.dispose();
  loaded = undefined;
  const { model, tokenizer } = await loadModelFiles(files);
  loaded = {
    model,
    tokenizer,
    template: createTemplate('tutorial', tokenizer),
    label: files.label,
  };
  const params = model.config;
  return `loaded ${files.label} (${params.numLayers} layers, hidden ${params.hiddenSize}) on ${backendName}`;
}

async function ask(): Promise<string> {
  if (!loaded) throw new Error('load a model first');
  const question = $<HTMLInputElement>('question').value;
  reply.textContent = '';
  const { model, tokenizer, template } = loaded;
  const { text } = await chatReply(
    new SequenceDecoder(model),
    tokenizer,
    template,
    [{ role: 'user', content: question }],
    {
      temperature: 0,
      maxNewTokens: MAX_NEW_TOKENS,
      onText: (delta) => (reply.textContent += delta),
    },
  );
  reply.textContent = text;
  return adapter ? 'answered (with the LoRA)' : 'answered (base model)';
}

async function fineTune(): Promise<string> {
  if (!loaded || !options) throw new Error('load a model first');
  const response = await fetch(IDENTITY_DATA);
  if (!response.ok) throw new Error(`${IDENTITY_DATA}: HTTP ${response.status}`);
  const records = conversationsFromText(stripBom(await response.text()), 'identity.json', IDENTITY);
  const conversations = options.data === 'name-first' ? nameFirst(records, IDENTITY) : records;
  adapter?.dispose();
  adapter = undefined;
  LoraAdapter.detach(loaded.model);
  lossLog.textContent = `${conversations.length} records\n`;
  const started = performance.now();
  let last = started;
  const result = await fineTuneLora(
    loaded.model,
    loaded.tokenizer,
    loaded.template,
    conversations,
    {
      ...options.fineTune,
      onStep: (step, loss) => {
        const now = performance.now();
        const seconds = ((now - last) / 1000).toFixed(1);
        lossLog.textContent += `step ${step} loss ${loss.toFixed(4)} (${seconds} s)\n`;
        last = now;
      },
    },
  );
  adapter = result.adapter;
  const [before, after] = [result.losses[0]!, result.firstBatchLossAfter];
  lossLog.textContent += `first batch: loss ${before.toFixed(4)} before, ${after.toFixed(4)} after\n`;
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const { steps } = options.fineTune;
  return `fine-tuned ${steps} steps in ${seconds} s (${IDENTITY.name} / ${IDENTITY.author})`;
}

async function saveAdapter(): Promise<string> {
  if (!loaded || !adapter) throw new Error('fine-tune an adapter first');
  const names = await downloadAdapter(adapter, {
    template: loaded.template.toJSON(),
    baseModel: loaded.label,
  });
  return `saved ${names.join(', ')}: put them in one folder, then loraforge chat --adapter <folder>`;
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
$('save-adapter').addEventListener('click', () => run('saving the adapter', saveAdapter));
try {
  options = pageOptions(location.search);
  $('recipe').textContent = describeRecipe(options);
  status.textContent = 'load a model';
  status.dataset.state = 'ready';
} catch (err) {
  status.textContent = `error: ${(err as Error).message}`;
  status.dataset.state = 'error';
}
