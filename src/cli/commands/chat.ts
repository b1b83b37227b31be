/** `loraforge chat`: an interactive REPL that streams the model's replies (see chat-repl.ts). */
import type { Command } from 'commander';
import { runChatRepl } from '../chat-repl.ts';
import {
  addModelOptions,
  addSamplingOptions,
  loadPipeline,
  samplingFrom,
  type ModelFlags,
  type SamplingFlags,
} from '../options.ts';

export function registerChat(program: Command): void {
  const cmd = program
    .command('chat')
    .description('chat with a model (and adapter) in the terminal; /help lists the commands')
    .option('--system <text>', 'system message');
  addModelOptions(cmd);
  addSamplingOptions(cmd);
  cmd.action(async (flags: ModelFlags & SamplingFlags & { system?: string }) => {
    const pipeline = await loadPipeline(flags);
    const sampling = samplingFrom(flags);
    try {
      await runChatRepl(
        {
          get template() {
            return pipeline.template;
          },
          get adapter() {
            return pipeline.adapter;
          },
          chat: (messages, opts) => pipeline.chat(messages, { ...sampling, ...opts }),
          useAdapter: (dir) => pipeline.useAdapter(dir),
        },
        {
          input: process.stdin,
          output: process.stdout,
          status: process.stderr,
          system: flags.system,
        },
      );
    } finally {
      pipeline.dispose();
    }
  });
}
