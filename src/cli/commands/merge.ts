/** `loraforge merge`: bake an adapter into the base weights as a standalone HF model folder. */
import type { Command } from 'commander';
import {
  baseModelMismatch,
  checkMergeTarget,
  loadAdapterForModel,
  mergedTemplateFiles,
  mergeToFolder,
  type DeviceName,
  type MergeDtype,
  resolveModel,
} from '../../index.ts';
import { addDeviceOptions, parseDtype } from '../options.ts';

export function registerMerge(program: Command): void {
  addDeviceOptions(
    program
      .command('merge')
      .description(
        'merge a LoRA adapter into its base model (merge_and_unload) and save an HF model folder',
      ),
  )
    .requiredOption('-m, --model <model>', 'base model folder or Hugging Face id')
    .requiredOption('-a, --adapter <dir>', 'LoRA adapter folder')
    .requiredOption('-o, --out <dir>', 'output model folder')
    .option(
      '--dtype <dtype>',
      'dtype of every floating tensor written, and config.json torch_dtype: f32 | bf16 | f16 (default: as in the base)',
      parseDtype,
    )
    .option(
      '--overwrite',
      'write into a non-empty folder (replaces the merged model files, keeps other files)',
    )
    .action(
      async (flags: {
        model: string;
        adapter: string;
        out: string;
        dtype?: 'f32' | 'bf16' | 'f16';
        overwrite?: boolean;
        device: DeviceName;
        threads?: number;
      }) => {
        const dir = await resolveModel(flags.model);
        const target = {
          dtype: flags.dtype?.toUpperCase() as MergeDtype | undefined,
          overwrite: flags.overwrite,
          sources: { '--adapter': flags.adapter },
        };
        // Before the (slow) load, so a wrong --out costs nothing.
        checkMergeTarget(dir, flags.out, target);
        // The adapter is read against the model's shapes (the model itself is loaded only for
        // PiSSA / OLoRA checks); the merged weights are computed on the device, tensor by tensor.
        const adapter = await loadAdapterForModel(dir, flags.adapter, {
          device: flags.device,
          threads: flags.threads,
        });
        const mismatch = baseModelMismatch(flags.adapter, adapter.config.baseModelNameOrPath, [
          flags.model,
          dir,
        ]);
        if (mismatch) process.stderr.write(`warning: ${mismatch}\n`);
        const template = mergedTemplateFiles(dir, flags.adapter, {
          model: flags.model,
          adapter: flags.adapter,
        });
        await mergeToFolder(dir, adapter, flags.out, { ...target, files: template.files });
        process.stdout.write(
          `merged model written to ${flags.out}${flags.dtype ? ` (${flags.dtype})` : ''}\n` +
            template.notes.map((note) => `  ${note}\n`).join('') +
            `next: loraforge chat --model ${flags.out}\n`,
        );
      },
    );
}
