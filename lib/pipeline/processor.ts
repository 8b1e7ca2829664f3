/**
 * Turns batches of decoded events into output records. It composes the parts, each in its
 * own module: loss accounting (`event/loss.ts`), each exec's facts from `/proc` and the
 * stages (`exec_facts.ts`), batches held for a stage that settles late (`hold.ts`), the
 * tree, selection and record (`apply.ts`), the line stages' lines (`stage_lines.ts`) and
 * resync after losses (`tree/resync.ts`). It names no source: each is a stage (`stage.ts`).
 *
 * The read loop (`loop.ts`) drives it through {@linkcode EventProcessor.loopHandlers};
 * {@linkcode EventProcessor.processBatch} does the same for a batch already in hand.
 *
 * @module
 */

import type { Decoded } from "../event/wire.ts";
import type { ProcReader } from "../tree/proc_parse.ts";
import type { ExecInfo, PidTree } from "../tree/tree.ts";
import { lostRecord, resyncRecord } from "../record/record.ts";
import type { Users } from "../tree/users.ts";
import type { WallClock } from "../time.ts";
import type { LoopHandlers } from "./loop.ts";
import { LossAccounting } from "../event/loss.ts";
import { type ProcessFilter, RecordFilter } from "./filter.ts";
import { Resyncs } from "../tree/resync.ts";
import type { ExecStage, LineStage, StageLoss } from "./stage.ts";
import { EventApply, type RecordSink } from "./apply.ts";
import { ExecFacts } from "./exec_facts.ts";
import { BatchHold, type PendingBatch } from "./hold.ts";
import { StageLines } from "./stage_lines.ts";

export type { ProcessFilter } from "./filter.ts";
export { ARGV_KEEP_CHARS, type RecordSink } from "./apply.ts";

/** Options of {@linkcode EventProcessor}. */
export interface ProcessorOptions {
  /** The live tree the events are applied to. */
  tree: PidTree;
  /** `/proc` access for exec reads and resync. */
  reader: ProcReader;
  /** Names users. */
  users: Users;
  /** Dates records. */
  clock: WallClock;
  /** Receives the records. */
  sink: RecordSink;
  /** CLOCK_MONOTONIC now, in ns (reads are dated with it). */
  now: () => number;
  /** Event names to print; undefined: all. lost, resync, malformed and unknown always print. */
  events?: ReadonlySet<string>;
  /** Report thread creation, thread exits and per-thread id/comm changes. */
  threads?: boolean;
  /** The process selection. */
  filter?: ProcessFilter;
  /** Add `chain` to every event (default true). */
  chains?: boolean;
  /** The kernel filters events, so seq gaps are not losses. */
  kernelFilter?: boolean;
  /**
   * Stages that refine each exec's facts, in order, after the `/proc` reads. One that
   * settles an exec late (its record comes after the event) holds its batch, and every
   * batch after it, so the output stays in kernel order.
   */
  stages?: readonly ExecStage[];
  /** Stages with lines of their own (`--net`, `--files`), printed after the events before them. */
  lineStages?: readonly LineStage[];
}

/** Running totals. */
export interface ProcessorCounters {
  /** Process events handled. */
  events: number;
  /** Events counted lost. */
  lost: number;
  /** Overruns whose size could not be known. */
  overrunsUncounted: number;
  /** Messages that could not be decoded. */
  malformed: number;
  /** Messages of a kind this version does not know. */
  unknown: number;
  /** Reconciliations with `/proc`. */
  resyncs: number;
  /** Printed execs whose program no source could vouch for (`exe` printed as null). */
  execsUnreadable: number;
  /** Each stage's own counters, by the names the stats line prints. */
  stages?: Readonly<Record<string, number>>;
}

/** The event pipeline shared by `watch`, `run` and the library. */
export class EventProcessor {
  readonly #counts = { events: 0, malformed: 0, unknown: 0 };
  /** Batches waiting for a stage to settle an exec. */
  #hold: BatchHold;
  /** A batch of this drain left a source with more to read. */
  #drainIncomplete = false;
  #overrunPending = false;
  #o: ProcessorOptions;
  #loss: LossAccounting;
  #facts: ExecFacts;
  #apply: EventApply;
  /** Newest kernel timestamp seen: the time of lines that have none of their own. */
  #lastNs = 0;
  #resyncs: Resyncs;
  readonly #stages: readonly (ExecStage | LineStage)[];
  readonly #lines: StageLines;

  /** A processor over `options.tree`, sending records to `options.sink`. */
  constructor(options: ProcessorOptions) {
    this.#o = options;
    const { tree, reader, sink } = options;
    this.#stages = [...options.stages ?? [], ...options.lineStages ?? []];
    this.#loss = new LossAccounting(options.kernelFilter ?? false);
    this.#facts = new ExecFacts(reader, options.now, options.stages ?? []);
    this.#hold = new BatchHold(this.#facts.waitMs);
    this.#resyncs = new Resyncs(tree, reader);
    const filter = new RecordFilter(tree, options.events, options.filter);
    const chains = options.chains ?? true ? tree : null;
    const ctx = { clock: options.clock, users: options.users, chains, ids: tree };
    const threads = options.threads ?? false;
    this.#apply = new EventApply({ tree, reader, filter, ctx, sink, threads });
    this.#lines = new StageLines(options.lineStages ?? [], tree, filter, ctx, sink);
  }

  /** Running totals. */
  get counters(): ProcessorCounters {
    return {
      ...this.#counts,
      lost: this.#loss.lost,
      overrunsUncounted: this.#loss.uncounted,
      resyncs: this.#resyncs.count,
      execsUnreadable: this.#apply.execsUnreadable,
      stages: Object.assign({}, ...this.#stages.map((s) => s.counters())),
    };
  }

  /** The processor's part of the loop's handlers: early reads, batches, overruns. */
  loopHandlers(): Pick<
    LoopHandlers,
    "decoded" | "batch" | "overrun" | "drained" | "dueInMs" | "flush"
  > {
    return {
      decoded: (b, from, storm) => this.#facts.decoded(b, from, storm),
      batch: (b, complete) => {
        if (!complete) this.#drainIncomplete = true;
        this.#process(b, complete);
      },
      overrun: () => this.overrun(),
      drained: () => {
        this.#release(false);
        this.#stageLines(true, !this.#drainIncomplete);
        this.#drainIncomplete = false;
        this.#resyncIfDue();
        this.#facts.sweep(this.#lastNs);
      },
      dueInMs: () => this.dueInMs(),
      flush: () => this.flush(),
    };
  }

  /**
   * In how many ms a pending batch stops waiting for its stages (the loop wakes by then);
   * null when nothing is pending.
   */
  dueInMs(): number | null {
    if (this.#lines.holding()) return 0; // the same
    return this.#hold.dueInMs(this.#o.now() / 1e6);
  }

  /** Applies every pending batch now: execs whose stages could not settle keep their facts. */
  flush(): void {
    this.#release(true);
    this.#stageLines(true, true);
    this.#stageLines(true, true);
  }

  /** Upkeep on every tick of the session (CLOCK_MONOTONIC ns), drained or not. */
  tick(nowNs: number): void {
    this.#facts.tick(nowNs / 1e6);
  }

  /** A resync after losses, when one may run (`Resyncs`) and no batch is held. */
  #resyncIfDue(): void {
    if (!this.#loss.needResync || this.#hold.holding) return;
    if (this.#resyncs.due(this.#o.now() / 1e6)) this.resync();
  }

  /**
   * Processes a batch that is already in hand: its execs are read now, then the batch is
   * processed as if the drain had emptied the socket.
   */
  processBatch(batch: readonly Decoded[]): void {
    this.#facts.decoded(batch, 0);
    this.#process(batch, true);
  }

  /** The kernel reported an overrun: events were dropped before the next datagram. */
  overrun(): void {
    this.#o.tree.lost(this.#o.now());
    this.#facts.lost();
    if (this.#hold.holding) this.#overrunPending = true; // it belongs after them
    else if (this.#loss.overrun()) this.#uncountedLoss();
  }

  /** Reconciles the tree with `/proc` and prints a `resync` line. */
  resync(): void {
    this.#loss.resynced();
    const r = this.#resyncs.run(this.#lastNs);
    this.#o.sink(resyncRecord(this.#o.clock.iso(this.#seenNs()), r), null);
  }

  /** A `lost` line for each loss, dated by the newest event seen. */
  #sayLosses = (losses: readonly StageLoss[]): void => {
    for (const l of losses) {
      this.#o.sink(lostRecord(this.#o.clock.iso(this.#seenNs()), l.count, l.reason), null);
    }
  };

  /**
   * The newest event's time, for a line of proctree's own; now before any event (else such
   * a line would be dated at boot, CLOCK_MONOTONIC's zero).
   */
  #seenNs(): number {
    return this.#lastNs > 0 ? this.#lastNs : this.#o.now();
  }

  #uncountedLoss(): void {
    this.#sayLosses([{ reason: "overrun", count: null }]);
  }

  /** One drained batch, in order; `complete` when the drain left the socket empty. */
  #process(batch: readonly Decoded[], complete: boolean): void {
    const nowMs = this.#o.now() / 1e6;
    const infos = this.#facts.drained(batch, complete, nowMs, this.#sayLosses);
    const overrun = this.#overrunPending;
    this.#overrunPending = false;
    const h = { events: batch, infos, at: 0, stage: 0, drainedMs: nowMs, overrun };
    if (!this.#facts.settles) {
      this.#applyFrom(h, true);
      return;
    }
    this.#hold.push({ ...h, events: batch.slice() }); // the loop reuses its batch array
    this.#release(false);
  }

  /** Applies pending batches in order, as far as their stages allow (all: `force`). */
  #release(force: boolean): void {
    this.#hold.release(this.#o.now() / 1e6, force, (h, waitedOut) => this.#applyFrom(h, waitedOut));
    if (this.#hold.holding) return;
    if (this.#overrunPending) {
      this.#overrunPending = false;
      if (this.#loss.overrun()) this.#uncountedLoss();
    }
    this.#resyncIfDue();
  }

  /** Applies `h` from `h.at`; false when a stage still waits to settle an exec. */
  #applyFrom(h: PendingBatch, waitedOut: boolean): boolean {
    if (h.at === 0 && h.overrun && this.#loss.overrun()) this.#uncountedLoss();
    h.overrun = false;
    const settles = this.#facts.settles;
    for (; h.at < h.events.length; h.at++) {
      const ev = h.events[h.at];
      if (settles && ev.what === "exec") {
        const node = this.#o.tree.get(ev.tgid);
        if (!this.#facts.settle(h, node?.alive ? node.startNs : null, waitedOut)) return false;
      }
      this.#event(ev, h.infos[h.at]);
    }
    this.#stageLines(false, false);
    if (this.#loss.endBatch()) this.#uncountedLoss();
    if (!settles) this.#resyncIfDue();
    return true;
  }

  /** The line stages' lines that are due (`StageLines.print`); not before pending batches. */
  #stageLines(drained: boolean, emptied: boolean): void {
    if (drained && this.#hold.holding) return; // their batch is not applied yet
    this.#lines.print(this.#lastNs, drained, emptied);
  }

  /** One event: loss accounting, then the tree, the selection and the record. */
  #event(ev: Decoded, info: ExecInfo | undefined): void {
    const { clock, sink } = this.#o;
    if (ev.what === "error") {
      this.#counts.malformed++;
      sink({ event: "malformed", time: clock.iso(this.#seenNs()), reason: ev.reason }, null);
      return;
    }
    const gap = this.#loss.observe(ev.cpu, ev.seq);
    if (gap > 0) {
      sink(lostRecord(clock.iso(ev.timestampNs), gap, this.#loss.reason, ev.cpu), null);
      this.#o.tree.lost(ev.timestampNs);
      // A lost exec event would leave a stage's record to the pid's next exec.
      this.#facts.lost();
    }
    if (ev.timestampNs > this.#lastNs) this.#lastNs = ev.timestampNs;
    if (ev.what === "unknown") {
      this.#counts.unknown++;
      sink({ event: "unknown", time: clock.iso(ev.timestampNs), code: ev.code, cpu: ev.cpu }, null);
      return;
    }
    if (ev.what === "ack") return;
    this.#counts.events++;
    this.#apply.apply(ev, info);
  }
}
