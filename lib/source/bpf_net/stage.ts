/**
 * The network stage: holds the network source's events until the connector events before
 * them are applied, then hands them on as lines (`connect`, `accept`, `bind`), and pairs a
 * TCP connect that returned `EINPROGRESS` with how it ended (a `connect_result` line), by
 * its socket: a socket in `SYN_SENT` is alive, so its address names no other meanwhile.
 *
 * @module
 */

import type { LineStage, StageLine, StageLoss } from "../../pipeline/stage.ts";
import {
  decodeNet,
  type NetDisconnect,
  type NetEvent,
  type NetOutcome,
  type NetSkip,
  type NetSyscalls,
} from "./record.ts";

/** Longest a connect in progress waits for its outcome (TCP gives up after about 130 s). */
export const OUTCOME_WAIT_NS = 180e9;

/** Most connects in progress waited for; beyond, the oldest are given up (counted). */
export const MAX_WAITING_CONNECTS = 65536;

/** The counters, as the stats line names them. */
interface Counts {
  net_events: number;
  net_disconnects: number;
  net_other_families: number;
  net_accept_again: number;
  net_records_malformed: number;
  net_records_dropped: number;
  net_outcomes_unknown: number;
}

const SKIPPED: Readonly<Record<NetSkip, keyof Counts>> = {
  other_family: "net_other_families",
  accept_again: "net_accept_again",
};

/** The fields of a line, in print order. */
export function netFields(e: NetEvent): Record<string, unknown> {
  const f: Record<string, unknown> = { family: e.family, protocol: e.protocol };
  if (e.family === "unix") f.path = e.path;
  else {
    f.address = e.address;
    f.port = e.port;
    if (e.event !== "bind") {
      f.local_address = e.localAddress;
      f.local_port = e.localPort;
    }
  }
  if (e.tid !== e.pid) f.tid = e.tid;
  f.result = e.result;
  if (e.probe) f.probe = true;
  return f;
}

/** The `connect_result` of `e`: `result`, at `timeNs`, where it connected from if known. */
function resultOf(
  e: NetEvent,
  result: string,
  timeNs: number,
  o: NetOutcome | null,
): NetEvent {
  const local = o?.localPort ? { localAddress: o.localAddress, localPort: o.localPort } : {};
  return { ...e, ...local, event: "connect_result", result, ktimeNs: timeNs, outcome: undefined };
}

/** See the module doc. */
export class NetStage implements LineStage {
  readonly name = "net";
  readonly #calls: NetSyscalls;
  readonly #drops: () => number;
  /** Taken since the last {@linkcode age}, and held across one. */
  #fresh: NetEvent[] = [];
  #older: NetEvent[] = [];
  readonly #counts: Counts = {
    net_events: 0,
    net_disconnects: 0,
    net_other_families: 0,
    net_accept_again: 0,
    net_records_malformed: 0,
    net_records_dropped: 0,
    net_outcomes_unknown: 0,
  };
  /** Connects in progress by socket, until their outcome. */
  readonly #waiting = new Map<bigint, NetEvent>();
  /** Outcomes not yet paired, taken since the last age, and held across one. */
  #outcomes: NetOutcome[] = [];
  #oldOutcomes: NetOutcome[] = [];

  /** A stage for records of `calls`; `drops` reads the ring buffer's drop count. */
  constructor(calls: NetSyscalls, drops: () => number) {
    this.#calls = calls;
    this.#drops = drops;
  }

  /** Takes one record (a view valid during the call). */
  add(record: Uint8Array): void {
    const e = decodeNet(record, this.#calls);
    if (e === null) this.#counts.net_records_malformed++;
    else if (typeof e === "string") this.#counts[SKIPPED[e]]++;
    else if ("kind" in e && e.kind === "disconnect") this.#disconnected(e);
    else if ("kind" in e) this.#outcomes.push(e);
    else {
      this.#fresh.push(e);
      if (e.outcome) this.#fresh.push(resultOf(e, e.outcome, e.ktimeNs, null));
      else if (e.outcome === null) this.#wait(e);
    }
  }

  /** A socket let go of its peer: its UDP connect, if not printed yet, was a probe. */
  #disconnected(d: NetDisconnect): void {
    this.#counts.net_disconnects++;
    if (d.sk === 0n) return;
    for (const held of [this.#fresh, this.#older]) {
      for (let i = held.length - 1; i >= 0; i--) {
        const e = held[i];
        if (e.sk !== d.sk || e.pid !== d.pid || e.event !== "connect") continue;
        if (e.protocol === "udp" && !e.probe) e.probe = true;
        return;
      }
    }
  }

  #wait(e: NetEvent): void {
    if (this.#waiting.size >= MAX_WAITING_CONNECTS) {
      const oldest = this.#waiting.keys().next().value!;
      this.#waiting.delete(oldest);
      this.#counts.net_outcomes_unknown++;
    }
    this.#waiting.set(e.sk, e);
  }

  /**
   * Outcomes paired with their connects (an outcome later than the connect's return; an
   * earlier one is of a socket that was at that address before). One not paired waits one
   * drain for its connect, then is dropped: most are of blocking connects, whose result
   * their own line has.
   */
  #pair(): void {
    for (const o of this.#oldOutcomes) this.#paired(o);
    this.#oldOutcomes = [];
    this.#outcomes = this.#outcomes.filter((o) => !this.#paired(o));
  }

  /** Whether `o` ended a connect in progress (its line is then queued). */
  #paired(o: NetOutcome): boolean {
    const e = this.#waiting.get(o.sk);
    if (!e || o.ktimeNs <= e.ktimeNs) return false;
    this.#waiting.delete(o.sk);
    this.#fresh.push(resultOf(e, o.result, o.ktimeNs, o));
    return true;
  }

  losses(): StageLoss[] {
    const drops = this.#drops();
    const count = drops - this.#counts.net_records_dropped;
    this.#counts.net_records_dropped = drops;
    return count > 0 ? [{ reason: "net_ringbuf_full", count }] : [];
  }

  due(appliedNs: number, held = true): StageLine[] {
    // Called after every batch: nothing held, nothing to sort, pair or map.
    if (!this.holding() && this.#outcomes.length === 0 && this.#oldOutcomes.length === 0) {
      return [];
    }
    this.#pair();
    // What was held across a drain is due when that drain emptied the connector; either way
    // a held line as early as a fresh one due now goes with it, never after it.
    const out: NetEvent[] = [];
    this.#older = this.#split(this.#older, held ? Infinity : appliedNs, out);
    this.#fresh = this.#split(this.#fresh, appliedNs, out);
    out.sort((a, b) => a.ktimeNs - b.ktimeNs);
    this.#counts.net_events += out.length;
    return out.map((e) => ({
      timeNs: e.ktimeNs,
      pid: e.pid,
      startTicks: e.startTicks,
      event: e.event,
      fields: netFields(e),
    }));
  }

  /** Moves the events of `from` at or before `untilNs` to `out`; returns the rest. */
  #split(from: NetEvent[], untilNs: number, out: NetEvent[]): NetEvent[] {
    const keep: NetEvent[] = [];
    for (const e of from) (e.ktimeNs <= untilNs ? out : keep).push(e);
    return keep;
  }

  age(appliedNs: number): void {
    // Not push(...fresh): a spread of tens of thousands of records overflows the stack.
    this.#older = this.#older.length ? this.#older.concat(this.#fresh) : this.#fresh;
    this.#fresh = [];
    this.#oldOutcomes = this.#outcomes;
    this.#outcomes = [];
    // Connects in progress for longer than OUTCOME_WAIT_NS are given up, oldest first.
    for (const [sk, e] of this.#waiting) {
      if (appliedNs - e.ktimeNs < OUTCOME_WAIT_NS) break; // oldest first
      this.#waiting.delete(sk);
      this.#counts.net_outcomes_unknown++;
    }
  }

  holding(): boolean {
    return this.#fresh.length > 0 || this.#older.length > 0;
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.#counts };
  }
}
