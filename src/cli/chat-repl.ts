/**
 * The `chat` command's read-eval-print loop, apart from the model so tests can drive it with
 * streams. In a terminal it is a readline in terminal mode: line editing, history (up / down),
 * and Ctrl-C that stops the answer being written (a second Ctrl-C at the prompt quits). Piped
 * input is read line by line, none lost while an answer is generated.
 */
import { createInterface } from 'node:readline';
import type { ChatMessage } from '../index.ts';

/** What the loop needs from a chat pipeline (ChatPipeline has all of it). */
export interface ChatModel {
  readonly template: { readonly name: string };
  readonly adapter: unknown;
  chat(
    messages: ChatMessage[],
    opts: { onText: (text: string) => void; shouldStop: () => boolean },
  ): Promise<{ text: string }>;
  /** Loads an adapter folder (null: none) in place of the current one. */
  useAdapter(dir: string | null): void;
}

export interface ReplOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Line editing, history and Ctrl-C handling (default: whether input is a TTY). */
  terminal?: boolean;
  system?: string;
  /** Lines remembered for the up arrow. */
  historySize?: number;
  /** Where the opening line (template, adapter) goes; default: output. */
  status?: NodeJS.WritableStream;
}

export const CHAT_HELP = [
  'commands:',
  '  /help             this list',
  '  /reset            start a new conversation (the system message stays)',
  '  /system <text>    set the system message and start a new conversation (/system alone clears it)',
  '  /adapter <dir>    load a LoRA adapter folder in place of the current one (/adapter none: base model)',
  '  /exit, /quit      leave (or Ctrl-D; Ctrl-C twice at the prompt)',
  'Ctrl-C while an answer is being written stops that answer.',
].join('\n');

const PROMPT = 'you> ';

export async function runChatRepl(model: ChatModel, opts: ReplOptions): Promise<void> {
  const terminal = opts.terminal ?? Boolean((opts.input as { isTTY?: boolean }).isTTY);
  const rl = createInterface({
    input: opts.input,
    output: opts.output,
    terminal,
    historySize: opts.historySize ?? 200,
    prompt: PROMPT,
  });
  const say = (text: string) => opts.output.write(`${text}\n`);
  let system = opts.system;
  const fresh = (): ChatMessage[] => (system ? [{ role: 'system', content: system }] : []);
  let history = fresh();
  let answering = false;
  let stopAnswer = false;
  let exitArmed = false;
  // Piped input ends (and readline closes) while lines are still buffered for the loop below;
  // Node ≥ 24 throws on prompt() after close, so the prompt is only shown while input is open.
  let inputOpen = true;
  rl.on('close', () => {
    inputOpen = false;
  });
  const prompt = () => {
    if (inputOpen) rl.prompt();
  };

  // Only reached in terminal mode: readline turns the Ctrl-C key into this event.
  rl.on('SIGINT', () => {
    if (answering) {
      stopAnswer = true;
      return;
    }
    if (exitArmed) {
      rl.close();
      return;
    }
    exitArmed = true;
    opts.output.write('\n(Ctrl-C again to quit, or /exit)\n');
    prompt();
  });

  /** Runs a slash command; false when it means quitting. */
  const command = (line: string): boolean => {
    const name = line.split(/\s+/, 1)[0]!;
    const argument = line.slice(name.length).trim();
    switch (name) {
      case '/exit':
      case '/quit':
        return false;
      case '/help':
        say(CHAT_HELP);
        break;
      case '/reset':
        history = fresh();
        say('(new conversation)');
        break;
      case '/system':
        system = argument || undefined;
        history = fresh();
        say(
          system
            ? `(system message set; new conversation)`
            : '(system message cleared; new conversation)',
        );
        break;
      case '/adapter':
        if (!argument) {
          say('usage: /adapter <dir>  (or /adapter none)');
          break;
        }
        try {
          model.useAdapter(argument === 'none' ? null : argument);
          history = fresh();
          say(
            `(${argument === 'none' ? 'base model' : `adapter ${argument}`}, template ${model.template.name}; new conversation)`,
          );
        } catch (err) {
          say(`error: ${(err as Error).message}`);
        }
        break;
      default:
        say(`unknown command ${name}; /help lists them`);
    }
    return true;
  };

  (opts.status ?? opts.output).write(
    `template: ${model.template.name}${model.adapter ? ', adapter loaded' : ''}. /help for commands\n`,
  );
  prompt();
  try {
    // The async iterator buffers lines, so piped input is never lost while a reply is generated.
    for await (const raw of rl) {
      exitArmed = false;
      const line = raw.trim();
      if (line.startsWith('/')) {
        if (!command(line)) break;
      } else if (line) {
        history.push({ role: 'user', content: line });
        opts.output.write('assistant> ');
        answering = true;
        stopAnswer = false;
        try {
          const reply = await model.chat(history, {
            onText: (text) => opts.output.write(text),
            shouldStop: () => stopAnswer,
          });
          // A stopped answer stays in the conversation as far as it went, as chat UIs keep it.
          history.push({ role: 'assistant', content: reply.text });
          opts.output.write(stopAnswer ? ' [stopped]\n' : '\n');
        } finally {
          answering = false;
        }
      }
      prompt();
    }
  } finally {
    rl.close();
  }
}
