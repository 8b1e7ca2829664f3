/**
 * What a source plugs into the processor as: a stage. An {@linkcode ExecStage} refines the
 * facts of each exec (fanotify's program names, the BPF record, the audit record); a
 * {@linkcode LineStage} adds lines of its own (file changes, connections). The processor
 * calls every stage in kernel order, names none and knows nothing of the source behind one.
 *
 * @module
 */

import type { Decoded } from "../event/wire.ts";
import type { ExecInfo } from "../tree/tree.ts";

/** Events a source lost, said as a `lost` line: why, and how many when it knows. */
export interface StageLoss {
  /** The line's `reason`, e.g. `bpf_ringbuf_full`. */
  reason: string;
  /** How many; null: at least one. */
  count: number | null;
}

/**
 * What {@linkcode ExecStage.settle} answers while the fact it waits for has not arrived:
 * the exec's batch, and every batch after it, wait (at most the stage's `waitMs`).
 */
export const WAIT: unique symbol = Symbol("wait");

/**
 * A source that refines the facts of each exec. The processor calls its stages in order:
 * `exec` when a batch is drained (right after the `/proc` reads), `settle` when the exec
 * is about to be applied — where a stage may make the batch wait for its fact.
 */
export interface ExecStage {
  /** Short name, for the listening line (`exec facts: bpf`). */
  readonly name: string;
  /**
   * Takes what the stage's source has queued: called as datagrams are decoded (so the
   * source's own buffer does not fill while a backlog is read) and before each batch.
   */
  poll?(): void;
  /** Losses found since the last call, said before the batch that follows them. */
  losses(): StageLoss[];
  /**
   * Whether the stage will give the exec of `pid` at `execNs` its argv, comm, uid, login uid
   * and parent, exactly: `/proc` need not be read for them.
   */
  vouches?(pid: number, execNs: number): boolean;
  /**
   * Whether the exec of `pid` at `execNs` runs in the cgroups its creator's container was
   * read from: its container is then its creator's, and `/proc/<pid>/cgroup` need not be read.
   */
  inCreatorsCgroups?(pid: number, execNs: number): boolean;
  /** Whether the stage will give the exec its working directory: `/proc` need not say it. */
  knowsCwd?(pid: number, execNs: number): boolean;
  /** The stage names every exec's program: `/proc/<pid>/exe` is read only if it is cheap. */
  readonly namesPrograms?: boolean;
  /**
   * A drained batch, before its execs' {@linkcode ExecStage.exec} calls (their `index` is
   * into this batch); `nowMs`: CLOCK_MONOTONIC now.
   */
  begin?(batch: readonly Decoded[], nowMs: number): void;
  /**
   * The facts of the exec of `pid` reported at `execNs` (CLOCK_MONOTONIC), refined, when
   * its batch is drained; `index`: the event's place in the batch given to `begin`.
   */
  exec?(pid: number, execNs: number, facts: ExecInfo, index: number): ExecInfo;
  /** Longest a batch waits for {@linkcode ExecStage.settle}, in ms (0: never waits). */
  readonly waitMs?: number;
  /**
   * The facts of the exec of `pid` at `execNs`, by the process that started at `startNs`
   * (null: unknown), when it is about to be applied; {@linkcode WAIT} while its fact may
   * still come — never once `waitedOut`.
   */
  settle?(
    pid: number,
    execNs: number,
    startNs: number | null,
    facts: ExecInfo,
    waitedOut: boolean,
  ): ExecInfo | typeof WAIT;
  /** Connector events were lost: anything paired by order must not pair across the gap. */
  lost(): void;
  /** Upkeep after each drain: the newest kernel time applied, in ns. */
  sweep(appliedNs: number): void;
  /** Upkeep on every tick of the session, drained or not (CLOCK_MONOTONIC ms). */
  tick?(nowMs: number): void;
  /** Running totals, named as the stats line prints them (snake_case). */
  counters(): Readonly<Record<string, number>>;
}

/** Nothing lost: one array for every batch that finds no loss (never written to). */
const NO_LOSSES: StageLoss[] = [];

/** Losses said by a stage's source as they happen, queued until the stage is asked. */
export class LossQueue {
  #queued: StageLoss[] = [];

  /** The source lost events: `count` when it knows, else null. */
  add(reason: string, count: number | null): void {
    this.#queued.push({ reason, count });
  }

  /** What was queued since the last call. */
  take(): StageLoss[] {
    if (this.#queued.length === 0) return NO_LOSSES;
    const out = this.#queued;
    this.#queued = [];
    return out;
  }
}

/**
 * A line a stage adds to the stream: its process, by identity — its start time where the
 * source knows it, else the window in which the pid did what the line says — and its own
 * fields.
 */
export interface StageLine {
  /** CLOCK_MONOTONIC ns of what it reports. */
  timeNs: number;
  /** The process it is about. */
  pid: number;
  /** That process's start, in clock ticks since boot: who it was. */
  startTicks?: number;
  /**
   * Without `startTicks`: after the first and no later than the second (CLOCK_MONOTONIC
   * ns), the pid was this line's process — the one that held it then, if only one did.
   */
  heldNs?: readonly [number, number];
  /** The line's `event`. */
  event: string;
  /** Fields printed before the process's (a file line's action and path). */
  lead?: Record<string, unknown>;
  /** Its other fields, in print order (after the process's). */
  fields: Record<string, unknown>;
}

/**
 * A source that adds lines of its own (a process's network connections, file changes). Its
 * lines are printed after the connector events that precede them, each with its process
 * from the tree — only the one its start time or its window names, never another.
 */
export interface LineStage {
  /** Short name, for the listening line. */
  readonly name: string;
  /** Losses found since the last call, said as `lost` lines. */
  losses(): StageLoss[];
  /**
   * The lines due, oldest first: those no later than `appliedNs` (the newest connector
   * event applied: the process's fork is in the tree by then), and — when `held` (a drain
   * has emptied the connector since) — those held since the last {@linkcode LineStage.age}.
   */
  due(appliedNs: number, held: boolean): StageLine[];
  /**
   * After each drain: what is still held waits one drain more at most; `appliedNs` as for
   * {@linkcode LineStage.due}, for the stage's own upkeep.
   */
  age(appliedNs: number): void;
  /** Whether lines are held (the loop comes back for them). */
  holding(): boolean;
  /** Running totals, named as the stats line prints them (snake_case). */
  counters(): Readonly<Record<string, number>>;
}
