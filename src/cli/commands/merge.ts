/** `loraforge merge`: bake an adapter into the base weights as a standalone HF model folder. */
import type { Command } from 'commander';
import { loadAdapter, loadModel, mergeToFolder, resolveModel } from '../../index.ts';

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
      'dtype of merged matrices: F32 | BF16 | F16 (default: as in the base)',
    )
    .action(
      async (flags: {
        model: string;
        adapter: string;
        out: string;
        dtype?: 'F32' | 'BF16' | 'F16';
      }) => {
        const dir = await resolveModel(flags.model);
        // Only the projection shapes are needed to read the adapter; bf16 keeps this cheap.
        const model = await loadModel(dir, { device: 'cpu', dtype: 'bf16' });
        const adapter = loadAdapter(flags.adapter, model);
        mergeToFolder(dir, adapter, flags.out, { dtype: flags.dtype });
        process.stdout.write(
          `merged model written to ${flags.out}\nnext: loraforge chat --model ${flags.out}\n`,
        );
      },
    );
}
