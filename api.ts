/**
 * The library's entry points: raw kernel events and enriched watch records as async
 * iterators. Both subscribe before they return the iterator and unsubscribe and close the
 * socket when the loop ends (`break`, an exception, or the AbortSignal). `watchEvents`
 * runs the very loop and processor `proctree watch` runs (see `session.ts`).
 *
 * @module
 */

import { ProcConnector } from "./ffi/source/connector.ts";
import { Poller } from "./ffi/poller.ts";
import type { ProcessFilter } from "./lib/pipeline/processor.ts";
import type { WatchRecord } from "./lib/record/record.ts";
import type { ProcessTree, ProcNode } from "./lib/tree/tree.ts";
import {
  type Decoded,
  decodeDatagram,
  EVENT_BITS,
  eventMask,
  TREE_EVENTS,
} from "./lib/event/wire.ts";
import type { EventKind } from "./lib/event/kinds.ts";
import type { ProcEvent } from "./lib/event/wire.ts";
import { type ListenOptions, Session } from "./session.ts";

export {
  type ArgvMode,
  AuditUnavailable,
  BpfUnavailable,
  ConnectorError,
  type ExecFactsMode,
  type ExecNameMode,
  FanotifyUnavailable,
  type ListenOptions,
  type LoopHooks,
  type ProcessorConfig,
  Session,
} from "./session.ts";
export type { EventKind };

/** @deprecated A subscribed session is a {@linkcode Session}: use that name. */
export type Listening = Session;

/**
 * Subscribes first and snapshots `/proc` second, so no process can start unseen between
 * the two. Throws {@linkcode ConnectorError} when the kernel cannot be listened to.
 */
export function listen(opts: ListenOptions = {}): Session {
  return Session.open(opts);
}

/** Options of {@linkcode rawEvents}. */
export interface RawEventsOptions {
  /** Receive buffer to ask for, in bytes (default 128 MiB). */
  rcvbufBytes?: number;
  /** Only these events; the kernel filters them too where it can (asked, not assumed). */
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
  // No reader thread: nothing here paces or falls behind on its own (the caller's loop
  // decides how fast events are taken).
  const connector = ProcConnector.open({
    rcvbufBytes: options.rcvbufBytes,
    eventMask: mask,
    backlogBytes: 0,
  });
  const poller = new Poller([connector.fd]);
  const onAbort = () => poller.wake();
  options.signal?.addEventListener("abort", onAbort);
  const batch: Decoded[] = [];
  const sink = (v: DataView, o: number, l: number) => decodeDatagram(v, o, l, batch);
  try {
    while (!options.signal?.aborted) {
      batch.length = 0;
      connector.receive(sink);
      for (const d of batch) {
        if (d.what === "error" || d.what === "unknown" || d.what === "ack") continue;
        if (mask !== undefined && !(EVENT_BITS[d.what] & mask)) continue;
        yield d;
        if (options.signal?.aborted) return;
      }
      if (batch.length === 0) await poller.wait(1000);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    await poller.close();
    connector.close();
  }
}

/**
 * Options of {@linkcode watchEvents}: the session's sources as {@linkcode ListenOptions}
 * has them (receive buffer, tree bounds, exec names and facts, `argv`, `files`, `net`), and
 * what is yielded.
 */
export interface WatchOptions extends Omit<ListenOptions, "eventMask" | "btfPath"> {
  /** Only these events are yielded (lost, resync, malformed and unknown always are). */
  events?: EventKind[];
  /** Only processes that are, or descend from, a process matching one of these. */
  under?: ((node: ProcNode) => boolean)[];
  /** Report threads too. */
  threads?: boolean;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** Called once the subscription is confirmed, with the live tree (for lineage queries). */
  onListening?: (tree: ProcessTree) => void;
}

/**
 * The records `proctree watch` prints, as objects, with chains, `/proc` facts, loss
 * accounting and resync. The tree passed to `onListening` answers lineage questions
 * about any process the records name.
 */
export async function* watchEvents(options: WatchOptions = {}): AsyncGenerator<WatchRecord> {
  const { events, under, threads, signal, onListening, ...sources } = options;
  const session = Session.open({ ...sources, eventMask: eventMask(events, TREE_EVENTS) });
  const queue: WatchRecord[] = [];
  const filter: ProcessFilter = under ? { under } : {};
  const processor = session.processor({
    events: events ? new Set(events) : undefined,
    threads,
    filter,
    sink: (rec) => queue.push(rec),
  });
  const loop = session.loop(processor, { stopped: () => signal?.aborted ?? false });
  const onAbort = () => session.poller.wake();
  signal?.addEventListener("abort", onAbort);
  try {
    onListening?.(session.tree);
    while (!signal?.aborted) {
      const drained = loop.drainOnce();
      for (let i = 0; i < queue.length; i++) {
        yield queue[i];
        if (signal?.aborted) return;
      }
      queue.length = 0;
      await loop.park(drained);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await session.close();
  }
}
