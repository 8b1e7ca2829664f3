/**
 * Pieces every command shares: one-line errors, the stdout writer, flag parsing with
 * clear errors, and subscribing with CLI-shaped errors.
 *
 * @module
 */

import { type Args, parseArgs, type ParseOptions } from "@std/cli";
import { ConnectorError } from "../ffi/connector.ts";
import { listen as listenApi, type Listening, type ListenOptions } from "../api.ts";

export { wallOffsetNs } from "../api.ts";

/** A failure the CLI reports as one line on stderr with an exit status. */
export class CliError extends Error {
  readonly status: number;
  constructor(message: string, status = 1) {
    super(message);
    this.name = "CliError";
    this.status = status;
  }
}

/** Parses flags; an unknown flag is a usage error (exit 2). */
export function parseFlags(args: string[], options: ParseOptions, command: string): Args {
  return parseArgs(args, {
    ...options,
    unknown: (arg: string, key?: string) => {
      if (key === undefined) return true; // a positional argument
      throw new CliError(`${command}: unknown option ${arg} (see proctree ${command} --help)`, 2);
    },
  });
}

/** Parses a positive integer flag value, or fails with a usage error. */
export function intFlag(value: unknown, name: string, min = 0): number {
  const n = Number(value);
  if (value === "" || !Number.isInteger(n) || n < min) {
    throw new CliError(
      `--${name} expects a whole number ≥ ${min}, got ${JSON.stringify(value)}`,
      2,
    );
  }
  return n;
}

/** Parses sizes such as `8M`, `512k`, `1048576`. */
export function bytesFlag(value: unknown, name: string): number {
  const m = /^(\d+)([kKmMgG]?)(i?B)?$/.exec(String(value));
  if (!m) {
    throw new CliError(
      `--${name} expects a size such as 8M or 1048576, got ${JSON.stringify(value)}`,
      2,
    );
  }
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase()]!;
  return Number(m[1]) * unit;
}

const encoder = new TextEncoder();

/** Where {@linkcode LineWriter} sends bytes: all of them, or as many as fit now. */
export interface ByteSink {
  /** Bytes taken (possibly fewer than given), or `closed` when the reader is gone. */
  writeNow(bytes: Uint8Array): number | "closed";
}

/** Lines buffered before they are written even in the middle of a batch. */
const FLUSH_LINES = 256;

/** Most output bytes held while the reader is slow; past it, lines are dropped and counted. */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;

/**
 * Buffers lines and writes them without blocking. A reader that stops reading does not stall
 * proctree: output waits in memory up to {@linkcode MAX_PENDING_BYTES}, then lines are
 * dropped, counted, and reported by a line from `dropLine` once the reader catches up. A
 * closed reader (EPIPE) marks the writer closed: `proctree watch | head -3` ends quietly.
 */
export class LineWriter {
  #lines: string[] = [];
  #out: ByteSink;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #dropLine: (count: number) => string;
  /** Lines dropped because the reader was too slow, in total. */
  droppedAtOutput = 0;
  #droppedUnreported = 0;
  closed = false;

  #maxPendingBytes: number;

  constructor(
    out: ByteSink,
    dropLine: (count: number) => string = (n) => `${n} lines dropped`,
    maxPendingBytes = MAX_PENDING_BYTES,
  ) {
    this.#out = out;
    this.#dropLine = dropLine;
    this.#maxPendingBytes = maxPendingBytes;
  }

  /** Queues one line (without its newline). */
  push(line: string): void {
    if (this.closed) return;
    if (this.#pendingBytes > this.#maxPendingBytes) {
      this.droppedAtOutput++;
      this.#droppedUnreported++;
      return;
    }
    this.#lines.push(line);
    // Written in small groups, lines die young: with a 1 MiB young generation, holding a
    // whole 4096-event batch of them got them promoted and grew the old generation.
    if (this.#lines.length >= FLUSH_LINES) this.flush();
  }

  #lastFlushMs = 0;

  /** Writes what is queued if it is a lot or has waited `maxDelayMs`. */
  flushIfDue(maxDelayMs = 20): void {
    const now = performance.now();
    if (now - this.#lastFlushMs >= maxDelayMs) this.flush();
  }

  /** Writes everything queued that the output takes now. */
  flush(): void {
    this.#lastFlushMs = performance.now();
    if (this.closed) return;
    if (this.#droppedUnreported > 0 && this.#pendingBytes <= this.#maxPendingBytes / 2) {
      this.#lines.push(this.#dropLine(this.#droppedUnreported));
      this.#droppedUnreported = 0;
    }
    if (this.#lines.length) {
      const bytes = encoder.encode(this.#lines.join("\n") + "\n");
      this.#lines.length = 0;
      this.#pending.push(bytes);
      this.#pendingBytes += bytes.length;
    }
    while (this.#pending.length) {
      const head = this.#pending[0];
      const n = this.#out.writeNow(head);
      if (n === "closed") {
        this.closed = true;
        this.#pending.length = 0;
        this.#pendingBytes = 0;
        return;
      }
      this.#pendingBytes -= n;
      if (n < head.length) {
        this.#pending[0] = head.subarray(n);
        return;
      }
      this.#pending.shift();
    }
  }

  /** Flushes, waiting for a slow reader at most `timeoutMs` in all. */
  drain(timeoutMs: number, writable: (ms: number) => boolean): void {
    const until = performance.now() + timeoutMs;
    this.flush();
    while (!this.closed && this.#pending.length && performance.now() < until) {
      writable(Math.max(1, Math.ceil(until - performance.now())));
      this.flush();
    }
  }
}

/**
 * Subscribes (see `api.ts`), turning connector failures into a one-line {@linkcode CliError}.
 */
export function listen(opts: ListenOptions): Listening {
  try {
    return listenApi(opts);
  } catch (e) {
    if (e instanceof ConnectorError) throw new CliError(e.message, 1);
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`needs --allow-ffi and --allow-read: ${(e as Error).message}`, 1);
    }
    throw e;
  }
}

/** A sink for {@linkcode LineWriter}. */
export interface SyncWriter {
  writeSync(p: Uint8Array): number;
}

/**
 * An append-only log file: created with mode 0600, reopened on request (SIGHUP, for
 * logrotate), and rotated to `PATH.1` once it reaches `rotateBytes` (0: never).
 */
export class LogFile implements SyncWriter, ByteSink {
  readonly path: string;
  #file: Deno.FsFile;
  #bytes: number;
  #rotateBytes: number;

  constructor(path: string, opts: { truncate?: boolean; rotateBytes?: number } = {}) {
    this.path = path;
    this.#rotateBytes = opts.rotateBytes ?? 0;
    this.#file = LogFile.#open(path, opts.truncate ?? false);
    this.#bytes = this.#file.statSync().size;
  }

  static #open(path: string, truncate: boolean): Deno.FsFile {
    try {
      return Deno.openSync(path, {
        write: true,
        create: true,
        append: !truncate,
        truncate,
        mode: 0o600,
      });
    } catch (e) {
      throw new CliError(`cannot open ${path}: ${(e as Error).message}`, 1);
    }
  }

  /** A regular file never makes the loop wait long: all bytes are written. */
  writeNow(p: Uint8Array): number {
    let at = 0;
    while (at < p.length) at += this.writeSync(p.subarray(at));
    return at;
  }

  writeSync(p: Uint8Array): number {
    const n = this.#file.writeSync(p);
    this.#bytes += n;
    if (this.#rotateBytes > 0 && this.#bytes >= this.#rotateBytes && n === p.length) this.rotate();
    return n;
  }

  /** Closes and opens the path again (after logrotate moved the file away). */
  reopen(): void {
    this.#file.close();
    this.#file = LogFile.#open(this.path, false);
    this.#bytes = this.#file.statSync().size;
  }

  /** Moves the file to `PATH.1` (replacing it) and starts a new one. */
  rotate(): void {
    this.#file.close();
    Deno.renameSync(this.path, `${this.path}.1`);
    this.#file = LogFile.#open(this.path, false);
    this.#bytes = 0;
  }

  close(): void {
    this.#file.close();
  }
}

/** Prints one line on stderr. */
export function say(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch { /* stderr gone: nothing else to do */ }
}
