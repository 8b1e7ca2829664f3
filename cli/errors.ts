/**
 * How the CLI fails: one line on stderr and an exit status, never a stack trace.
 *
 * @module
 */

const encoder = new TextEncoder();

/** A failure the CLI reports as one line on stderr with an exit status. */
export class CliError extends Error {
  readonly status: number;
  constructor(message: string, status = 1) {
    super(message);
    this.name = "CliError";
    this.status = status;
  }
}

/** Prints one line on stderr. */
export function say(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch { /* stderr gone: nothing else to do */ }
}
