/** `loraforge generate`: one prompt in, the model's reply streamed out. */
import type { Command } from 'commander';
import {
  addModelOptions,
  addSamplingOptions,
  loadPipeline,
  samplingFrom,
  type ModelFlags,
  type SamplingFlags,
} from '../options.ts';

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate a reply to one prompt (chat template applied unless --raw)')
    .requiredOption('-p, --prompt <text>', 'the user message (or raw text with --raw)')
    .option('--system <text>', 'system message')
    .option('--raw', 'continue the text as is, without a prompt template');
  addModelOptions(cmd);
  addSamplingOptions(cmd);
  cmd.action(
    async (
      flags: ModelFlags & SamplingFlags & { prompt: string; system?: string; raw?: boolean },
    ) => {
      const pipeline = await loadPipeline(flags);
      const opts = { ...samplingFrom(flags), onText: (t: string) => process.stdout.write(t) };
      if (flags.raw) await pipeline.complete(flags.prompt, opts);
      else {
        const messages = flags.system ? [{ role: 'system' as const, content: flags.system }] : [];
        await pipeline.chat([...messages, { role: 'user', content: flags.prompt }], opts);
      }
      process.stdout.write('\n');
      pipeline.dispose();
    },
  );
}
