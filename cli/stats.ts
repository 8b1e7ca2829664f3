/**
 * The periodic `{"event":"stats",…}` line of `watch --stats SECONDS`. Lines are due on a
 * fixed schedule (start + k × period), so a busy loop delays one line but never shifts the
 * ones after it.
 *
 * @module
 */

import type { ProcessorCounters } from "../lib/pipeline/processor.ts";
import { ARGV_KEEP_CHARS } from "../lib/pipeline/apply.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import type { WallClock } from "../lib/time.ts";
import type { TreeStats } from "../lib/tree/tree.ts";
import type { ConnectorStats } from "../ffi/source/connector.ts";

/** Decides when a stats line is due and builds it. */
export class StatsClock {
  #periodNs: number;
  #dueNs = 0;
  #lastNs = 0;
  #lastEvents = 0;

  /** `periodMs` 0 disables stats. */
  constructor(periodMs: number) {
    this.#periodNs = periodMs * 1e6;
  }

  /** True when a line is due at `nowNs` (CLOCK_MONOTONIC). */
  due(nowNs: number): boolean {
    if (this.#periodNs === 0) return false;
    if (this.#dueNs === 0) {
      this.#lastNs = nowNs;
      this.#dueNs = nowNs + this.#periodNs;
    }
    return nowNs >= this.#dueNs;
  }

  /** The stats line for the period that ends at `nowNs`; schedules the next one. */
  record(
    nowNs: number,
    clock: WallClock,
    c: ProcessorCounters,
    t: TreeStats,
    socket: ConnectorStats,
  ): WatchRecord {
    const seconds = (nowNs - this.#lastNs) / 1e9;
    const mem = Deno.memoryUsage();
    const rec: WatchRecord = {
      event: "stats",
      time: clock.iso(nowNs),
      events: c.events,
      events_per_s: Math.round((c.events - this.#lastEvents) / seconds),
      lost: c.lost,
      lost_uncounted: c.overrunsUncounted,
      resyncs: c.resyncs,
      malformed: c.malformed,
      execs_unreadable: c.execsUnreadable,
      ...c.stages,
      argv_keep_chars: ARGV_KEEP_CHARS,
      tree_live: t.live,
      tree_exited: t.exited,
      tree_evicted: t.evictedByCap,
      overruns: socket.overruns,
      foreign_datagrams: socket.foreign,
      truncated_datagrams: socket.truncated,
      ...(socket.backlogDropped === undefined ? {} : { backlog_dropped: socket.backlogDropped }),
      rss_bytes: mem.rss,
      heap_used_bytes: mem.heapUsed,
    };
    this.#lastNs = nowNs;
    this.#lastEvents = c.events;
    // The next line is due one period after this one was due; missed periods are skipped.
    while (this.#dueNs <= nowNs) this.#dueNs += this.#periodNs;
    return rec;
  }
}
