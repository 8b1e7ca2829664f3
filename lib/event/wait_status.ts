/**
 * Decoding of the wait status the kernel puts in an exit event (`task->exit_code`):
 * `code << 8` for a normal exit, the signal number (plus 0x80 for a core dump) otherwise.
 *
 * @module
 */

/** Linux signal names by number (x86_64/aarch64 numbering). */
export const SIGNAL_NAMES: readonly string[] = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

/** How a process ended. Exactly one of `exitCode` and `signal` is non-null. */
export interface WaitStatus {
  /** The exit status (0–255) of a normal exit, else null. */
  exitCode: number | null;
  /** The name of the terminating signal (`SIGKILL`, or `SIG34` for real-time ones), else null. */
  signal: string | null;
  /** The terminating signal's number, else null. */
  signalNumber: number | null;
  /** Whether a core was dumped. */
  coreDumped: boolean;
}

/** Names a signal number: `SIGKILL`, `SIGRTMIN+2` style is avoided for `SIG36`. */
export function signalName(n: number): string {
  return SIGNAL_NAMES[n] || `SIG${n}`;
}

/** Decodes a raw wait status as the kernel reports it in `proc_event.exit.exit_code`. */
export function decodeWaitStatus(status: number): WaitStatus {
  const sig = status & 0x7f;
  if (sig === 0) {
    return { exitCode: (status >>> 8) & 0xff, signal: null, signalNumber: null, coreDumped: false };
  }
  return {
    exitCode: null,
    signal: signalName(sig),
    signalNumber: sig,
    coreDumped: (status & 0x80) !== 0,
  };
}

/** The number of a signal name (`SIGTERM` → 15); 0 when unknown. */
export function signalNumber(name: string): number {
  const n = SIGNAL_NAMES.indexOf(name);
  if (n > 0) return n;
  const m = /^SIG(\d+)$/.exec(name);
  return m ? Number(m[1]) : 0;
}

/** The shell convention for a status: the exit code, or 128 + the signal number. */
export function shellStatus(ws: Pick<WaitStatus, "exitCode" | "signalNumber">): number {
  return ws.exitCode ?? 128 + (ws.signalNumber ?? 0);
}
