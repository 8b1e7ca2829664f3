/**
 * Loss accounting: how many kernel events this listener did not receive, and whether the
 * tree must be reconciled with `/proc`. Exact from `cn_msg.seq` gaps (see `seq.ts`); when
 * the kernel filters events (with `--events`, where the kernel can), gaps are not losses and an
 * overrun can only be reported as "at least one".
 *
 * @module
 */

import { SeqTracker } from "./seq.ts";

/** Why events were lost, as `lost` lines say it. */
export type LossReason = "overrun" | "seq_gap";

/** Counts losses per batch; the processor turns its answers into `lost` lines. */
export class LossAccounting {
  /** Events counted lost, in total. */
  lost = 0;
  /** Overruns whose size could not be known (and no later gap counted). */
  uncounted = 0;
  /** Something was lost since the last resync. */
  needResync = false;
  #kernelFilter: boolean;
  #seq = new SeqTracker();
  #overrunPending = false;
  #lostInBatch = 0;
  /** Uncounted reports no gap has accounted for yet. */
  #uncountedOpen = 0;

  /** `kernelFilter`: the kernel filters events, so seq gaps are not losses. */
  constructor(kernelFilter: boolean) {
    this.#kernelFilter = kernelFilter;
  }

  /**
   * The kernel reported an overrun (ENOBUFS). Returns true when its size can never be
   * known (kernel filter on): report an uncounted loss now.
   */
  overrun(): boolean {
    this.#overrunPending = true;
    this.needResync = true;
    if (this.#kernelFilter) this.uncounted++;
    return this.#kernelFilter;
  }

  /** Events `cpu` sent before `seq` that never arrived (0 with the kernel filter). */
  observe(cpu: number, seq: number): number {
    if (this.#kernelFilter) return 0;
    const gap = this.#seq.observe(cpu, seq);
    if (gap > 0) {
      this.lost += gap;
      this.#lostInBatch += gap;
      this.needResync = true;
      // A gap that shows up after an "at least one" report is that loss, now counted.
      if (this.#uncountedOpen > 0) {
        this.#uncountedOpen--;
        this.uncounted--;
      }
    }
    return gap;
  }

  /** What a gap seen now is attributed to. */
  get reason(): LossReason {
    return this.#overrunPending ? "overrun" : "seq_gap";
  }

  /**
   * End of a batch. True when an overrun was reported but no gap showed it (the CPUs that
   * lost events have been quiet since): report it now, uncounted, rather than possibly never.
   */
  endBatch(): boolean {
    const unseen = this.#overrunPending && this.#lostInBatch === 0 && !this.#kernelFilter;
    if (unseen) {
      this.uncounted++;
      this.#uncountedOpen++;
    }
    this.#lostInBatch = 0;
    return unseen;
  }

  /** The tree was reconciled: later gaps are new losses. */
  resynced(): void {
    this.needResync = false;
    this.#overrunPending = false;
  }
}
