/**
 * What a source that refines exec facts plugs into the processor as: a stage. The processor
 * calls every stage for every exec of a batch, in kernel order, after the `/proc` reads;
 * it names no stage and knows nothing of the source behind one.
 *
 * @module
 */

import type { ExecInfo } from "../tree.ts";

/** Events a source lost, said as a `lost` line: why, and how many when it knows. */
export interface StageLoss {
  /** The line's `reason`, e.g. `bpf_ringbuf_full`. */
  reason: string;
  /** How many; null: at least one. */
  count: number | null;
}

/** A source that refines the facts of each exec. */
export interface ExecStage {
  /** Short name, for the listening line (`exec facts: bpf`). */
  readonly name: string;
  /**
   * Takes what the stage's source has queued: called as datagrams are decoded (so the
   * source's own buffer does not fill while a backlog is read) and before each batch.
   */
  poll(): void;
  /** Losses found since the last call, said before the batch that follows them. */
  losses(): StageLoss[];
  /**
   * Whether the stage will give the exec of `pid` at `execNs` its argv, comm, uid, login uid
   * and parent, exactly: `/proc` need not be read for them.
   */
  vouches?(pid: number, execNs: number): boolean;
  /** The facts of the exec of `pid` reported at `execNs` (CLOCK_MONOTONIC), refined. */
  exec(pid: number, execNs: number, facts: ExecInfo): ExecInfo;
  /** Connector events were lost: anything paired by order must not pair across the gap. */
  lost(): void;
  /** Upkeep, once per tick: the newest kernel time applied, in ns. */
  sweep(appliedNs: number): void;
  /** Running totals, named as the stats line prints them (snake_case). */
  counters(): Readonly<Record<string, number>>;
}
