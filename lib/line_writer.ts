/**
 * Output lines written without ever blocking the read loop. A reader that stops reading
 * must not stall proctree (the kernel would then drop events on its side): lines wait in
 * memory up to a bound, then are dropped, counted and reported.
 *
 * @module
 */

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
