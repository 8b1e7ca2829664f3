/**
 * The library's entry points: raw kernel events and enriched watch records as async
 * iterators. Both subscribe before they return the iterator and unsubscribe and close the
 * socket when the loop ends (`break`, an exception, or the AbortSignal).
 *
 * @module
 */

import { ConnectorError, ProcConnector } from "./ffi/connector.ts";
import { Clock, clockNs } from "./ffi/libc.ts";
import { procfs } from "./ffi/procfs.ts";
import { EventProcessor, type ProcessFilter } from "./lib/processor.ts";
import { MAX_BATCH } from "./lib/loop.ts";
import { snapshot } from "./lib/procfs.ts";
import { toJsonLine, type WatchRecord } from "./lib/record.ts";
import { DATAGRAM_BYTES, encodeEventInto } from "./lib/encode.ts";
import { WallClock } from "./lib/time.ts";
import { PidTree, type ProcNode } from "./lib/tree.ts";
import { Users } from "./lib/users.ts";
import {
  type Decoded,
  decodeDatagram,
  EVENT_BITS,
  eventMask,
  type EventName,
  type ProcEvent,
  TREE_EVENTS,
} from "./lib/wire.ts";

/**
 * Runs the decode → tree → /proc → JSON path on synthetic events about this process a few
 * hundred times. Cold, the first real batch took ~1.5 ms, long enough for a short-lived
 * child (`ls`) to exit unread; warm, it takes tens of microseconds.
 */
export function warmUp(rounds = 300): void {
  const tree = new PidTree();
  const users = new Users();
  const clock = new WallClock(0);
  const self = Deno.pid;
  const now = () => clockNs(Clock.MONOTONIC);
  const p = new EventProcessor({
    tree,
    reader: procfs,
    users,
    clock,
    now,
    sink: (r) => toJsonLine(r),
  });
  const bytes = new Uint8Array(DATAGRAM_BYTES * 3);
  const view = new DataView(bytes.buffer);
  const base = { ack: 0, cpu: 0, timestampNs: 1 };
  const batch: Decoded[] = [];
  for (let i = 0; i < rounds; i++) {
    const seq = i * 3;
    encodeEventInto(view, 0, {
      ...base,
      seq,
      what: "fork",
      pid: self,
      tgid: self,
      parentPid: 1,
      parentTgid: 1,
    });
    encodeEventInto(view, DATAGRAM_BYTES, {
      ...base,
      seq: seq + 1,
      what: "exec",
      pid: self,
      tgid: self,
    });
    encodeEventInto(view, DATAGRAM_BYTES * 2, {
      ...base,
      seq: seq + 2,
      what: "exit",
      pid: self,
      tgid: self,
      exitCode: 0,
      exitSignal: 17,
      parentPid: 1,
      parentTgid: 1,
    });
    batch.length = 0;
    for (let k = 0; k < 3; k++) {
      decodeDatagram(view, k * DATAGRAM_BYTES, DATAGRAM_BYTES, batch);
      p.decoded(batch, k);
    }
    p.process(batch);
  }
}

/** Options of {@linkcode listen}. */
export interface ListenOptions {
  /** Receive buffer to ask for, in bytes (default 16 MiB). */
  rcvbufBytes?: number;
  /** Kernel event filter (WHAT bits); applied on Linux ≥ 6.6. */
  eventMask?: number;
  /** How long exited processes stay in the tree, in ms (default 60 000). */
  graceMs?: number;
  /** Most exited processes kept (default 10 000). */
  maxExited?: number;
}

/** A subscribed connector and the process tree seeded right after subscribing. */
export interface Listening {
  /** The subscribed socket. */
  connector: ProcConnector;
  /** The live process tree. */
  tree: PidTree;
  /** Turns kernel timestamps into wall-clock ISO times. */
  clock: WallClock;
  /** Processes found in /proc at start. */
  seeded: number;
}

/** CLOCK_REALTIME − CLOCK_MONOTONIC now, in ns. */
export function wallOffsetNs(): number {
  return clockNs(Clock.REALTIME) - clockNs(Clock.MONOTONIC);
}

/**
 * Subscribes first and snapshots `/proc` second, so no process can start unseen between
 * the two. Throws {@linkcode ConnectorError} when the kernel cannot be listened to.
 */
export function listen(opts: ListenOptions = {}): Listening {
  const connector = ProcConnector.open({
    rcvbufBytes: opts.rcvbufBytes,
    eventMask: opts.eventMask,
  });
  const tree = new PidTree({
    graceMs: opts.graceMs,
    maxExited: opts.maxExited,
    bootOffsetNs: clockNs(Clock.BOOTTIME) - clockNs(Clock.MONOTONIC),
  });
  const entries = snapshot(procfs);
  tree.seed(entries);
  warmUp();
  return { connector, tree, clock: new WallClock(wallOffsetNs()), seeded: entries.length };
}

/** Event names as `watch --events` takes them. */
export type EventKind = Exclude<EventName, "ack">;

/** Options of {@linkcode rawEvents}. */
export interface RawEventsOptions {
  /** Receive buffer to ask for, in bytes (default 16 MiB). */
  rcvbufBytes?: number;
  /** Only these events; the kernel filters them on ≥ 6.6. */
  events?: EventKind[];
  /** Ends the iteration. */
  signal?: AbortSignal;
}

/**
 * Every decoded kernel event, undecorated: fork, exec, exit, … with pids as the kernel
 * sends them (`pid` is the thread, `tgid` the process). Malformed messages are skipped.
 *
 * ```ts
 * import { rawEvents } from "./mod.ts";
 * for await (const ev of rawEvents({ events: ["exec"] })) {
 *   console.log(ev.tgid);
 *   break; // unsubscribes and closes the socket
 * }
 * ```
 */
export async function* rawEvents(options: RawEventsOptions = {}): AsyncGenerator<ProcEvent> {
  const mask = eventMask(options.events);
  const connector = ProcConnector.open({ rcvbufBytes: options.rcvbufBytes, eventMask: mask });
  const onAbort = () => connector.wake();
  options.signal?.addEventListener("abort", onAbort);
  const batch: Decoded[] = [];
  const sink = (v: DataView, o: number, l: number) => decodeDatagram(v, o, l, batch);
  try {
    while (!options.signal?.aborted) {
      batch.length = 0;
      connector.drain(sink);
      for (const d of batch) {
        if (d.what === "error" || d.what === "unknown" || d.what === "ack") continue;
        if (mask !== undefined && !(EVENT_BITS[d.what] & mask)) continue;
        yield d;
        if (options.signal?.aborted) return;
      }
      if (batch.length === 0) await connector.wait(1000);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    await connector.close();
  }
}

/** Options of {@linkcode watchEvents}. */
export interface WatchOptions {
  /** Receive buffer to ask for, in bytes (default 16 MiB). */
  rcvbufBytes?: number;
  /** Only these events are yielded (lost, resync, malformed and unknown always are). */
  events?: EventKind[];
  /** Only processes that are, or descend from, a process matching one of these. */
  under?: ((node: ProcNode) => boolean)[];
  /** Report threads too. */
  threads?: boolean;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** Called once the subscription is confirmed, with the live tree (for lineage queries). */
  onListening?: (tree: PidTree) => void;
  /** Grace period and cap of exited processes. */
  graceMs?: number;
  /** Most exited processes kept (default 10 000). */
  maxExited?: number;
}

/**
 * The records `proctree watch` prints, as objects, with chains, `/proc` facts, loss
 * accounting and resync. The tree passed to `onListening` answers lineage questions
 * about any process the records name.
 */
export async function* watchEvents(options: WatchOptions = {}): AsyncGenerator<WatchRecord> {
  const mask = eventMask(options.events, TREE_EVENTS);
  const l = listen({
    rcvbufBytes: options.rcvbufBytes,
    eventMask: mask,
    graceMs: options.graceMs,
    maxExited: options.maxExited,
  });
  const { connector, tree, clock } = l;
  const queue: WatchRecord[] = [];
  const filter: ProcessFilter = {};
  if (options.under) filter.under = options.under;
  const processor = new EventProcessor({
    tree,
    reader: procfs,
    users: new Users(),
    clock,
    events: options.events ? new Set(options.events) : undefined,
    threads: options.threads,
    filter,
    kernelFilter: connector.kernelFilter,
    now: () => clockNs(Clock.MONOTONIC),
    sink: (rec) => queue.push(rec),
  });
  const onAbort = () => connector.wake();
  options.signal?.addEventListener("abort", onAbort);
  const batch: Decoded[] = [];
  const sink = (v: DataView, o: number, l: number) => {
    const from = batch.length;
    decodeDatagram(v, o, l, batch);
    processor.decoded(batch, from);
  };
  try {
    options.onListening?.(tree);
    while (!options.signal?.aborted) {
      batch.length = 0;
      const n = connector.drain(sink, () => processor.overrun(), MAX_BATCH);
      if (batch.length) processor.process(batch, n < MAX_BATCH);
      tree.sweep(clockNs(Clock.MONOTONIC));
      while (queue.length) {
        yield queue.shift()!;
        if (options.signal?.aborted) return;
      }
      if (batch.length === 0) await connector.wait(1000);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    await connector.close();
  }
}

export { ConnectorError };
