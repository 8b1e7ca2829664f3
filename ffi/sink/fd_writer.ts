/**
 * Writing to stdout without ever blocking the reader loop. A pipe whose reader stopped
 * reading must not stall proctree (the kernel would then drop events silently on its
 * side); so writes go out only as far as the pipe takes them now — at most PIPE_BUF bytes
 * per write(2) after poll(2) reported room, which the kernel promises not to block.
 *
 * A regular file has no reader to wait for: it takes each buffer in one write(2), without
 * the poll (measured on the fast storm, 4 KiB writes each after a poll were ~19 000 of each
 * syscall for 75 MB of lines).
 *
 * @module
 */

import { Errno, errno, libc, LibcError } from "../libc.ts";
import { isRegularFile } from "../procfs.ts";

const POLLOUT = 4;
const POLLERR = 8;
const PIPE_BUF = 4096;
const NEWLINE = 0x0a;

/** Result of {@linkcode FdWriter.writeNow}: bytes taken, or `closed` once the reader left. */
export type WriteResult = number | "closed";

/** Non-blocking writes to one descriptor. */
export class FdWriter {
  readonly fd: number;
  #pollfd = new Uint8Array(8);
  #view = new DataView(this.#pollfd.buffer);

  /** The descriptor is a regular file: writes never wait for a reader. */
  readonly regularFile: boolean;

  constructor(fd: number) {
    this.fd = fd;
    this.#view.setInt32(0, fd, true);
    this.#view.setInt16(4, POLLOUT, true);
    this.regularFile = isRegularFile(fd);
  }

  /** Waits up to `timeoutMs` for room (0: just asks). */
  writable(timeoutMs = 0): boolean {
    this.#view.setInt16(6, 0, true);
    const r = libc().poll(this.#pollfd, 1n, timeoutMs);
    return r > 0 && (this.#view.getInt16(6, true) & (POLLOUT | POLLERR)) !== 0;
  }

  /** Writes as much of `bytes` as goes without blocking. */
  writeNow(bytes: Uint8Array): WriteResult {
    let at = 0;
    while (at < bytes.length && (this.regularFile || this.writable(0))) {
      let end = this.regularFile ? bytes.length : Math.min(bytes.length, at + PIPE_BUF);
      // Each write ends at a line end where one fits: a write this small goes in whole, so
      // a reader that stops reading holds whole lines, not half of one.
      const lineEnd = end < bytes.length ? bytes.lastIndexOf(NEWLINE, end - 1) : -1;
      if (lineEnd >= at) end = lineEnd + 1;
      const chunk = bytes.subarray(at, end);
      const n = Number(libc().write(this.fd, chunk, BigInt(chunk.length)));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EPIPE) return "closed";
        if (e === Errno.EAGAIN || e === Errno.EINTR) break;
        throw new LibcError(this.fd === 1 ? "write to stdout" : `write to fd ${this.fd}`, e);
      }
      at += n;
    }
    return at;
  }
}
