/**
 * `loraforge export --format ollama`: a folder Ollama imports with `ollama create`: the model
 * GGUF (the base, or base + adapter merged with --merge), the adapter GGUF with an `ADAPTER`
 * line otherwise, and a Modelfile whose TEMPLATE (a Go template over .Messages) renders the
 * prompt exactly as loraforge does for the training template, with its stops as
 * `PARAMETER stop`. Sampling parameters are left to Ollama's defaults.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomicAsync, writeFileAtomic } from '../io/atomic.ts';
import { checkOutputFile } from '../io/gguf/writer.ts';
import type { OllamaChatFormat } from './chat-formats.ts';

export const OLLAMA_MODEL_FILE = 'model.gguf';
export const OLLAMA_ADAPTER_FILE = 'adapter.gguf';

/** A Modelfile argument: plain quotes when possible, else triple quotes (newlines, quotes). */
function quoted(text: string): string {
  if (!/["\n\\]/.test(text)) return `"${text}"`;
  if (text.includes('"""')) throw new Error(`cannot quote ${JSON.stringify(text)} in a Modelfile`);
  return `"""${text}"""`;
}

export function modelfile(chat: OllamaChatFormat, withAdapter: boolean): string {
  const lines = [`FROM ./${OLLAMA_MODEL_FILE}`];
  if (withAdapter) lines.push(`ADAPTER ./${OLLAMA_ADAPTER_FILE}`);
  lines.push(`TEMPLATE ${quoted(chat.goTemplate)}`);
  if (chat.defaultSystem !== undefined) lines.push(`SYSTEM ${quoted(chat.defaultSystem)}`);
  for (const stop of chat.stops) lines.push(`PARAMETER stop ${quoted(stop)}`);
  return lines.join('\n') + '\n';
}

export interface OllamaFolderExport {
  out: string;
  overwrite?: boolean;
  chat: OllamaChatFormat;
  /** Writes the model GGUF (and the adapter GGUF when `withAdapter`) into the folder. */
  writeModel(path: string): Promise<void>;
  writeAdapter?: (path: string) => Promise<void>;
}

export async function exportOllamaFolder(e: OllamaFolderExport): Promise<void> {
  checkOutputFile(e.out, e.overwrite);
  await writeDirAtomicAsync(e.out, async (tmp) => {
    mkdirSync(tmp, { recursive: true });
    await e.writeModel(join(tmp, OLLAMA_MODEL_FILE));
    await e.writeAdapter?.(join(tmp, OLLAMA_ADAPTER_FILE));
    writeFileAtomic(join(tmp, 'Modelfile'), modelfile(e.chat, e.writeAdapter !== undefined));
  });
}
