/**
 * The exec-names stage of the fanotify source: each exec of a drained batch gets the program
 * its `execve` opened ({@linkcode ExecNames} pairs them), checked against what `/proc`
 * showed.
 *
 * Where `/proc` could not be read, fanotify names the program and the script. Where both
 * name it, they must agree: `/proc` may have been read after a later image was installed,
 * and fanotify may have paired a failed exec with one it cannot see (a memfd) — which one
 * is wrong cannot be told, so neither is kept.
 *
 * @module
 */

import type { Decoded } from "../../event/wire.ts";
import { NULL_INFO } from "../../pipeline/exec_reads.ts";
import { type ExecStage, LossQueue, type StageLoss } from "../../pipeline/stage.ts";
import type { ExecInfo } from "../../tree/tree.ts";
import { type ExecName, type ExecNames, NOT_HERE } from "./names.ts";

/**
 * Least time between two sweeps for stale opens, in ms: they are dropped after
 * `STALE_OPENS_MS` (30 s), and a sweep walks every pid with opens — on every tick of a storm
 * it cost 1.3 % of proctree's CPU (`--v8-flags=--prof`, 50 000-exec storm).
 */
export const SWEEP_EVERY_MS = 1000;

/** The counters, as the stats line names them. */
type Counts = {
  execs_named_by_fanotify: number;
  exec_name_conflicts: number;
  execs_not_reachable: number;
};

/** Gives each exec the program fanotify saw its `execve` open. */
export class ExecNamesStage implements ExecStage {
  readonly name: string = "fanotify";
  readonly namesPrograms: boolean = true;
  readonly #names: ExecNames;
  readonly #losses = new LossQueue();
  #batch: ReadonlyMap<number, ExecName> = new Map();
  #sweptMs = -Infinity;
  readonly #counts: Counts = {
    execs_named_by_fanotify: 0,
    exec_name_conflicts: 0,
    execs_not_reachable: 0,
  };

  /** A stage over the opens `names` holds (fed by the fanotify source). */
  constructor(names: ExecNames) {
    this.#names = names;
  }

  /** fanotify's queue overflowed: opens were dropped, and no exec is named from them. */
  overflowed(): void {
    this.#losses.add("fanotify_overflow", null);
  }

  losses(): StageLoss[] {
    return this.#losses.take();
  }

  begin(batch: readonly Decoded[], nowMs: number): void {
    this.#batch = this.#names.resolve(batch, nowMs);
  }

  exec(_pid: number, _execNs: number, info: ExecInfo, index: number): ExecInfo {
    const name = this.#batch.get(index);
    if (!name || info.exeNotHere) return info;
    if (name.exe === NOT_HERE) {
      this.#counts.execs_not_reachable++;
      return { ...info, exe: null, script: null, exeNotHere: true };
    }
    if (info.exe === null) {
      this.#counts.execs_named_by_fanotify++;
      return { ...info, exe: name.exe, script: name.script };
    }
    if (info.exe === name.exe) return { ...info, script: name.script };
    this.#counts.exec_name_conflicts++;
    return NULL_INFO;
  }

  /**
   * Nothing to drop: a pid's attempts are counted against its exec events in one batch, so
   * the opens of a lost exec make the count differ (nothing named), never shift a name.
   */
  lost(): void {}

  sweep(_appliedNs: number): void {}

  tick(nowMs: number): void {
    if (nowMs - this.#sweptMs < SWEEP_EVERY_MS) return;
    this.#sweptMs = nowMs;
    this.#names.sweep(nowMs);
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.#counts, exec_opens_unread: this.#names.stats.unread };
  }
}
