/** `loraforge chat`: an interactive REPL that streams the model's replies. */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { type ChatMessage } from '../../index.ts';
import {
  addModelOptions,
  addSamplingOptions,
  loadPipeline,
  samplingFrom,
  type ModelFlags,
  type SamplingFlags,
} from '../options.ts';

const HELP = 'commands: /reset clears the conversation, /exit quits';

export function registerChat(program: Command): void {
  const cmd = program
    .command('chat')
    .description('chat with a model (and adapter) in the terminal')
    .option('--system <text>', 'system message');
  addModelOptions(cmd);
  addSamplingOptions(cmd);
  cmd.action(async (flags: ModelFlags & SamplingFlags & { system?: string }) => {
    const pipeline = await loadPipeline(flags);
    const fresh = (): ChatMessage[] =>
      flags.system ? [{ role: 'system', content: flags.system }] : [];
    let history = fresh();
    const rl = createInterface({ input: process.stdin, terminal: false });
    process.stderr.write(
      `template: ${pipeline.template.name}${pipeline.adapter ? ', adapter loaded' : ''}. ${HELP}\n`,
    );
    const prompt = () => process.stdout.write('you> ');
    prompt();
    try {
      // The async iterator buffers lines, so piped input is never lost while a reply is generated.
      for await (const raw of rl) {
        const line = raw.trim();
        if (line === '/exit' || line === '/quit') break;
        if (line === '/reset') history = fresh();
        else if (line) {
          history.push({ role: 'user', content: line });
          process.stdout.write('assistant> ');
          const reply = await pipeline.chat(history, {
            ...samplingFrom(flags),
            onText: (t) => process.stdout.write(t),
          });
          process.stdout.write('\n');
          history.push({ role: 'assistant', content: reply.text });
        }
        prompt();
      }
    } finally {
      rl.close();
      pipeline.dispose();
    }
  });
}
