/**
 * The network stage: holds the network source's events until the connector events before
 * them are applied, then hands them on as lines (`connect`, `accept`, `bind`).
 *
 * @module
 */

import type { LineStage, StageLine, StageLoss } from "../../pipeline/stage.ts";
import { decodeNet, type NetEvent, type NetSkip, type NetSyscalls } from "./record.ts";

/** The counters, as the stats line names them. */
interface Counts {
  net_events: number;
  net_disconnects: number;
  net_other_families: number;
  net_accept_again: number;
  net_records_malformed: number;
  net_records_dropped: number;
}

const SKIPPED: Readonly<Record<NetSkip, keyof Counts>> = {
  disconnect: "net_disconnects",
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
  return f;
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
  };

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
    else this.#fresh.push(e);
  }

  losses(): StageLoss[] {
    const drops = this.#drops();
    const count = drops - this.#counts.net_records_dropped;
    this.#counts.net_records_dropped = drops;
    return count > 0 ? [{ reason: "net_ringbuf_full", count }] : [];
  }

  due(appliedNs: number): StageLine[] {
    const out = this.#older;
    this.#older = [];
    const keep: NetEvent[] = [];
    for (const e of this.#fresh) (e.ktimeNs <= appliedNs ? out : keep).push(e);
    this.#fresh = keep;
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

  age(): void {
    this.#older.push(...this.#fresh);
    this.#fresh = [];
  }

  holding(): boolean {
    return this.#fresh.length > 0 || this.#older.length > 0;
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.#counts };
  }
}
