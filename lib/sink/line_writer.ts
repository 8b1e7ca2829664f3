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

/** How long a stopping proctree waits for a slow reader to take what is queued. */
export const DRAIN_MS = 2000;

/**
 * Bytes of lines gathered before they are written even in the middle of a batch. Each line is
 * encoded into one buffer, reused: in a storm, joining lines into a string and encoding that
 * into a new array passed the output through memory twice more, while the storm's workers
 * had the caches (measured in BENCHMARKS.md).
 */
export const WRITE_BUFFER_BYTES = 64 * 1024;

/** Most output bytes held while the reader is slow; past it, lines are dropped and counted. */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;

/**
 * Buffers lines and writes them without blocking. A reader that stops reading does not stall
 * proctree: output waits in memory up to {@linkcode MAX_PENDING_BYTES}, then lines are
 * dropped, counted, and reported by a line from `dropLine` once the reader catches up. A
 * closed reader (EPIPE) marks the writer closed: `proctree watch | head -3` ends quietly.
 */
export class LineWriter {
  /** Lines encoded, not handed to the output yet: the first `#used` bytes. */
  readonly #buf = new Uint8Array(WRITE_BUFFER_BYTES);
  #used = 0;
  #out: ByteSink;
  /** What the output did not take yet, in order (copies: the buffer is reused). */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #dropLine: (count: number) => string;
  /** Lines dropped because the reader was too slow, in total. */
  droppedAtOutput = 0;
  #droppedUnreported = 0;
  closed = false;

  #maxPendingBytes: number;
  /** The last byte written was not a line end: the reader holds part of a line. */
  #midLine = false;

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
    this.#add(line);
  }

  /** Encodes `line` into the buffer, written first if full; a line longer than it, alone. */
  #add(line: string): void {
    if (this.#append(line)) return;
    this.flush();
    if (this.closed || this.#append(line)) return;
    this.#hold(encoder.encode(line + "\n"));
    this.#writePending();
  }

  /** Whether `line` and its newline fit in the buffer (then they are in it). */
  #append(line: string): boolean {
    const end = this.#buf.length - 1; // room for the newline
    if (this.#used >= end) return false;
    const r = encoder.encodeInto(line, this.#buf.subarray(this.#used, end));
    if (r.read < line.length) return false;
    this.#used += r.written;
    this.#buf[this.#used++] = NEWLINE;
    return true;
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
      const note = this.#dropLine(this.#droppedUnreported);
      this.#droppedUnreported = 0;
      this.#add(note);
    }
    if (this.#used > 0) {
      const bytes = this.#buf.subarray(0, this.#used);
      this.#used = 0;
      // Straight from the buffer while nothing waits before it; what is left, copied.
      const n = this.#pending.length ? 0 : this.#write(bytes);
      if (n === "closed") return;
      if (n < bytes.length) this.#hold(bytes.slice(n));
    }
    this.#writePending();
  }

  /** Writes what waits, in order, as far as the output takes it now. */
  #writePending(): void {
    while (this.#pending.length) {
      const head = this.#pending[0];
      const n = this.#write(head);
      if (n === "closed") return;
      this.#pendingBytes -= n;
      if (n < head.length) {
        this.#pending[0] = head.subarray(n);
        return;
      }
      this.#pending.shift();
    }
  }

  /** Hands `bytes` to the output: bytes taken, or `closed` (then nothing waits any more). */
  #write(bytes: Uint8Array): number | "closed" {
    const n = this.#out.writeNow(bytes);
    if (n === "closed") {
      this.closed = true;
      this.#pending.length = 0;
      this.#pendingBytes = 0;
      return n;
    }
    if (n > 0) this.#midLine = bytes[n - 1] !== NEWLINE;
    return n;
  }

  #hold(bytes: Uint8Array): void {
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
  }

  /**
   * Flushes, waiting for a slow reader at most `timeoutMs`. A reader left holding part of a
   * line is given up to `timeoutMs` more for the rest of that line alone, so it never ends
   * with a torn line unless it stops reading inside one; what was not written is counted.
   */
  drain(timeoutMs: number, writable: (ms: number) => boolean): DrainResult {
    this.flush();
    this.#waitWritten(timeoutMs, writable);
    let unwritten = 0;
    if (!this.closed && this.#pending.length) {
      const rest = this.#pending.splice(0);
      this.#pendingBytes = 0;
      let lineEnd = -1;
      if (this.#midLine) {
        lineEnd = rest[0].indexOf(NEWLINE);
        if (lineEnd >= 0) this.#pending.push(rest[0].slice(0, lineEnd + 1));
      }
      for (let i = 0; i < rest.length; i++) {
        unwritten += countLines(i === 0 ? rest[0].subarray(lineEnd + 1) : rest[i]);
      }
      this.#pendingBytes = this.#pending[0]?.length ?? 0;
      this.#waitWritten(timeoutMs, writable);
    }
    const torn = !this.closed && (this.#pending.length > 0 || this.#midLine);
    this.#pending.length = 0;
    this.#pendingBytes = 0;
    return { unwrittenLines: unwritten + (torn ? 1 : 0), torn };
  }

  #waitWritten(timeoutMs: number, writable: (ms: number) => boolean): void {
    const until = performance.now() + timeoutMs;
    while (!this.closed && this.#pending.length && performance.now() < until) {
      writable(Math.max(1, Math.ceil(until - performance.now())));
      this.flush();
    }
  }
}

/** What {@linkcode LineWriter.drain} could not write. */
export interface DrainResult {
  /** Lines not written (or written in part), besides any already reported as dropped. */
  unwrittenLines: number;
  /** The reader stopped inside a line: the last line it holds is cut short. */
  torn: boolean;
}

const NEWLINE = 0x0a;

function countLines(bytes: Uint8Array): number {
  let n = 0;
  for (let i = bytes.indexOf(NEWLINE); i >= 0; i = bytes.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

/**
 * The stderr line for a drain that left lines behind (null when it wrote everything).
 * `waitedMs`: how long the reader was given.
 */
export function drainNote(r: DrainResult, waitedMs: number): string | null {
  if (r.unwrittenLines === 0) return null;
  const lines = `${r.unwrittenLines} line${r.unwrittenLines === 1 ? "" : "s"}`;
  return `proctree: ${lines} not written: the output took nothing for ${waitedMs / 1000} s` +
    (r.torn ? " (it stopped inside the last line it holds, which is cut short)" : "");
}
