/**
 * Turns batches of decoded events into output records. It composes the parts, each in its
 * own module: loss accounting (`loss.ts`), validated `/proc` reads of execs
 * (`exec_reads.ts`), the tree (`tree.ts`), selection (`filter.ts`), record building
 * (`record.ts`) and resync after losses (`resync.ts`).
 *
 * The read loop (`loop.ts`) drives it through {@linkcode EventProcessor.loopHandlers};
 * {@linkcode EventProcessor.processBatch} does the same for a batch already in hand.
 *
 * @module
 */

import type { Decoded, ProcEvent } from "../event/wire.ts";
import { PROCESS_WIDE } from "../event/kinds.ts";
import type { ProcReader } from "../tree/proc_parse.ts";
import type { ExecInfo, PidTree, ProcNode } from "../tree/tree.ts";
import {
  lostRecord,
  processRecord,
  type RecordContext,
  stageRecord,
  type WatchRecord,
} from "../record/record.ts";
import type { Users } from "../tree/users.ts";
import type { WallClock } from "../time.ts";
import { decodeBytes } from "../text.ts";
import type { LoopHandlers } from "./loop.ts";
import { LossAccounting } from "../event/loss.ts";
import { ExecReads, NULL_INFO } from "./exec_reads.ts";
import { type ProcessFilter, RecordFilter } from "./filter.ts";
import { resyncTree } from "../tree/resync.ts";
import { type ExecName, type ExecNames, NOT_HERE } from "../source/exec_names/names.ts";
import { AUDIT_WAIT_MS, type AuditJoin } from "../source/audit/join.ts";
import type { AuditExec } from "../source/audit/records.ts";
import type { ExecStage, LineStage, StageLine } from "./stage.ts";

export type { ProcessFilter } from "./filter.ts";

/** Receives each record that passes the filters, with the tree node it is about. */
export type RecordSink = (rec: WatchRecord, node: ProcNode | null) => void;

/** Options of {@linkcode EventProcessor}. */
export interface ProcessorOptions {
  /** The live tree the events are applied to. */
  tree: PidTree;
  /** `/proc` access for exec reads and resync. */
  reader: ProcReader;
  /** Names users. */
  users: Users;
  /** Dates records. */
  clock: WallClock;
  /** Receives the records. */
  sink: RecordSink;
  /** CLOCK_MONOTONIC now, in ns (reads are dated with it). */
  now: () => number;
  /** Event names to print; undefined: all. lost, resync, malformed and unknown always print. */
  events?: ReadonlySet<string>;
  /** Report thread creation, thread exits and per-thread id/comm changes. */
  threads?: boolean;
  /** The process selection. */
  filter?: ProcessFilter;
  /** Add `chain` to every event (default true). */
  chains?: boolean;
  /** The kernel filters events, so seq gaps are not losses. */
  kernelFilter?: boolean;
  /** Exec names from fanotify (`exec_names.ts`); absent: from `/proc` only. */
  execNames?: ExecNames;
  /**
   * Exact argv from the audit stream (`audit_join.ts`); absent: from `/proc` only. Each
   * exec line then waits for its record (at most `AUDIT_WAIT_MS`), and every line behind it
   * waits too, so the output stays in kernel order.
   */
  audit?: AuditJoin;
  /** Stages that refine each exec's facts, in order, after the `/proc` reads. */
  stages?: readonly ExecStage[];
  /** Stages that add lines of their own (`--net`), printed after the events before them. */
  lineStages?: readonly LineStage[];
}

/** A drained batch waiting for audit records, or an overrun between two batches. */
interface Held {
  events: readonly Decoded[];
  /** The `/proc` (and fanotify) facts of each exec, by index, taken when it was drained. */
  infos: (ExecInfo | undefined)[];
  /** The next event to apply. */
  at: number;
  /** When it was drained (CLOCK_MONOTONIC ms). */
  drainedMs: number;
  /** An overrun came before this batch. */
  overrun: boolean;
}

/** Running totals. */
export interface ProcessorCounters {
  /** Process events handled. */
  events: number;
  /** Events counted lost. */
  lost: number;
  /** Overruns whose size could not be known. */
  overrunsUncounted: number;
  /** Messages that could not be decoded. */
  malformed: number;
  /** Messages of a kind this version does not know. */
  unknown: number;
  /** Reconciliations with `/proc`. */
  resyncs: number;
  /** Printed execs whose program no source could vouch for (`exe` printed as null). */
  execsUnreadable: number;
  /** Execs whose `exe` fanotify named where `/proc` could not. */
  execsNamedByFanotify: number;
  /** Execs of a file that its path does not reach from proctree's mount namespace (null). */
  execsNotReachable: number;
  /** Execs where `/proc` and fanotify named different programs (both dropped: null). */
  execNameConflicts: number;
  /** Execs whose argv came from the audit stream. */
  execsArgvFromAudit: number;
  /** Each stage's own counters, by the names the stats line prints. */
  stages?: Readonly<Record<string, number>>;
}

/**
 * Longest argv (in characters, about bytes) the tree holds for a process after its exec
 * line: the line carries argv whole, but 60 processes with 6 MB of arguments each would
 * otherwise hold 360 MB. A longer one is dropped (null for later forks' inheritance), not cut.
 */
export const ARGV_KEEP_CHARS = 4096;

function argvChars(argv: readonly string[]): number {
  let n = 0;
  for (const a of argv) n += a.length + 1;
  return n;
}

/** Least time between two resyncs with `/proc`, in ms. */
export const RESYNC_INTERVAL_MS = 1000;

/** The event pipeline shared by `watch`, `run` and the library. */
export class EventProcessor {
  readonly #counts = {
    events: 0,
    malformed: 0,
    unknown: 0,
    resyncs: 0,
    execsUnreadable: 0,
    execsNamedByFanotify: 0,
    execNameConflicts: 0,
    execsNotReachable: 0,
    execsArgvFromAudit: 0,
  };
  /** Batches waiting for audit records, oldest first. */
  #held: Held[] = [];
  /** A batch of this drain left a source with more to read. */
  #drainIncomplete = false;
  #overrunHeld = false;
  #o: ProcessorOptions;
  #loss: LossAccounting;
  #reads: ExecReads;
  #filter: RecordFilter;
  #ctx: RecordContext;
  /** Newest kernel timestamp seen: the time of lines that have none of their own. */
  #lastNs = 0;
  /** Set by {@linkcode #apply}: the event just applied is about the whole process. */
  #processLevel = true;
  #lastResyncMs = -Infinity;
  readonly #stages: readonly ExecStage[];
  readonly #lineStages: readonly LineStage[];

  /** A processor over `options.tree`, sending records to `options.sink`. */
  constructor(options: ProcessorOptions) {
    this.#o = options;
    this.#stages = options.stages ?? [];
    this.#lineStages = options.lineStages ?? [];
    this.#loss = new LossAccounting(options.kernelFilter ?? false);
    const vouching = this.#stages.filter((s) => s.vouches);
    this.#reads = new ExecReads(
      options.reader,
      options.now,
      vouching.length ? (pid, ns) => vouching.some((s) => s.vouches!(pid, ns)) : undefined,
      options.execNames !== undefined,
    );
    this.#filter = new RecordFilter(options.tree, options.events, options.filter);
    this.#ctx = {
      clock: options.clock,
      users: options.users,
      chains: options.chains ?? true ? options.tree : null,
      ids: options.tree,
    };
  }

  /** Running totals. */
  get counters(): ProcessorCounters {
    return {
      ...this.#counts,
      lost: this.#loss.lost,
      overrunsUncounted: this.#loss.uncounted,
      stages: Object.assign({}, ...[...this.#stages, ...this.#lineStages].map((s) => s.counters())),
    };
  }

  /** The processor's part of the loop's handlers: early reads, batches, overruns. */
  loopHandlers(): Pick<
    LoopHandlers,
    "decoded" | "batch" | "overrun" | "drained" | "dueInMs" | "flush"
  > {
    return {
      decoded: (b, from, storm) => {
        // Records first: a stage that has an exec's facts spares its /proc reads.
        for (const s of this.#stages) s.poll();
        this.#reads.readNew(b, from, storm);
      },
      batch: (b, complete) => {
        if (!complete) this.#drainIncomplete = true;
        this.#process(b, complete);
      },
      overrun: () => this.overrun(),
      drained: () => {
        this.#release(false);
        this.#stageLines(true, !this.#drainIncomplete);
        this.#drainIncomplete = false;
        this.#resyncIfDue();
        for (const s of this.#stages) s.sweep(this.#lastNs);
      },
      dueInMs: () => this.dueInMs(),
      flush: () => this.flush(),
    };
  }

  /**
   * In how many ms a held batch stops waiting for audit records (the loop wakes by then);
   * null when nothing is held.
   */
  dueInMs(): number | null {
    if (this.#lineStages.some((s) => s.holding())) return 0; // the same
    const h = this.#held[0];
    if (!h) return null;
    return Math.max(0, h.drainedMs + AUDIT_WAIT_MS - this.#o.now() / 1e6);
  }

  /** Applies every held batch now: execs still without a record keep their `/proc` facts. */
  flush(): void {
    this.#release(true);
    this.#stageLines(true, true);
    this.#stageLines(true, true);
  }

  /**
   * A resync reads every process in `/proc`: on a host with tens of thousands of them that
   * takes long enough for more events to be lost, and a resync after every loss would
   * never catch up. So resyncs are at least {@linkcode RESYNC_INTERVAL_MS} apart; losses in
   * between wait for the next one.
   */
  #resyncIfDue(): void {
    // Not while batches are held: they describe the time before what /proc shows now.
    if (!this.#loss.needResync || this.#held.length > 0) return;
    const nowMs = this.#o.now() / 1e6;
    if (nowMs - this.#lastResyncMs < RESYNC_INTERVAL_MS) return;
    this.#lastResyncMs = nowMs;
    this.resync();
  }

  /**
   * Processes a batch that is already in hand: its execs are read now, then the batch is
   * processed as if the drain had emptied the socket.
   */
  processBatch(batch: readonly Decoded[]): void {
    for (const s of this.#stages) s.poll();
    this.#reads.readNew(batch, 0);
    this.#process(batch, true);
  }

  /** The kernel reported an overrun: events were dropped before the next datagram. */
  overrun(): void {
    this.#o.tree.lost(this.#o.now());
    this.#o.audit?.lost(this.#o.now() / 1e6);
    for (const s of this.#stages) s.lost();
    if (this.#held.length > 0) this.#overrunHeld = true; // it belongs after what is held
    else if (this.#loss.overrun()) this.#uncountedLoss();
  }

  /** Reconciles the tree with `/proc` and prints a `resync` line. */
  resync(): void {
    this.#loss.resynced();
    const r = resyncTree(this.#o.tree, this.#o.reader, this.#lastNs);
    this.#counts.resyncs++;
    this.#o.sink({
      event: "resync",
      time: this.#o.clock.iso(this.#lastNs),
      added: r.added,
      removed: r.removed,
    }, null);
  }

  /** Audit records were lost (`count` when the kernel knows it): nothing is paired for a while. */
  auditLost(reason: string, count: number | null): void {
    this.#o.sink(lostRecord(this.#o.clock.iso(this.#lastNs), count, reason), null);
  }

  /** fanotify's queue overflowed: opens were dropped, and no exec is named from them. */
  execNamesOverflow(): void {
    this.#o.sink(lostRecord(this.#o.clock.iso(this.#lastNs), null, "fanotify_overflow"), null);
  }

  /** Takes what each stage's source queued, and says its losses. */
  #pollStages(): void {
    for (const s of this.#stages) {
      s.poll();
      for (const l of s.losses()) {
        this.#o.sink(lostRecord(this.#o.clock.iso(this.#lastNs), l.count, l.reason), null);
      }
    }
  }

  #uncountedLoss(): void {
    this.#o.sink(lostRecord(this.#o.clock.iso(this.#lastNs), null, "overrun"), null);
  }

  /** One drained batch, in order; `complete` when the drain left the socket empty. */
  #process(batch: readonly Decoded[], complete: boolean): void {
    this.#reads.begin(batch, complete);
    const names = this.#o.execNames?.resolve(batch, this.#o.now() / 1e6);
    this.#pollStages();
    const infos: (ExecInfo | undefined)[] = [];
    for (let i = 0; i < batch.length; i++) {
      const ev = batch[i];
      if (ev.what !== "exec") continue;
      let info = this.#reads.take(i, ev.tgid, ev.timestampNs);
      const name = names?.get(i);
      if (name) info = this.#named(info, name);
      for (const s of this.#stages) info = s.exec(ev.tgid, ev.timestampNs, info);
      infos[i] = info;
    }
    this.#reads.end();
    const held: Held = {
      events: batch,
      infos,
      at: 0,
      drainedMs: this.#o.now() / 1e6,
      overrun: this.#overrunHeld,
    };
    this.#overrunHeld = false;
    if (!this.#o.audit) {
      this.#applyHeld(held, true);
      return;
    }
    this.#held.push({ ...held, events: batch.slice() }); // the loop reuses its batch array
    this.#release(false);
  }

  /** Applies held batches in order, as far as their execs' audit records allow (all: `force`). */
  #release(force: boolean): void {
    const nowMs = this.#o.now() / 1e6;
    while (this.#held.length > 0) {
      const h = this.#held[0];
      if (!this.#applyHeld(h, force || nowMs - h.drainedMs >= AUDIT_WAIT_MS)) return;
      this.#held.shift();
    }
    if (this.#overrunHeld) {
      this.#overrunHeld = false;
      if (this.#loss.overrun()) this.#uncountedLoss();
    }
    this.#resyncIfDue();
  }

  /** Applies `h` from `h.at`; false when an exec still waits for its audit record. */
  #applyHeld(h: Held, waitedOut: boolean): boolean {
    if (h.at === 0 && h.overrun && this.#loss.overrun()) this.#uncountedLoss();
    h.overrun = false;
    for (; h.at < h.events.length; h.at++) {
      const ev = h.events[h.at];
      let info = h.infos[h.at];
      if (info && ev.what === "exec" && this.#o.audit) {
        const rec = this.#auditRecord(ev.tgid, ev.timestampNs, waitedOut);
        if (rec === undefined) return false;
        if (rec) info = this.#audited(info, rec);
      }
      this.#one(ev, info);
    }
    this.#stageLines(false, false);
    if (this.#loss.endBatch()) this.#uncountedLoss();
    if (!this.#o.audit) this.#resyncIfDue();
    return true;
  }

  /**
   * The line stages' lines that are due, each with its process if the tree's process of
   * that pid is the one that started when the stage says (else `comm: null`, never another
   * process's). After a drain that emptied the connector (`emptied`), what was held since
   * the drain before is due too: its processes' events are applied by then.
   */
  #stageLines(drained: boolean, emptied: boolean): void {
    if (drained && this.#held.length > 0) return; // their batch is not applied yet
    for (const s of this.#lineStages) {
      // The drop count is a bpf(2) call: read once a drain, not after every batch.
      if (drained) {
        for (const l of s.losses()) {
          this.#o.sink(lostRecord(this.#o.clock.iso(this.#lastNs), l.count, l.reason), null);
        }
      }
      for (const line of s.due(this.#lastNs, emptied)) {
        const node = this.#actor(line);
        if (this.#filter.selected(node)) this.#o.sink(stageRecord(line, node, this.#ctx), node);
      }
      if (drained) s.age(this.#lastNs);
    }
  }

  /** The process a stage's line names: by its start time, or by its window. */
  #actor(line: StageLine): ProcNode | null {
    const tree = this.#o.tree;
    if (line.heldNs) return tree.holder(line.pid, line.heldNs[0], line.heldNs[1]);
    const n = tree.get(line.pid);
    return n && line.startTicks !== undefined && tree.sameStart(n, line.startTicks) ? n : null;
  }

  /** The audit record of an exec of `pid` at `execNs`: null none, undefined not yet. */
  #auditRecord(pid: number, execNs: number, waitedOut: boolean): AuditExec | null | undefined {
    const node = this.#o.tree.get(pid);
    const startNs = node?.alive ? node.startNs : null;
    const wallMs = (ns: number) => this.#o.clock.wallNs(ns) / 1e6;
    return this.#o.audit!.match(
      pid,
      wallMs(execNs),
      startNs === null ? -Infinity : wallMs(startNs),
      this.#o.now() / 1e6,
      waitedOut,
    );
  }

  /**
   * An exec's facts with its audit record: the record was written as the call returned,
   * before the program could change anything, so what it says wins over what `/proc`
   * showed later (or could not show).
   */
  #audited(info: ExecInfo, rec: AuditExec): ExecInfo {
    if (rec.argv !== null) this.#counts.execsArgvFromAudit++;
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

  #one(ev: Decoded, info: ExecInfo | undefined): void {
    const { clock, sink } = this.#o;
    if (ev.what === "error") {
      this.#counts.malformed++;
      sink({ event: "malformed", time: clock.iso(this.#lastNs), reason: ev.reason }, null);
      return;
    }
    const gap = this.#loss.observe(ev.cpu, ev.seq);
    if (gap > 0) {
      sink(lostRecord(clock.iso(ev.timestampNs), gap, this.#loss.reason, ev.cpu), null);
      this.#o.tree.lost(ev.timestampNs);
      // A lost exec event would leave its audit record to the pid's next exec.
      this.#o.audit?.lost(this.#o.now() / 1e6);
      for (const s of this.#stages) s.lost();
    }
    if (ev.timestampNs > this.#lastNs) this.#lastNs = ev.timestampNs;
    if (ev.what === "unknown") {
      this.#counts.unknown++;
      sink({
        event: "unknown",
        time: clock.iso(ev.timestampNs),
        code: ev.code,
        cpu: ev.cpu,
      }, null);
      return;
    }
    if (ev.what === "ack") return;
    this.#counts.events++;
    const node = this.#apply(ev, info ?? NULL_INFO);
    // A thread's own events show only with --threads; process-wide facts always do.
    const isProcess = this.#processLevel;
    if (!isProcess && !this.#o.threads) return;
    if (!this.#filter.wanted(ev.what, node)) return;
    if (info !== undefined && info.exe === null) this.#counts.execsUnreadable++;
    // An exit names the parent itself; any other line of an orphan reads it once.
    if (node?.alive && node.ppid === 0 && node.pid > 2 && ev.what !== "exit") {
      this.#refreshParent(node);
    }
    const rec = processRecord(ev, node, this.#ctx, isProcess);
    if (info?.argvTrueBytes !== undefined && rec.argv) {
      rec.argv_truncated = true;
      rec.argv_bytes = info.argvTrueBytes;
    }
    sink(rec, node);
    if (ev.what === "exec" && node?.argv && argvChars(node.argv) > ARGV_KEEP_CHARS) {
      this.#o.tree.forgetArgv(node); // printed in full; not held for the process's lifetime
    }
  }

  /**
   * An exec's facts with fanotify's name. Where `/proc` could not be read, fanotify names
   * the program and the script. Where both name it, they must agree: `/proc` may have been
   * read after a later image was installed, and fanotify may have paired a failed exec with
   * one it cannot see (a memfd) — which one is wrong cannot be told, so neither is kept.
   */
  #named(info: ExecInfo, name: ExecName): ExecInfo {
    if (info.exeNotHere) return info;
    if (name.exe === NOT_HERE) {
      this.#counts.execsNotReachable++;
      return { ...info, exe: null, script: null, exeNotHere: true };
    }
    if (info.exe === null) {
      this.#counts.execsNamedByFanotify++;
      return { ...info, exe: name.exe, script: name.script };
    }
    if (info.exe === name.exe) return { ...info, script: name.script };
    this.#counts.execNameConflicts++;
    return NULL_INFO;
  }

  /**
   * A live process whose parent exited: the kernel moved it to a subreaper or init without
   * an event. Its current parent is read from `/proc` (once), so no line names a dead
   * creator as its parent; unreadable, `ppid` stays unknown (null).
   */
  #refreshParent(node: ProcNode): void {
    const st = this.#o.reader.stat(node.pid);
    if (st && this.#o.tree.sameStart(node, st.startTicks)) this.#o.tree.reparent(node, st.ppid);
  }

  /**
   * Applies `ev` to the tree; returns the node the event is about (null: unknown), and
   * sets {@linkcode #processLevel}: whether the event is about the whole process.
   */
  #apply(ev: Exclude<ProcEvent, { what: "ack" }>, info: ExecInfo): ProcNode | null {
    const tree = this.#o.tree;
    const isProcess = ev.pid === ev.tgid;
    this.#processLevel = isProcess || PROCESS_WIDE.has(ev.what);
    switch (ev.what) {
      case "fork":
        return isProcess
          ? tree.fork(ev.pid, ev.parentTgid, ev.timestampNs)
          : tree.threadStart(ev.tgid, ev.pid) ?? null;
      case "exec":
        return tree.exec(ev.tgid, info);
      case "exit": {
        // The process ends with its last thread, whichever thread that is.
        const r = tree.taskExit(ev.tgid, ev.pid, ev.exitCode, ev.parentTgid, ev.timestampNs);
        this.#processLevel = r.ended;
        return r.node ?? null;
      }
      case "comm":
        return isProcess
          ? tree.rename(ev.tgid, decodeBytes(ev.comm)) ?? null
          : tree.get(ev.tgid) ?? null;
      case "uid":
        return isProcess ? tree.setUid(ev.tgid, ev.effective) ?? null : tree.get(ev.tgid) ?? null;
      default:
        return tree.get(ev.tgid) ?? null;
    }
  }
}
