/** `loraforge merge`: bake an adapter into the base weights as a standalone HF model folder. */
import type { Command } from 'commander';
import { selectBackend } from '../../engine/select-backend.ts';
import { resolveModel } from '../../io/hub.ts';
import { loadModel } from '../../models/load.ts';
import { loadAdapter } from '../../peft/io.ts';
import { baseModelMismatch } from '../../peft/base-model.ts';
import { mergeToFolder } from '../../peft/merge.ts';
import { mergedTemplateFiles } from '../../infer/merged-template.ts';
import { parseDtype } from '../options.ts';

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description(
      'merge a LoRA adapter into its base model (merge_and_unload) and save an HF model folder',
    )
    .requiredOption('-m, --model <model>', 'base model folder or Hugging Face id')
    .requiredOption('-a, --adapter <dir>', 'LoRA adapter folder')
    .requiredOption('-o, --out <dir>', 'output model folder')
    .option(
      '--dtype <dtype>',
      'dtype of every floating tensor written, and config.json torch_dtype: f32 | bf16 | f16 (default: as in the base)',
      parseDtype,
    )
    .action(
      async (flags: {
        model: string;
        adapter: string;
        out: string;
        dtype?: 'f32' | 'bf16' | 'f16';
      }) => {
        await selectBackend({ device: 'cpu' });
        const dir = await resolveModel(flags.model);
        // Only the projection shapes are needed to read the adapter; bf16 keeps this cheap.
        const model = loadModel(dir, { dtype: 'bf16' });
        const adapter = loadAdapter(flags.adapter, model);
        const mismatch = baseModelMismatch(flags.adapter, adapter.config.baseModelNameOrPath, [
          flags.model,
          dir,
        ]);
        if (mismatch) process.stderr.write(`warning: ${mismatch}\n`);
        const template = mergedTemplateFiles(dir, flags.adapter, {
          model: flags.model,
          adapter: flags.adapter,
        });
        mergeToFolder(dir, adapter, flags.out, {
          dtype: flags.dtype?.toUpperCase() as 'F32' | 'BF16' | 'F16' | undefined,
          files: template.files,
        });
        process.stdout.write(
          `merged model written to ${flags.out}${flags.dtype ? ` (${flags.dtype})` : ''}\n` +
            template.notes.map((note) => `  ${note}\n`).join('') +
            `next: loraforge chat --model ${flags.out}\n`,
        );
      },
    );
}
