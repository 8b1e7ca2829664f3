/**
 * Output files: the `--output` log and the `--summary` document. The log is written through libc so that every failure has its errno name and
 * none of them stops proctree:
 *
 * - opened append-only with `O_NOFOLLOW` (a symlink planted at the path is refused, never
 *   followed), created with mode 0600; an existing file is made 0600 (it holds other
 *   users' command lines) and the caller is told;
 * - a file whose last line was torn (proctree killed mid-write) gets its newline back before
 *   anything is appended, so no valid line is ever glued to a broken one;
 * - a full disk (or quota) takes nothing: the chunk is cut back off and the writer keeps it
 *   queued; `LineWriter` then drops and counts lines past its bound and writing resumes when
 *   space returns;
 * - reopened on SIGHUP (logrotate) and rotated to `PATH.1` at a size.
 *
 * @module
 */

import { Errno, errno, errnoText, KERNEL_FS_MAGIC, libc, O, STATFS } from "../libc.ts";
import { cPath } from "../procfs.ts";
import type { ByteSink } from "../../lib/sink/line_writer.ts";

const SEEK_END = 2;
const FILE_MODE = 0o600;

/** Why an output file cannot be used; the message is one line with the errno name. */
export class OutputError extends Error {
  /** An error about `path`. */
  constructor(message: string) {
    super(message);
    this.name = "OutputError";
  }
}

/** What opening found, for the caller to report. */
export interface OpenReport {
  /** The file existed with a mode other than 0600 (now 0600). */
  modeWas?: number;
  /** The file ended in a torn line, which was closed with a newline. */
  repairedTornLine: boolean;
  /** The file already held lines (proctree is appending after a restart). */
  appending: boolean;
}

/** The kernel filesystem `path` is on (`proc`, `sysfs`, …), or null. */
function kernelFsOf(path: string): string | null {
  const st = new Uint8Array(STATFS.size);
  if (libc().statfs(cPath(path), st) !== 0) return null;
  const magic = new DataView(st.buffer).getUint32(STATFS.type, true);
  return KERNEL_FS_MAGIC.get(magic) ?? null;
}

/** Opens `path` for appending, safely; see the module doc. Throws {@linkcode OutputError}. */
export function openOutput(
  path: string,
  truncate = false,
): { fd: number; bytes: number; report: OpenReport } {
  let modeWas: number | undefined;
  try {
    const st = Deno.lstatSync(path);
    if (st.isSymlink) {
      throw new OutputError(`${path} is a symbolic link: give the file's own path`);
    }
    if (st.mode !== null && (st.mode & 0o777) !== FILE_MODE) modeWas = st.mode & 0o777;
  } catch (e) {
    if (e instanceof OutputError) throw e;
    // Absent (created below) or not statable (open reports why).
  }
  const c = libc();
  const flags = O.RDWR | O.CREAT | O.APPEND | O.NOFOLLOW | O.CLOEXEC | (truncate ? O.TRUNC : 0);
  const fd = c.openMode(cPath(path), flags, FILE_MODE);
  if (fd < 0) {
    const e = errno();
    throw new OutputError(
      e === Errno.ELOOP
        ? `${path} is a symbolic link: give the file's own path`
        : `cannot open ${path}: ${errnoText(e)}`,
    );
  }
  const kernelFs = kernelFsOf(path);
  if (kernelFs) {
    c.close(fd);
    throw new OutputError(
      `cannot write ${path}: it is a kernel interface (${kernelFs}), not a file`,
    );
  }
  if (modeWas !== undefined && c.fchmod(fd, FILE_MODE) !== 0) {
    const e = errno();
    c.close(fd);
    throw new OutputError(
      `${path} has mode ${modeWas.toString(8)} and cannot be made 0600: ${errnoText(e)}`,
    );
  }
  const bytes = Number(c.lseek(fd, 0n, SEEK_END));
  let repairedTornLine = false;
  if (bytes > 0) {
    const last = new Uint8Array(1);
    if (Number(c.pread(fd, last, 1n, BigInt(bytes - 1))) === 1 && last[0] !== 0x0a) {
      const nl = new Uint8Array([0x0a]);
      repairedTornLine = Number(c.write(fd, nl, 1n)) === 1;
    }
  }
  return {
    fd,
    bytes: bytes + (repairedTornLine ? 1 : 0),
    report: { modeWas, repairedTornLine, appending: bytes > 0 },
  };
}

/** Reports of a log file's trouble, each said once until it clears. */
export type Complaint = (message: string) => void;

/** An append-only log file; see the module doc. */
export class LogFile implements ByteSink {
  /** The path given. */
  readonly path: string;
  /** What the first open found. */
  readonly opened: OpenReport;
  #fd: number;
  #bytes: number;
  #rotateBytes: number;
  #complain: Complaint;
  #full = false;
  #rotateFailed = false;

  /** Opens `path` (see {@linkcode openOutput}); `complain` hears disk-full and rotation trouble. */
  constructor(
    path: string,
    opts: { truncate?: boolean; rotateBytes?: number; complain?: Complaint } = {},
  ) {
    this.path = path;
    this.#rotateBytes = opts.rotateBytes ?? 0;
    this.#complain = opts.complain ?? (() => {});
    const o = openOutput(path, opts.truncate ?? false);
    this.#fd = o.fd;
    this.#bytes = o.bytes;
    this.opened = o.report;
  }

  /**
   * Writes all of `p`, or nothing: a chunk that hits a full disk is cut back off (no torn
   * line) and 0 is returned, so the caller keeps it. Other errors throw {@linkcode OutputError}.
   */
  writeNow(p: Uint8Array): number {
    const c = libc();
    let at = 0;
    while (at < p.length) {
      const n = Number(c.write(this.#fd, p.subarray(at), BigInt(p.length - at)));
      if (n >= 0) {
        at += n;
        continue;
      }
      const e = errno();
      if (e === Errno.EINTR) continue;
      if (e === Errno.ENOSPC || e === Errno.EDQUOT) {
        c.ftruncate(this.#fd, BigInt(this.#bytes));
        if (!this.#full) {
          this.#complain(
            `proctree: ${this.path}: ${errnoText(e)}; lines are held, then dropped and counted, ` +
              "until there is room",
          );
        }
        this.#full = true;
        return 0;
      }
      throw new OutputError(`cannot write ${this.path}: ${errnoText(e)}`);
    }
    if (this.#full) this.#complain(`proctree: ${this.path}: writing again`);
    this.#full = false;
    this.#bytes += at;
    if (this.#rotateBytes > 0 && this.#bytes >= this.#rotateBytes) this.rotate();
    return at;
  }

  /** Closes and opens the path again (after logrotate moved the file away). */
  reopen(): void {
    libc().close(this.#fd);
    const o = openOutput(this.path);
    this.#fd = o.fd;
    this.#bytes = o.bytes;
  }

  /** Moves the file to `PATH.1` (replacing it) and starts a new one; on failure, says so once and keeps writing. */
  rotate(): void {
    try {
      Deno.renameSync(this.path, `${this.path}.1`);
    } catch (e) {
      if (!this.#rotateFailed) {
        this.#complain(
          `proctree: cannot rotate ${this.path}: ${(e as Error).message}; still appending to it`,
        );
      }
      this.#rotateFailed = true;
      return;
    }
    this.#rotateFailed = false;
    this.reopen();
  }

  /** Closes the file. */
  close(): void {
    libc().close(this.#fd);
  }
}

/**
 * Checks, before a long run, that `path` can be written by {@linkcode writeAtomic}: not a
 * symlink, and its directory takes a new file. Throws {@linkcode OutputError}.
 */
export function checkWritable(path: string): void {
  try {
    if (Deno.lstatSync(path).isSymlink) {
      throw new OutputError(`${path} is a symbolic link: give the file's own path`);
    }
  } catch (e) {
    if (e instanceof OutputError) throw e;
  }
  const probe = `${path}.proctree-${Deno.pid}`;
  const fd = createExclusive(probe, path);
  libc().close(fd);
  Deno.removeSync(probe);
}

/** Creates `path` (a file beside `shown`, which errors name: the user's, not ours). */
function createExclusive(path: string, shown: string): number {
  const fd = libc().openMode(
    cPath(path),
    O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC,
    FILE_MODE,
  );
  if (fd < 0) throw new OutputError(`cannot create ${shown}: ${errnoText(errno())}`);
  return fd;
}

/**
 * Writes `text` to `path` all at once: into a new file beside it (mode 0600), renamed over
 * `path` when complete. A crash leaves the old file or none, never half a document; a
 * symlink at `path` is replaced, not followed. Throws {@linkcode OutputError}.
 */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.proctree-${Deno.pid}`;
  const fd = createExclusive(tmp, path);
  const bytes = new TextEncoder().encode(text);
  try {
    let at = 0;
    while (at < bytes.length) {
      const n = Number(libc().write(fd, bytes.subarray(at), BigInt(bytes.length - at)));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EINTR) continue;
        throw new OutputError(`cannot write ${path}: ${errnoText(e)}`);
      }
      at += n;
    }
  } catch (e) {
    libc().close(fd);
    Deno.removeSync(tmp);
    throw e;
  }
  libc().close(fd);
  Deno.renameSync(tmp, path);
}
