/**
 * Loss accounting from `cn_msg.seq`. The kernel numbers every proc event per CPU
 * (`send_msg` in `drivers/connector/cn_proc.c`), so a jump on one CPU is the exact number
 * of events that CPU sent and this socket did not receive.
 *
 * @module
 */

/** Tracks the last sequence number seen per CPU. */
export class SeqTracker {
  #last: number[] = [];

  /**
   * Records `seq` from `cpu` and returns how many events of that CPU were skipped since
   * the previous one (0 for the first event of a CPU, for duplicates and for reordering).
   */
  observe(cpu: number, seq: number): number {
    const last = this.#last[cpu];
    if (cpu < 0 || cpu > 65535) return 0;
    if (last === undefined) {
      this.#last[cpu] = seq;
      return 0;
    }
    const gap = (seq - last - 1) >>> 0;
    if (gap >= 0x80000000) return 0; // behind the last one: a duplicate or reordering
    this.#last[cpu] = seq;
    return gap;
  }
}
