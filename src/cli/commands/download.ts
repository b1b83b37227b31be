/** `loraforge download`: fetch a model from the Hugging Face Hub into the HF cache. */
import type { Command } from 'commander';
import { formatBytes, ProgressBar, resolveModel } from '../../index.ts';

export function registerDownload(program: Command): void {
  program
    .command('download')
    .argument('<model>', 'Hugging Face model id, e.g. Qwen/Qwen2-0.5B-Instruct')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .description(
      'download a model into the Hugging Face cache (honors HF_TOKEN, HF_ENDPOINT, HF_HOME)',
    )
    .action(async (id: string, flags: { revision: string }) => {
      const bars = new Map<string, ProgressBar>();
      const dir = await resolveModel(id, {
        revision: flags.revision,
        onProgress: ({ file, received, total }) => {
          let bar = bars.get(file);
          if (!bar) {
            bar = new ProgressBar({ total, label: file, formatValue: formatBytes, unit: 'B' });
            bars.set(file, bar);
          }
          bar.update(received);
        },
      });
      for (const bar of bars.values()) bar.done();
      process.stdout.write(`${dir}\n`);
    });
}
