/**
 * Pairs the connector's exec events with the audit stream's exec records, by pid and order
 * — never by guess.
 *
 * The kernel sends the connector's exec event during `execve` and queues the audit records
 * when the call returns, to be delivered by a kernel thread (`kauditd`): the record of an
 * exec always comes after its event, a little later. So an exec waits (up to
 * {@linkcode AUDIT_WAIT_MS}) for its record. The records of one pid arrive in the order of
 * its calls, and each exec event takes the oldest record of its pid — if that record's
 * call began no later than the exec event (the record's time is the call's entry, to a
 * clock tick); a record that began later belongs to a later exec, and this one has none
 * (a process older than auditing has no audit context: none of its execs are recorded).
 * Records that began before the process was created belong to an earlier process on the
 * pid, and are dropped.
 *
 * A lost record would shift that order, so after any loss (the kernel's `lost` counter
 * grew, the socket overran, or connector events were lost) every held record is dropped
 * and nothing is paired for {@linkcode AUDIT_BLIND_MS}: those execs fall back to `/proc`.
 *
 * @module
 */

import type { AuditExec } from "./records.ts";

/** Longest an exec event waits for its audit record, in ms. */
export const AUDIT_WAIT_MS = 500;
/** After a loss, nothing is paired for this long, in ms. */
export const AUDIT_BLIND_MS = 2_000;
/**
 * Slack between the record's entry time and the exec event's wall time, in ms: the
 * record's time is truncated to the ms, and the wall/monotonic offset is re-measured
 * once a second.
 */
export const AUDIT_SLACK_MS = 5;
/**
 * How far a record's time may lag its call: the clock it reads advances once per tick
 * (10 ms at the lowest common `HZ`, 100), in ms.
 */
export const AUDIT_TICK_MS = 20;
/** Records no exec event claimed are dropped after this long, in ms. */
export const AUDIT_STALE_MS = 30_000;

/** Counters. */
export interface AuditJoinStats {
  /** Exec events given their audit record. */
  paired: number;
  /** Exec events that waited in vain (no record within the wait, or none of theirs). */
  unpaired: number;
  /** Exec events not paired because of a recent loss. */
  blind: number;
  /** Records no exec event claimed. */
  unclaimed: number;
}

/** The answer for one exec event: its record, none (null), or wait (undefined). */
export type AuditMatch = AuditExec | null | undefined;

/** Holds records per pid until their exec events claim them; see the module doc. */
export class AuditJoin {
  #byPid = new Map<number, { records: AuditExec[]; lastMs: number }>();
  #blindUntilMs = -Infinity;
  /** Running totals. */
  readonly stats: AuditJoinStats = { paired: 0, unpaired: 0, blind: 0, unclaimed: 0 };

  /** A record arrived (`nowMs`: the caller's clock). */
  add(rec: AuditExec, nowMs: number): void {
    const q = this.#byPid.get(rec.pid);
    if (q) {
      q.records.push(rec);
      q.lastMs = nowMs;
    } else this.#byPid.set(rec.pid, { records: [rec], lastMs: nowMs });
  }

  /** Records may have been lost: drop every held one, pair nothing for a while. */
  lost(nowMs: number): void {
    for (const q of this.#byPid.values()) this.stats.unclaimed += q.records.length;
    this.#byPid.clear();
    this.#blindUntilMs = nowMs + AUDIT_BLIND_MS;
  }

  /** Whether a loss was recent enough that nothing is paired. */
  blind(nowMs: number): boolean {
    return nowMs < this.#blindUntilMs;
  }

  /**
   * The record of the exec event of `pid` at wall time `execMs`, by a process created at
   * wall time `startMs` (-Infinity: unknown); `waitedOut`: its wait is over (answer null
   * rather than wait).
   */
  match(
    pid: number,
    execMs: number,
    startMs: number,
    nowMs: number,
    waitedOut: boolean,
  ): AuditMatch {
    if (this.blind(nowMs)) {
      this.stats.blind++;
      return null;
    }
    const q = this.#byPid.get(pid);
    while (q && q.records.length > 0 && q.records[0].timeMs < startMs - AUDIT_TICK_MS) {
      q.records.shift(); // an earlier process's
      this.stats.unclaimed++;
    }
    const head = q?.records[0];
    if (!head) {
      if (!waitedOut) return undefined;
      this.stats.unpaired++;
      return null;
    }
    if (head.timeMs > execMs + AUDIT_SLACK_MS) {
      this.stats.unpaired++; // a later call's record: this exec has none
      return null;
    }
    q!.records.shift();
    if (q!.records.length === 0) this.#byPid.delete(pid);
    this.stats.paired++;
    return head;
  }

  /** Drops records nobody claimed. */
  sweep(nowMs: number): void {
    for (const [pid, q] of this.#byPid) {
      if (nowMs - q.lastMs > AUDIT_STALE_MS) {
        this.stats.unclaimed += q.records.length;
        this.#byPid.delete(pid);
      }
    }
  }
}
