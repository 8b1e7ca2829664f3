/**
 * The read loop: drain everything the socket holds (in bounded batches), decode, process,
 * flush, and only then park until the socket is readable again. Written against
 * {@linkcode EventSource} so the loop is the same for the kernel socket and for tests.
 *
 * @module
 */

import { type Decoded, decodeDatagram } from "./wire.ts";

/** What the loop needs from a connector (`ffi/connector.ts` implements it). */
export interface EventSource {
  /** Hands every available datagram to `sink` without blocking; returns how many. */
  drain(
    sink: (view: DataView, offset: number, length: number) => void,
    onOverrun?: () => void,
    maxDatagrams?: number,
  ): number;
  /** Parks until readable, woken, or `timeoutMs` (-1: forever). */
  wait(timeoutMs?: number): Promise<"readable" | "woken" | "timeout" | "hangup">;
  /** The same, blocking the calling thread (short timeouts only). */
  waitSync?(timeoutMs: number): "readable" | "woken" | "timeout" | "hangup";
  /** Ends a pending wait. */
  wake(): void;
}

/** Callbacks of {@linkcode runLoop}. */
export interface LoopHandlers {
  /** Called after each datagram is decoded: `batch[from…]` are new. */
  decoded?(batch: Decoded[], from: number): void;
  /** One drained batch, in arrival order; `complete` when the socket was left empty. */
  batch(batch: Decoded[], complete: boolean): void;
  /** The kernel reported a receive-buffer overrun (before the batch that follows it). */
  overrun(): void;
  /**
   * After each drain and at least every `tickMs` when idle: sweep, stats, and output.
   * `idle` is true when the loop is about to park: flush everything then; while busy,
   * flushing every few milliseconds saves a write per wake-up.
   */
  tick(idle: boolean): void;
  /** Checked after every wake-up; true ends the loop. */
  stopped(): boolean;
  /** The watched output went away (see `watchHangup`). */
  hangup?(): void;
}

/** Most datagrams handled before output is flushed and the event loop gets a turn. */
export const MAX_BATCH = 4096;

/**
 * After a drain that found events, the loop waits this long synchronously for the next
 * one before it parks asynchronously: during a storm each wake-up then costs one poll
 * syscall instead of an async FFI round trip.
 */
export const SYNC_WAIT_MS = 5;

/** Longest the loop keeps the JS thread to itself (signals and timers wait that long). */
export const MAX_SYNC_SPAN_MS = 50;

/** Runs until `handlers.stopped()`; a last drain happens after the stop so nothing queued is lost. */
export async function runLoop(
  source: EventSource,
  handlers: LoopHandlers,
  tickMs = 1000,
): Promise<void> {
  const batch: Decoded[] = [];
  const decoded = handlers.decoded?.bind(handlers);
  const sink = (view: DataView, offset: number, length: number) => {
    const from = batch.length;
    decodeDatagram(view, offset, length, batch);
    decoded?.(batch, from);
  };
  const overrun = () => handlers.overrun();
  const drainOnce = (): number => {
    batch.length = 0;
    const n = source.drain(sink, overrun, MAX_BATCH);
    if (batch.length) handlers.batch(batch, n < MAX_BATCH);
    return n;
  };
  let syncSince = performance.now();
  while (!handlers.stopped()) {
    const n = drainOnce();
    if (handlers.stopped()) break;
    let outcome;
    if (n > 0 && source.waitSync && performance.now() - syncSince < MAX_SYNC_SPAN_MS) {
      handlers.tick(false);
      outcome = source.waitSync(SYNC_WAIT_MS);
      if (outcome === "readable") continue;
    }
    handlers.tick(true);
    if (outcome !== "woken" && outcome !== "hangup") outcome = await source.wait(tickMs);
    syncSince = performance.now();
    if (outcome === "hangup") handlers.hangup?.();
  }
  while (drainOnce() >= MAX_BATCH) { /* take what the kernel already queued */ }
  handlers.tick(true);
}
