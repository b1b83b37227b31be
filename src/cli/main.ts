/** The `loraforge` command line. */
import { Command, CommanderError } from 'commander';
import { LoraforgeError } from '../index.ts';
import { registerChat } from './commands/chat.ts';
import { registerDemo } from './commands/demo.ts';
import { registerDownload } from './commands/download.ts';
import { registerEval } from './commands/eval.ts';
import { registerGenerate } from './commands/generate.ts';
import { registerMerge } from './commands/merge.ts';
import { registerServe } from './commands/serve.ts';
import { registerTrain } from './commands/train.ts';

export function buildProgram(): Command {
  const program = new Command('loraforge')
    .description('LoRA fine-tuning, chat and serving of Hugging Face causal LMs, in TypeScript')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)');
  for (const register of [
    registerDemo,
    registerTrain,
    registerGenerate,
    registerChat,
    registerEval,
    registerServe,
    registerMerge,
    registerDownload,
  ]) {
    register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
    process.exit(0);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    if (err instanceof LoraforgeError) {
      process.stderr.write(`error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      process.exit(1);
    }
    throw err;
  }
}
