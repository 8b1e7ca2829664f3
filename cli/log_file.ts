/**
 * The `--output` file: append-only, mode 0600, reopened on SIGHUP (logrotate), rotated at
 * a size.
 *
 * @module
 */

import { CliError } from "./errors.ts";
import type { ByteSink } from "../lib/line_writer.ts";

/**
 * An append-only log file: created with mode 0600, reopened on request (SIGHUP, for
 * logrotate), and rotated to `PATH.1` once it reaches `rotateBytes` (0: never).
 */
export class LogFile implements ByteSink {
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
