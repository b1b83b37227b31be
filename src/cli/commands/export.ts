/** `loraforge export`: a model (with an adapter merged in, or the adapter alone) for llama.cpp / Ollama. */
import type { Command } from 'commander';
import {
  EXPORT_FORMATS,
  EXPORT_TYPES,
  exportDefaults,
  resolveModel,
  runExport,
  selectBackend,
} from '../../index.ts';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'export a model (+ LoRA adapter merged in) as GGUF for llama.cpp, LM Studio and Ollama',
    )
    .requiredOption('-m, --model <model>', 'base model folder or Hugging Face id')
    .option('-a, --adapter <dir>', 'LoRA adapter folder')
    .option(
      '--format <format>',
      `output format: ${EXPORT_FORMATS.join(' | ')}`,
      exportDefaults.format,
    )
    .option('--type <type>', `weight type: ${EXPORT_TYPES.join(' | ')}`, exportDefaults.type)
    .requiredOption('-o, --out <path>', 'output file (a folder for --format ollama)')
    .option(
      '--merge',
      'ollama: merge the adapter into model.gguf (default: adapter.gguf + ADAPTER)',
    )
    .option('--overwrite', 'replace an existing output')
    .action(
      async (flags: {
        model: string;
        adapter?: string;
        format: string;
        type: string;
        out: string;
        overwrite?: boolean;
        merge?: boolean;
      }) => {
        await selectBackend({ device: 'cpu' });
        const modelDir = await resolveModel(flags.model);
        const result = await runExport({
          modelDir,
          adapterDir: flags.adapter,
          format: flags.format,
          type: flags.type,
          out: flags.out,
          overwrite: flags.overwrite,
          merge: flags.merge,
          onTensor: (i, total) => process.stderr.write(`\rwriting tensor ${i + 1}/${total}`),
        });
        process.stderr.write('\n');
        process.stdout.write(`${flags.out} written\n`);
        if (result.ollamaCreate) process.stdout.write(`next: ${result.ollamaCreate}\n`);
      },
    );
}
