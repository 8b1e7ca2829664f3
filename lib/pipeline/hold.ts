/**
 * Batches held for a stage that settles execs late (the audit record comes a little after
 * the connector's event): kernel order is kept — a held batch holds every batch after it —
 * and each waits at most the stages' `waitMs`.
 *
 * @module
 */

import type { FactBatch } from "./exec_facts.ts";

/** A drained batch that waits for a stage to settle an exec, or is being applied. */
export interface PendingBatch extends FactBatch {
  /** When it was drained (CLOCK_MONOTONIC ms). */
  drainedMs: number;
  /** An overrun came before this batch. */
  overrun: boolean;
}

/** The batches held, oldest first. */
export class BatchHold {
  #pending: PendingBatch[] = [];
  readonly #waitMs: number;

  /** Each batch waits at most `waitMs`. */
  constructor(waitMs: number) {
    this.#waitMs = waitMs;
  }

  /** Whether a batch is held (a resync waits: they describe the time before `/proc` now). */
  get holding(): boolean {
    return this.#pending.length > 0;
  }

  /** Holds `b` behind the others. */
  push(b: PendingBatch): void {
    this.#pending.push(b);
  }

  /** In how many ms the oldest batch stops waiting; null when none is held. */
  dueInMs(nowMs: number): number | null {
    const b = this.#pending[0];
    return b ? Math.max(0, b.drainedMs + this.#waitMs - nowMs) : null;
  }

  /**
   * Applies the held batches in order while `apply` finishes them (`waitedOut`: the batch
   * has waited long enough, or `force`).
   */
  release(
    nowMs: number,
    force: boolean,
    apply: (b: PendingBatch, waitedOut: boolean) => boolean,
  ): void {
    while (this.#pending.length > 0) {
      const b = this.#pending[0];
      if (!apply(b, force || nowMs - b.drainedMs >= this.#waitMs)) return;
      this.#pending.shift();
    }
  }
}
