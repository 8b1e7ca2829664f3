/**
 * Parking the read loop: one `poll(2)` over every source's descriptor, a wake-up eventfd
 * (so a signal handler or an AbortSignal ends an idle wait at once) and, optionally, a
 * descriptor whose hang-up ends the wait (stdout whose reader went away).
 *
 * @module
 */

import { EFD, errno, libc, LibcError, POLL, POLLFD } from "./libc.ts";
import type { Waiter, WaitOutcome } from "../lib/pipeline/loop.ts";

/** Waits on several descriptors at once; see the module doc. */
export class Poller implements Waiter {
  #fds: Uint8Array;
  #view: DataView;
  #count: number;
  #wakeSlot: number;
  #hangupSlot: number;
  #efd: number;
  #closed = false;
  #polling: Promise<number> | null = null;
  #eventfdBuf = new BigUint64Array(1);
  /** The last two slots (eventfd, hang-up): what a paced sleep polls. */
  #wakeAndHangup: Uint8Array;

  /** Polls `readFds` for input (`POLLIN`, or the events given with a descriptor). */
  constructor(readFds: readonly (number | { fd: number; pollEvents?: number })[]) {
    const efd = libc().eventfd(0, EFD.CLOEXEC | EFD.NONBLOCK);
    if (efd < 0) throw new LibcError("eventfd", errno());
    this.#efd = efd;
    this.#count = readFds.length + 2;
    this.#fds = new Uint8Array(this.#count * POLLFD.size);
    this.#view = new DataView(this.#fds.buffer);
    readFds.forEach((t, i) =>
      typeof t === "number" ? this.#set(i, t, POLL.IN) : this.#set(i, t.fd, t.pollEvents ?? POLL.IN)
    );
    this.#wakeSlot = readFds.length;
    this.#hangupSlot = readFds.length + 1;
    this.#set(this.#wakeSlot, efd, POLL.IN);
    this.#set(this.#hangupSlot, -1, 0); // poll skips negative fds
    this.#wakeAndHangup = this.#fds.subarray(this.#wakeSlot * POLLFD.size);
  }

  #set(slot: number, fd: number, events: number): void {
    this.#view.setInt32(slot * POLLFD.size + POLLFD.fd, fd, true);
    this.#view.setInt16(slot * POLLFD.size + POLLFD.events, events, true);
  }

  #revents(slot: number): number {
    return this.#view.getInt16(slot * POLLFD.size + POLLFD.revents, true);
  }

  /**
   * Also ends a wait with `"hangup"` when `fd` reports an error or hang-up, e.g. stdout
   * whose reader went away (`proctree watch | head -3` on an idle machine).
   */
  watchHangup(fd: number): void {
    this.#set(this.#hangupSlot, fd, 0); // no events asked: POLLERR/POLLHUP always report
  }

  #clear(): void {
    for (let i = 0; i < this.#count; i++) {
      this.#view.setInt16(i * POLLFD.size + POLLFD.revents, 0, true);
    }
  }

  /** Parks until a source is readable, `wake()`, a hang-up, or `timeoutMs` (-1: forever). */
  async wait(timeoutMs = -1): Promise<WaitOutcome> {
    if (this.#closed) return "woken";
    this.#clear();
    this.#polling = libc().pollAsync(this.#fds, BigInt(this.#count), timeoutMs);
    const r = await this.#polling;
    this.#polling = null;
    return this.#outcome(r);
  }

  /**
   * `wait()` without leaving the JS thread: blocks it for at most `timeoutMs`. Under load
   * this costs one poll syscall per wake-up instead of an async FFI round trip (tens of µs).
   */
  waitSync(timeoutMs: number): WaitOutcome {
    if (this.#closed) return "woken";
    this.#clear();
    return this.#outcome(libc().poll(this.#fds, BigInt(this.#count), timeoutMs));
  }

  /**
   * Blocks the JS thread for `timeoutMs` (the loop's pace) with the sources left unpolled;
   * a wake-up or hang-up ends it early. Polls the last two slots only (eventfd, hang-up).
   */
  sleepSync(timeoutMs: number): WaitOutcome {
    if (this.#closed) return "woken";
    this.#clear();
    return this.#outcome(libc().poll(this.#wakeAndHangup, 2n, timeoutMs));
  }

  #outcome(r: number): WaitOutcome {
    if (r <= 0) return "timeout";
    if (this.#revents(this.#hangupSlot) !== 0) return "hangup";
    if (this.#revents(this.#wakeSlot) & POLL.IN) {
      libc().read(this.#efd, new Uint8Array(this.#eventfdBuf.buffer), 8n);
      return "woken";
    }
    return "readable";
  }

  /** Ends a pending or the next wait at once. Safe from a signal handler. */
  wake(): void {
    if (this.#closed) return;
    this.#eventfdBuf[0] = 1n;
    libc().write(this.#efd, new Uint8Array(this.#eventfdBuf.buffer), 8n);
  }

  /** Ends any wait in flight, then closes the eventfd. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const polling = this.#polling;
    if (polling) {
      this.wake();
      await polling;
    }
    this.#closed = true;
    libc().close(this.#efd);
  }
}
