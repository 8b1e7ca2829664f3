/**
 * The facts of each exec, from every place that has them: the `/proc` reads made as the
 * events are decoded (`exec_reads.ts`), then each {@linkcode ExecStage} in order — when
 * the batch is drained (`exec`) and, for a stage whose fact comes later (the audit record),
 * when the exec is about to be applied (`settle`, which may make it wait).
 *
 * @module
 */

import type { Decoded } from "../event/wire.ts";
import type { ProcReader } from "../tree/proc_parse.ts";
import type { ExecInfo } from "../tree/tree.ts";
import { ExecReads } from "./exec_reads.ts";
import { type ExecStage, type StageLoss, WAIT } from "./stage.ts";

/** An exec event of a batch. */
type ExecEvent = Extract<Decoded, { what: "exec" }>;

/** A batch being applied, with the facts of its execs. */
export interface FactBatch {
  readonly events: readonly Decoded[];
  /** The facts of each exec, by index: as drained, then as settled so far. */
  infos: (ExecInfo | undefined)[];
  /** The next event to apply. */
  at: number;
  /** The next stage to settle the exec at `at`. */
  stage: number;
}

/** Whether some stage's `ask` says yes for an exec; undefined when no stage can say. */
function anyStage(
  stages: readonly ExecStage[],
  of: (s: ExecStage) => ((pid: number, execNs: number) => boolean) | undefined,
): ((pid: number, execNs: number) => boolean) | undefined {
  const asks = stages.filter((s) => of(s)).map((s) => of(s)!.bind(s));
  if (asks.length === 0) return undefined;
  if (asks.length === 1) return asks[0];
  // A loop, not `some` with a closure: this runs for every exec, up to three times.
  return (pid, ns) => {
    for (let i = 0; i < asks.length; i++) if (asks[i](pid, ns)) return true;
    return false;
  };
}

/** The exec facts of a batch, from `/proc` and the stages. */
export class ExecFacts {
  readonly #stages: readonly ExecStage[];
  readonly #settling: readonly ExecStage[];
  readonly #reads: ExecReads;
  /** Longest a batch waits for the stages that settle execs late, in ms. */
  readonly waitMs: number;

  /** `now`: CLOCK_MONOTONIC in ns. */
  constructor(reader: ProcReader, now: () => number, stages: readonly ExecStage[]) {
    this.#stages = stages;
    this.#settling = stages.filter((s) => s.settle);
    this.waitMs = Math.max(0, ...this.#settling.map((s) => s.waitMs ?? 0));
    this.#reads = new ExecReads(
      reader,
      now,
      anyStage(stages, (s) => s.vouches),
      stages.some((s) => s.namesPrograms),
      {
        inCreatorsCgroups: anyStage(stages, (s) => s.inCreatorsCgroups),
        knowsCwd: anyStage(stages, (s) => s.knowsCwd),
      },
    );
  }

  /** Whether a stage settles execs late: batches are then held until it has. */
  get settles(): boolean {
    return this.#settling.length > 0;
  }

  /** `batch[from…]` were just decoded: the stages' records first, then `/proc` for the rest. */
  decoded(batch: readonly Decoded[], from: number, storm = false): void {
    // A stage that has an exec's facts spares its /proc reads.
    for (const s of this.#stages) s.poll?.();
    this.#reads.readNew(batch, from, storm);
  }

  /**
   * The facts of each exec of a drained batch, by index (`complete`: the drain left the
   * socket empty); the stages' losses found meanwhile go to `say` first.
   */
  drained(
    batch: readonly Decoded[],
    complete: boolean,
    nowMs: number,
    say: (losses: StageLoss[]) => void,
  ): (ExecInfo | undefined)[] {
    this.#reads.begin(batch, complete);
    for (const s of this.#stages) {
      s.poll?.();
      say(s.losses());
      s.begin?.(batch, nowMs);
    }
    const infos: (ExecInfo | undefined)[] = [];
    for (let i = 0; i < batch.length; i++) {
      const ev = batch[i];
      if (ev.what !== "exec") continue;
      let info = this.#reads.take(i, ev.tgid, ev.timestampNs);
      for (const s of this.#stages) if (s.exec) info = s.exec(ev.tgid, ev.timestampNs, info, i);
      infos[i] = info;
    }
    this.#reads.end();
    return infos;
  }

  /**
   * Settles the exec at `b.at` (`startNs`: its process's start, null unknown) with the
   * stages from the `b.stage`-th on, keeping its facts in `b.infos`; false when a stage
   * waits (`b.stage` is then where to go on).
   */
  settle(b: FactBatch, startNs: number | null, waitedOut: boolean): boolean {
    const ev = b.events[b.at] as ExecEvent;
    for (; b.stage < this.#settling.length; b.stage++) {
      const s = this.#settling[b.stage];
      const info = s.settle!(ev.tgid, ev.timestampNs, startNs, b.infos[b.at]!, waitedOut);
      if (info === WAIT) return false;
      b.infos[b.at] = info;
    }
    b.stage = 0;
    return true;
  }

  /** Connector events were lost: no stage pairs across the gap. */
  lost(): void {
    for (const s of this.#stages) s.lost();
  }

  /** After each drain: the newest kernel time applied, in ns. */
  sweep(appliedNs: number): void {
    for (const s of this.#stages) s.sweep(appliedNs);
  }

  /** On every tick of the session (CLOCK_MONOTONIC ms). */
  tick(nowMs: number): void {
    for (const s of this.#stages) s.tick?.(nowMs);
  }
}
