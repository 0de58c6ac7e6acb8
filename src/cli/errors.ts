/** A command-line mistake (bad flag, bad value, missing argument): exit code 2, no stack. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The user stopped the run (Ctrl-C): exit code 130, nothing written. */
export class InterruptedError extends Error {
  constructor(message = 'interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}

/** First line of an error's message (errors are reported on one line; --debug adds the stack). */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n')[0] ?? '').trim() || (e instanceof Error ? e.name : 'unknown error');
}
