/** The `loraforge` command line. */
import { Command, CommanderError } from 'commander';
import { registerChat } from './commands/chat.ts';
import { registerDemo } from './commands/demo.ts';
import { registerDownload } from './commands/download.ts';
import { registerEval } from './commands/eval.ts';
import { registerExport } from './commands/export.ts';
import { registerGenerate } from './commands/generate.ts';
import { registerInfo } from './commands/info.ts';
import { registerMerge } from './commands/merge.ts';
import { registerServe } from './commands/serve.ts';
import { registerTrain } from './commands/train.ts';
import { reportError } from './report-error.ts';

export function buildProgram(): Command {
  const program = new Command('loraforge')
    .description('LoRA fine-tuning, chat and serving of Hugging Face causal LMs, in TypeScript')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', '\nAdd --debug to any command for stack traces with errors.');
  for (const register of [
    registerDemo,
    registerTrain,
    registerGenerate,
    registerChat,
    registerEval,
    registerServe,
    registerMerge,
    registerExport,
    registerDownload,
    registerInfo,
  ]) {
    register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // Accepted anywhere on the line (and as LORAFORGE_DEBUG=1), whatever the command.
  const debug = argv.includes('--debug') || process.env.LORAFORGE_DEBUG === '1';
  // Errors that escape a command's promise chain (a server's socket, a stream) end up here too.
  const fail = (err: unknown) => {
    reportError(err, debug);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  try {
    await buildProgram().parseAsync(argv.filter((arg) => arg !== '--debug'));
    process.exit(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    fail(err);
  }
}
