/**
 * The one error type loraforge throws for problems a user can fix (bad input files, wrong flags,
 * missing files). The CLI prints `message` as a single line without a stack trace; anything else
 * is a bug and keeps its stack.
 */
export class LoraforgeError extends Error {
  constructor(
    message: string,
    /** What the user can do about it, printed after the message. */
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'LoraforgeError';
  }
}
