/**
 * The exact-argv stage of the audit source (`--argv audit`): each exec, when it is about to
 * be applied, takes the audit record of its `execve` ({@linkcode AuditJoin} pairs them) —
 * and waits for it, with every event behind it, at most {@linkcode AUDIT_WAIT_MS}: the
 * record is written as the call returns and delivered a little after the connector's event.
 *
 * The record was written before the program could change anything, so what it says wins
 * over what `/proc` showed later (or could not show).
 *
 * @module
 */

import { type ExecStage, LossQueue, type StageLoss, WAIT } from "../../pipeline/stage.ts";
import type { WallClock } from "../../time.ts";
import type { ExecInfo } from "../../tree/tree.ts";
import { AUDIT_WAIT_MS, type AuditJoin } from "./join.ts";
import type { AuditExec } from "./records.ts";

/** Why audit records were lost, as the `lost` line says it. */
export type AuditLossReason = "audit_lost" | "audit_overrun";

/** Gives each exec its audit record's argv, comm, program, uid and directory. */
export class AuditStage implements ExecStage {
  readonly name: string = "audit";
  readonly waitMs: number = AUDIT_WAIT_MS;
  readonly #join: AuditJoin;
  readonly #clock: WallClock;
  readonly #nowNs: () => number;
  readonly #losses = new LossQueue();
  readonly #counts = { execs_argv_from_audit: 0 };

  /**
   * A stage over the records `join` holds (fed by the audit source); `clock` dates exec
   * events in the records' wall time, `nowNs` is CLOCK_MONOTONIC now.
   */
  constructor(join: AuditJoin, clock: WallClock, nowNs: () => number) {
    this.#join = join;
    this.#clock = clock;
    this.#nowNs = nowNs;
  }

  /** The source lost records (`count` when the kernel knows it): said as a `lost` line. */
  recordsLost(reason: AuditLossReason, count: number | null): void {
    this.#losses.add(reason, count);
  }

  losses(): StageLoss[] {
    return this.#losses.take();
  }

  settle(
    pid: number,
    execNs: number,
    startNs: number | null,
    info: ExecInfo,
    waitedOut: boolean,
  ): ExecInfo | typeof WAIT {
    const wallMs = (ns: number) => this.#clock.wallNs(ns) / 1e6;
    const rec = this.#join.match(
      pid,
      wallMs(execNs),
      startNs === null ? -Infinity : wallMs(startNs),
      this.#nowNs() / 1e6,
      waitedOut,
    );
    if (rec === undefined) return WAIT;
    return rec ? this.#audited(info, rec) : info;
  }

  #audited(info: ExecInfo, rec: AuditExec): ExecInfo {
    if (rec.argv !== null) this.#counts.execs_argv_from_audit++;
    return {
      ...info,
      argv: rec.argv ?? info.argv,
      comm: rec.comm ?? info.comm,
      // Audit names the file by the same path: not the program that ran when fanotify saw
      // that path reach another file from here.
      exe: info.exeNotHere ? null : rec.exe ?? info.exe,
      // fanotify's script goes with fanotify's program: not with another one.
      script: rec.exe !== null && info.exe !== null && rec.exe !== info.exe ? null : info.script,
      uid: rec.euid ?? info.uid,
      cwd: rec.cwd ?? info.cwd,
    };
  }

  /** A lost exec event would leave its record to the pid's next exec: pair nothing a while. */
  lost(): void {
    this.#join.lost(this.#nowNs() / 1e6);
  }

  sweep(_appliedNs: number): void {}

  tick(nowMs: number): void {
    this.#join.sweep(nowMs);
  }

  counters(): Readonly<Record<string, number>> {
    return this.#counts;
  }
}
