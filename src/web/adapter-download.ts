/**
 * Saving the page's adapter: the files of a PEFT adapter folder (adapter_config.json,
 * adapter_model.safetensors, loraforge.json with the training template, a model card), each
 * offered as a download. Put them in one folder and `loraforge chat --adapter <folder>` (or PEFT's
 * PeftModel.from_pretrained) loads it.
 */
import { adapterFiles, adapterTensors, type AdapterMeta } from '../peft/adapter-files.ts';
import type { LoraAdapter } from '../peft/adapter.ts';

/** Starts one download per file; resolves with the file names. */
export async function downloadAdapter(adapter: LoraAdapter, meta: AdapterMeta): Promise<string[]> {
  const files = adapterFiles(adapter, await adapterTensors(adapter), meta);
  for (const { name, contents } of files) {
    const parts = typeof contents === 'string' ? [contents] : contents;
    const url = URL.createObjectURL(
      new Blob(parts as BlobPart[], { type: 'application/octet-stream' }),
    );
    const link = document.createElement('a');
    link.href = url;
    link.download = name;
    link.click();
    // The download has its own copy once started; the next task is late enough to let go.
    setTimeout(() => URL.revokeObjectURL(url), 0);
  }
  return files.map((f) => f.name);
}
