/**
 * Turns batches of decoded events into output records: loss accounting, `/proc`
 * enrichment of execs, tree updates, chains, filters and resync after losses.
 *
 * A batch is everything one drain of the socket returned. An exec's `/proc/<pid>` is read the
 * moment its datagram is decoded (`decoded()`), because a process that lives a millisecond
 * is gone by the end of a large batch. A read is kept only when it provably describes that
 * exec: the batch must contain every event up to the read (the drain ended on an empty
 * socket, or later events were already queued), and none of them may be another exec or a
 * new process on the same pid before the read. Otherwise the fields are null.
 *
 * @module
 */

import type { Decoded, ProcEvent } from "./wire.ts";
import { SeqTracker } from "./seq.ts";
import { type ProcReader, snapshot } from "./procfs.ts";
import type { ExecInfo, PidTree, ProcNode } from "./tree.ts";
import { formatChain, type RecordKind, type WatchRecord } from "./record.ts";
import type { Users } from "./users.ts";
import type { WallClock } from "./time.ts";
import { decodeWaitStatus } from "./wait_status.ts";
import { decodeBytes } from "./text.ts";
import type { LoopHandlers } from "./loop.ts";

/** Receives each record that passes the filters, with the tree node it is about. */
export type RecordSink = (rec: WatchRecord, node: ProcNode | null) => void;

/** Selects processes for `--under`, `--user` and `--comm`. */
export interface ProcessFilter {
  /** Keep processes that are, or descend from, a node matching one of these. */
  under?: ((n: ProcNode) => boolean)[];
  /** Keep processes whose effective uid is one of these. */
  uids?: Set<number>;
  /** Keep processes whose comm is one of these. */
  comms?: Set<string>;
}

/** Options of {@linkcode EventProcessor}. */
export interface ProcessorOptions {
  tree: PidTree;
  reader: ProcReader;
  users: Users;
  clock: WallClock;
  sink: RecordSink;
  /** CLOCK_MONOTONIC now, in ns (reads are dated with it). */
  now: () => number;
  /** Event names to print; undefined: all. lost, resync, malformed and unknown always print. */
  events?: Set<string>;
  /** Report thread creation, thread exits and per-thread id/comm changes. */
  threads?: boolean;
  filter?: ProcessFilter;
  /** Add `chain` to every event (default true). */
  chains?: boolean;
  /** The kernel filters events, so seq gaps are not losses. */
  kernelFilter?: boolean;
}

/** Running totals. */
export interface ProcessorCounters {
  events: number;
  lost: number;
  /** Overruns reported by the kernel while seq gaps were not usable (count unknown). */
  overrunsUncounted: number;
  malformed: number;
  unknown: number;
  resyncs: number;
  execsUnreadable: number;
}

/** Slack for the enqueue of an event after its timestamp was taken on another CPU. */
const READ_MARGIN_NS = 200_000;

interface EarlyRead {
  info: ExecInfo;
  /** CLOCK_MONOTONIC time of the read. */
  readNs: number;
}

const NULL_INFO: ExecInfo = {
  comm: null,
  argv: null,
  exe: null,
  uid: null,
  ppid: null,
  startTicks: null,
};

/** The event pipeline shared by `watch`, `run` and the library. */
export class EventProcessor {
  readonly counters: ProcessorCounters = {
    events: 0,
    lost: 0,
    overrunsUncounted: 0,
    malformed: 0,
    unknown: 0,
    resyncs: 0,
    execsUnreadable: 0,
  };
  #o: ProcessorOptions;
  #seq = new SeqTracker();
  /** Early `/proc` reads of this batch's execs, by batch index. */
  #early: (EarlyRead | undefined)[] = [];
  /** Per pid: timestamps of the batch's execs and new processes (conflicts for reads). */
  #changes = new Map<number, number[]>();
  #overrunPending = false;
  #needResync = false;
  #chains: boolean;
  /** Newest kernel timestamp seen: the time of lines that have none of their own. */
  #lastNs = 0;

  /** Events counted lost in the current batch (to tell whether an overrun was accounted). */
  #lostInBatch = 0;

  constructor(options: ProcessorOptions) {
    this.#o = options;
    this.#chains = options.chains ?? true;
  }

  /** The processor's part of `runLoop`'s handlers: early reads, batches, overruns. */
  loopHandlers(): Pick<LoopHandlers, "decoded" | "batch" | "overrun"> {
    return {
      decoded: (b, from) => this.decoded(b, from),
      batch: (b, complete) => this.process(b, complete),
      overrun: () => this.overrun(),
    };
  }

  /** The kernel reported an overrun: events were dropped before the next datagram. */
  overrun(): void {
    this.#overrunPending = true;
    this.#needResync = true;
    if (this.#o.kernelFilter) this.#uncountedLoss();
  }

  /** An overrun whose size cannot be known: `count: null`, meaning at least one. */
  #uncountedLoss(): void {
    this.counters.overrunsUncounted++;
    this.#emit({
      event: "lost",
      time: this.#o.clock.iso(this.#lastNs),
      count: null,
      reason: "overrun",
    }, null);
  }

  /**
   * Reads `/proc` for the execs among `batch[from…]`, just decoded. Call it after each
   * datagram is decoded, before the rest of the socket is drained.
   */
  decoded(batch: readonly Decoded[], from: number): void {
    for (let i = from; i < batch.length; i++) {
      const ev = batch[i];
      if (ev.what === "exec") this.#early[i] = { info: this.#read(ev.tgid), readNs: this.#o.now() };
    }
  }

  /**
   * Processes one drained batch, in order, then resyncs the tree if anything was lost.
   * `complete`: the drain stopped because the socket was empty (not at a size cap).
   */
  process(batch: readonly Decoded[], complete = true): void {
    this.#indexChanges(batch);
    let lastNs = 0;
    for (const ev of batch) {
      if (ev.what !== "error" && ev.timestampNs > lastNs) lastNs = ev.timestampNs;
    }
    for (let i = 0; i < batch.length; i++) {
      const ev = batch[i];
      let info: ExecInfo | undefined;
      if (ev.what === "exec") {
        // Without an early read (decoded() not called) nothing can vouch for a read now.
        const early = this.#early[i];
        info = early && this.#valid(ev.tgid, ev.timestampNs, early, complete, lastNs)
          ? early.info
          : NULL_INFO;
        if (info === NULL_INFO) this.counters.execsUnreadable++;
      }
      this.#one(ev, info);
    }
    this.#early.length = 0;
    if (this.#overrunPending && this.#lostInBatch === 0 && !this.#o.kernelFilter) {
      // ENOBUFS without a visible gap yet (the CPUs that lost events have been quiet
      // since): say so now, uncounted, rather than possibly never.
      this.#uncountedLoss();
    }
    this.#lostInBatch = 0;
    if (this.#needResync) this.resync();
  }

  /** Reconciles the tree with `/proc` and prints a `resync` line. */
  resync(): void {
    this.#needResync = false;
    this.#overrunPending = false;
    const entries = snapshot(this.#o.reader);
    const r = this.#o.tree.resync(entries, this.#lastNs);
    this.counters.resyncs++;
    this.#emit({
      event: "resync",
      time: this.#o.clock.iso(this.#lastNs),
      added: r.added,
      removed: r.removed,
    }, null);
  }

  #indexChanges(batch: readonly Decoded[]): void {
    const changes = this.#changes;
    changes.clear();
    for (const ev of batch) {
      if (ev.what === "exec" || (ev.what === "fork" && ev.pid === ev.tgid)) {
        const list = changes.get(ev.tgid);
        if (list) list.push(ev.timestampNs);
        else changes.set(ev.tgid, [ev.timestampNs]);
      }
    }
  }

  /** Whether a read of `pid` at `readNs` can only describe the exec at `execNs`. */
  #valid(pid: number, execNs: number, read: EarlyRead, complete: boolean, lastNs: number): boolean {
    const readNs = read.readNs;
    // Every event up to the read must be in this batch…
    if (!complete && lastNs < readNs + READ_MARGIN_NS) return false;
    // …and none of them may replace the process image or the process behind the pid.
    for (const ts of this.#changes.get(pid) ?? []) {
      if (ts > execNs && ts <= readNs + READ_MARGIN_NS) return false;
    }
    return true;
  }

  #emit(rec: WatchRecord, node: ProcNode | null): void {
    this.#o.sink(rec, node);
  }

  #wanted(kind: RecordKind, node: ProcNode | null): boolean {
    const ev = this.#o.events;
    if (ev && !ev.has(kind)) return false;
    const f = this.#o.filter;
    if (!f) return true;
    if (!node) return !f.under && !f.uids && !f.comms;
    if (f.uids && (node.uid === null || !f.uids.has(node.uid))) return false;
    if (f.comms && (node.comm === null || !f.comms.has(node.comm))) return false;
    if (f.under) {
      const under = f.under;
      if (!this.#o.tree.isUnder(node, (n) => under.some((m) => m(n)))) return false;
    }
    return true;
  }

  #base(kind: RecordKind, ev: ProcEvent, node: ProcNode | null): WatchRecord {
    const rec: WatchRecord = { event: kind, time: this.#o.clock.iso(ev.timestampNs), pid: ev.tgid };
    if (ev.pid !== ev.tgid) rec.tid = ev.pid;
    if (node) {
      rec.ppid = node.ppid || null;
      rec.comm = node.comm;
    }
    return rec;
  }

  #finish(rec: WatchRecord, node: ProcNode | null): void {
    if (node) {
      rec.user = this.#o.users.name(node.uid);
      if (this.#chains) rec.chain = formatChain(this.#o.tree.chain(node), this.#o.users);
    }
    this.#emit(rec, node);
  }

  #one(ev: Decoded, info: ExecInfo | undefined): void {
    if (ev.what === "error") {
      this.counters.malformed++;
      this.#emit(
        { event: "malformed", time: this.#o.clock.iso(this.#lastNs), reason: ev.reason },
        null,
      );
      return;
    }
    if (!this.#o.kernelFilter) {
      const gap = this.#seq.observe(ev.cpu, ev.seq);
      if (gap > 0) {
        this.counters.lost += gap;
        this.#lostInBatch += gap;
        this.#needResync = true;
        this.#emit({
          event: "lost",
          time: this.#o.clock.iso(ev.timestampNs),
          count: gap,
          reason: this.#overrunPending ? "overrun" : "seq_gap",
          cpu: ev.cpu,
        }, null);
      }
    }
    if (ev.timestampNs > this.#lastNs) this.#lastNs = ev.timestampNs;
    if (ev.what === "unknown") {
      this.counters.unknown++;
      this.#emit({
        event: "unknown",
        time: this.#o.clock.iso(ev.timestampNs),
        code: ev.code,
        cpu: ev.cpu,
      }, null);
      return;
    }
    if (ev.what === "ack") return;
    this.counters.events++;
    const tree = this.#o.tree;
    const isProcess = ev.pid === ev.tgid;
    if (!isProcess && !this.#o.threads) {
      if (ev.what === "exec" || ev.what === "ptrace" || ev.what === "coredump") {
        // Process-wide facts reported from a thread: fall through under the process.
      } else return;
    }
    switch (ev.what) {
      case "fork": {
        if (!isProcess) {
          const node = tree.get(ev.tgid) ?? null;
          if (this.#wanted("fork", node)) this.#finish(this.#base("fork", ev, node), node);
          return;
        }
        const node = tree.fork(ev.pid, ev.parentTgid, ev.timestampNs);
        if (!this.#wanted("fork", node)) return;
        const rec = this.#base("fork", ev, node);
        rec.ppid = ev.parentTgid;
        this.#finish(rec, node);
        return;
      }
      case "exec": {
        const node = tree.exec(ev.tgid, info ?? NULL_INFO);
        if (!this.#wanted("exec", node)) return;
        const rec = this.#base("exec", ev, node);
        rec.argv = node.argv;
        rec.exe = node.exe;
        rec.uid = node.uid;
        this.#finish(rec, node);
        return;
      }
      case "exit": {
        const ws = decodeWaitStatus(ev.exitCode);
        let node: ProcNode | null;
        if (isProcess) {
          node = tree.exit(ev.tgid, ev.exitCode, ev.parentTgid, ev.timestampNs) ?? null;
        } else node = tree.get(ev.tgid) ?? null;
        if (!this.#wanted("exit", node)) return;
        const rec = this.#base("exit", ev, node);
        if (isProcess) rec.ppid = ev.parentTgid || null;
        rec.exit_code = ws.exitCode;
        rec.signal = ws.signal;
        if (ws.coreDumped) rec.core_dumped = true;
        this.#finish(rec, node);
        return;
      }
      case "comm": {
        const name = decodeBytes(ev.comm);
        const node = isProcess ? tree.rename(ev.tgid, name) ?? null : tree.get(ev.tgid) ?? null;
        if (!this.#wanted("comm", node)) return;
        const rec = this.#base("comm", ev, node);
        rec.comm = name;
        this.#finish(rec, node);
        return;
      }
      case "uid":
      case "gid": {
        const node = ev.what === "uid" && isProcess
          ? tree.setUid(ev.tgid, ev.effective) ?? null
          : tree.get(ev.tgid) ?? null;
        if (!this.#wanted(ev.what, node)) return;
        const rec = this.#base(ev.what, ev, node);
        rec.real = ev.real;
        rec.effective = ev.effective;
        this.#finish(rec, node);
        return;
      }
      case "ptrace": {
        const node = tree.get(ev.tgid) ?? null;
        if (!this.#wanted("ptrace", node)) return;
        const rec = this.#base("ptrace", ev, node);
        rec.tracer_pid = ev.tracerTgid;
        this.#finish(rec, node);
        return;
      }
      case "sid":
      case "coredump": {
        const node = tree.get(ev.tgid) ?? null;
        if (!this.#wanted(ev.what, node)) return;
        this.#finish(this.#base(ev.what, ev, node), node);
        return;
      }
    }
  }

  #read(pid: number): ExecInfo {
    // status gives name, parent and uid in one read; stat (for the start time) is not
    // needed: validation against the batch already rules out a reused pid.
    const r = this.#o.reader;
    const st = r.status(pid);
    if (!st) return NULL_INFO;
    return {
      comm: st.comm,
      argv: r.cmdline(pid),
      exe: r.exe(pid),
      uid: st.euid,
      ppid: st.ppid,
      startTicks: null,
    };
  }
}
