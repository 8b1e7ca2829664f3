/**
 * One listening session, as `watch`, `run` and the library all assemble it: the sources
 * subscribed, the tree seeded from `/proc` right after, the pipeline warmed up, each source's
 * stage handed to the processor, and the read loop wired to them ({@linkcode Session.loop}).
 * The CLI and the library differ only in what they do with the records.
 *
 * ```
 * sources (ffi/source/*.ts) → decode (lib/event/wire.ts) → EventLoop (lib/pipeline/loop.ts)
 *   → EventProcessor (lib/pipeline/processor.ts: loss, exec facts and their stages, tree,
 *     filter, records, line stages) → sink
 * ```
 *
 * @module
 */

import { ConnectorError, ProcConnector } from "./ffi/source/connector.ts";
import { Clock, clockNs } from "./ffi/libc.ts";
import { exePathOf, procfs, sameFile } from "./ffi/procfs.ts";
import { hostUsers } from "./ffi/passwd.ts";
import { Poller } from "./ffi/poller.ts";
import { EventProcessor, type ProcessorOptions } from "./lib/pipeline/processor.ts";
import {
  BPF_PACE_MS,
  EventLoop,
  type LoopHandlers,
  PACE_MS,
  PROC_STORM_UNITS,
  type Source,
  STORM_UNITS,
} from "./lib/pipeline/loop.ts";
import { snapshot } from "./lib/tree/proc_parse.ts";
import { WallClock } from "./lib/time.ts";
import { PidTree } from "./lib/tree/tree.ts";
import type { Users } from "./lib/tree/users.ts";
import { warmUp } from "./lib/pipeline/warm_up.ts";
import { realtime } from "./ffi/sched.ts";
import { readFileText } from "./ffi/procfs.ts";
import { bootTag } from "./lib/tree/identity.ts";
import {
  FanotifySource,
  FanotifyUnavailable,
  MountWatch,
  OWN_MOUNTINFO,
} from "./ffi/source/exec_names.ts";
import { AuditSource, AuditUnavailable } from "./ffi/source/audit.ts";
import { FileSource, FilesUnavailable } from "./ffi/source/files.ts";
import { BpfExecSource, BpfUnavailable } from "./ffi/source/bpf_exec.ts";
import { BpfExecStage } from "./lib/source/bpf_exec/stage.ts";
import { ExecNamesStage } from "./lib/source/exec_names/stage.ts";
import { AuditStage } from "./lib/source/audit/stage.ts";
import { BpfNetSource } from "./ffi/source/bpf_net.ts";
export { NetUnavailable } from "./ffi/source/bpf_net.ts";
import { NetStage } from "./lib/source/bpf_net/stage.ts";
import { NET_SYSCALLS } from "./lib/source/bpf_net/program.ts";
import type { ExecStage, LineStage } from "./lib/pipeline/stage.ts";
import { FileStage } from "./lib/source/files/stage.ts";
import { WHAT } from "./lib/event/kinds.ts";

/** The kernel's random id of this boot. */
const BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id";

export { AuditUnavailable, BpfUnavailable, ConnectorError, FanotifyUnavailable, FilesUnavailable };
export { SourceUnavailable } from "./lib/pipeline/unavailable.ts";

/**
 * Where an exec's argv, comm, ids and parent come from: `bpf` (a program inside `execve`:
 * exact, for every exec), `proc` (`/proc/<pid>`, read when the event arrives: null for a
 * process already gone), `auto` (bpf where it can run, else proc with a note).
 */
export type ExecFactsMode = "auto" | "bpf" | "proc";

/** The values of {@linkcode ExecFactsMode}, for option parsing. */
export const EXEC_FACTS_MODES: readonly ExecFactsMode[] = ["auto", "bpf", "proc"];

/** Where argv comes from: `/proc` (default), or the kernel's audit stream (exact). */
export type ArgvMode = "proc" | "audit";

/** The values of {@linkcode ArgvMode}, for option parsing. */
export const ARGV_MODES: readonly ArgvMode[] = ["proc", "audit"];

/** Where exec names come from: `auto` uses fanotify when permitted, else `/proc`. */
export type ExecNameMode = "auto" | "fanotify" | "proc";

/** The values of {@linkcode ExecNameMode}, for option parsing. */
export const EXEC_NAME_MODES: readonly ExecNameMode[] = ["auto", "fanotify", "proc"];

/** Options of {@linkcode Session.open}. */
export interface ListenOptions {
  /** Receive buffer to ask for, in bytes (default `DEFAULT_RCVBUF_BYTES`, 128 MiB). */
  rcvbufBytes?: number;
  /**
   * The reader thread's backlog, in bytes (default `DEFAULT_BACKLOG_BYTES`, 32 MiB); 0: no
   * reader thread, the socket is read by the loop as it drains.
   */
  backlogBytes?: number;
  /** Kernel event filter (WHAT bits); applied where the kernel takes it (asked at subscription). */
  eventMask?: number;
  /** How long exited processes stay in the tree, in ms (default 60 000). */
  graceMs?: number;
  /** Most exited processes kept (default 10 000). */
  maxExited?: number;
  /** Where exec names come from (default `auto`). */
  execNames?: ExecNameMode;
  /** Where argv comes from (default `proc`); `audit` installs an audit rule until closed. */
  argv?: ArgvMode;
  /** Report changes to files under these paths (`--files`). */
  files?: readonly string[];
  /** Where exec facts come from (default `auto`). */
  execFacts?: ExecFactsMode;
  /** Where the BPF source reads the kernel's BTF (tests point it at a missing file). */
  btfPath?: string;
  /**
   * Report network connections (`--net`): connect, accept and bind. Throws
   * `NetUnavailable` where the BPF network source cannot run.
   */
  net?: boolean;
}

/** What a caller adds to a session's loop ({@linkcode Session.loop}). */
export interface LoopHooks {
  /**
   * After the session's upkeep, on every tick (`LoopHandlers.tick`); `nowNs`:
   * CLOCK_MONOTONIC then.
   */
  tick?(idle: boolean, nowNs: number): void;
  /** Checked after every wake-up; true ends the loop. */
  stopped(): boolean;
  /** The watched output went away. */
  hangup?(): void;
}

/** What a processor needs beyond what the session provides. */
export type ProcessorConfig = Omit<
  ProcessorOptions,
  "tree" | "reader" | "users" | "clock" | "now" | "kernelFilter"
>;

/** Tries at {@linkcode wallOffsetNs}: the tightest bracket of the three is kept. */
const OFFSET_TRIES = 3;

/**
 * CLOCK_REALTIME − CLOCK_MONOTONIC now, in ns. The wall clock is read between two monotonic
 * reads and taken at their middle, from the tightest of three brackets: a thread preempted
 * between two reads (a busy host) would otherwise date every line by the length of that
 * preemption (measured: 1.5 ms between two proctrees on one event).
 */
export function wallOffsetNs(): number {
  let bracketNs = Infinity;
  let offsetNs = 0;
  for (let i = 0; i < OFFSET_TRIES; i++) {
    const before = clockNs(Clock.MONOTONIC);
    const wall = clockNs(Clock.REALTIME);
    const after = clockNs(Clock.MONOTONIC);
    if (after - before < bracketNs) {
      bracketNs = after - before;
      offsetNs = wall - (before + after) / 2;
    }
  }
  return offsetNs;
}

/** CLOCK_MONOTONIC now, in ns: the clock of kernel event timestamps. */
export function monotonicNs(): number {
  return clockNs(Clock.MONOTONIC);
}

/** The exec-name source and its stage, or why there is none. */
interface ExecNamesOpened {
  source: FanotifySource | null;
  stage: ExecNamesStage | null;
  note: string | null;
}

/** The audit source and its stage (`--argv audit`). */
interface AuditOpened {
  source: AuditSource;
  stage: AuditStage;
}

/**
 * Opens the exec-name source for `mode`. `auto` falls back to `/proc` with a note; `fanotify`
 * throws {@linkcode FanotifyUnavailable}; `proc` opens nothing.
 */
function openExecNames(mode: ExecNameMode): ExecNamesOpened {
  if (mode === "proc") return { source: null, stage: null, note: null };
  try {
    let stage: ExecNamesStage | null = null;
    const source = FanotifySource.open(() => stage?.overflowed(), () => monotonicNs() / 1e6);
    stage = new ExecNamesStage(source.names);
    return { source, stage, note: null };
  } catch (e) {
    if (mode === "fanotify" || !(e instanceof FanotifyUnavailable)) throw e;
    return {
      source: null,
      stage: null,
      note: `proctree: exec names from /proc only: ${e.message}; ` +
        "processes that exit within a millisecond may be unnamed",
    };
  }
}

/**
 * Opens the BPF exec-facts source for `mode`: `auto` falls back to `/proc` with the reason;
 * `bpf` throws {@linkcode BpfUnavailable}; `proc`, or a kernel filter without exec events,
 * opens nothing.
 */
function openExecFacts(
  mode: ExecFactsMode,
  opts: ListenOptions,
): { source: BpfExecSource | null; why: string | null } {
  const execsWanted = opts.eventMask === undefined || (opts.eventMask & WHAT.EXEC) !== 0;
  if (mode === "proc") return { source: null, why: null };
  if (!execsWanted) return { source: null, why: "no exec events asked for" };
  try {
    return { source: BpfExecSource.open({ btfPath: opts.btfPath }), why: null };
  } catch (e) {
    if (mode === "bpf" || !(e instanceof BpfUnavailable)) throw e;
    return { source: null, why: e.message };
  }
}

/**
 * Opens the audit source and its stage (which dates exec events by `clock`); throws
 * `AuditUnavailable`.
 */
function openAudit(clock: WallClock): AuditOpened {
  let stage: AuditStage | null = null;
  const source = AuditSource.open({
    onLost: (reason, count) => stage?.recordsLost(reason, count),
    nowMs: () => monotonicNs() / 1e6,
  });
  stage = new AuditStage(source.join, clock, monotonicNs);
  return { source, stage };
}

/** Opens the file-change source and its stage; throws `FilesUnavailable`. */
function openFiles(paths: readonly string[]): { source: FileSource; stage: FileStage } {
  let stage: FileStage | null = null;
  const source = FileSource.open(paths, () => stage?.overflowed());
  stage = new FileStage(source);
  return { source, stage };
}

/** Opens the network source and its stage; throws `NetUnavailable`. */
function openNet(btfPath: string | undefined): { source: BpfNetSource; stage: NetStage } {
  let source: BpfNetSource | null = null;
  const stage = new NetStage(
    NET_SYSCALLS[Deno.build.arch] ?? NET_SYSCALLS.x86_64,
    () => source?.drops() ?? 0,
  );
  source = BpfNetSource.open((r) => stage.add(r), btfPath);
  return { source, stage };
}

/**
 * A watch on each mount table the exec names mark, and on proctree's own for the file
 * changes (mounts under PATH); one that cannot be opened is left out.
 */
function mountWatches(f: FanotifySource | null, files: FileSource | null): MountWatch[] {
  const tables = new Map<string, (() => void)[]>();
  const on = (mountinfo: string, fn: () => void) =>
    tables.set(mountinfo, [...tables.get(mountinfo) ?? [], fn]);
  for (const t of f?.tables ?? []) on(t.mountinfo, () => f!.markMounts());
  if (files) on(OWN_MOUNTINFO, () => files.markMounts());
  const out: MountWatch[] = [];
  for (const [mountinfo, fns] of tables) {
    try {
      out.push(new MountWatch(() => fns.forEach((fn) => fn()), mountinfo));
    } catch { /* mounts there are marked at start only */ }
  }
  return out;
}

/** A subscribed connector, the tree seeded right after subscribing, and the parts around it. */
export class Session {
  /** The subscribed proc connector. */
  readonly connector: ProcConnector;
  /** Every source the loop drains (the connector first). */
  readonly sources: readonly Source[];
  /** Parks the loop on the sources. */
  readonly poller: Poller;
  /** The live process tree. */
  readonly tree: PidTree;
  /** Turns kernel timestamps into wall-clock ISO times. */
  readonly clock: WallClock;
  /** The host's user names. */
  readonly users: Users;
  /** Processes found in /proc at start. */
  readonly seeded: number;
  /** The exec-name source; null: names come from `/proc` only. */
  readonly fanotify: FanotifySource | null;
  /**
   * With `execNames: "auto"`, why fanotify is not used (one line for stderr); else null.
   */
  readonly execNamesNote: string | null;
  /** The audit source (`argv: "audit"`); else null. */
  readonly audit: AuditSource | null;
  /** The file-change source (`files`); else null. */
  readonly files: FileSource | null;
  /** The BPF exec-facts source; null: exec facts come from `/proc`. */
  readonly bpfExec: BpfExecSource | null;
  /** Why exec facts come from `/proc` although BPF was wanted (`auto`); else null. */
  readonly execFactsWhy: string | null;
  /** The network source (`net`); else null. */
  readonly net: BpfNetSource | null;
  /**
   * The stages refining exec facts, in order (fanotify's names, BPF records, audit records):
   * given to the first processor made.
   */
  #execStages: ExecStage[];
  /** The file-change and network stages: given to the first processor made, like those. */
  #lineStages: LineStage[];
  #closers: { close(): void }[];
  #offsetCheckedNs = 0;
  #realtime = false;
  #processors: EventProcessor[] = [];

  private constructor(
    connector: ProcConnector,
    tree: PidTree,
    seeded: number,
    clock: WallClock,
    fanotify: ExecNamesOpened,
    audit: AuditOpened | null,
    files: { source: FileSource; stage: FileStage } | null,
    facts: { source: BpfExecSource | null; why: string | null },
    net: { source: BpfNetSource; stage: NetStage } | null,
  ) {
    this.net = net?.source ?? null;
    this.#lineStages = [files?.stage, net?.stage].filter((s) => s !== undefined);
    this.bpfExec = facts.source;
    this.execFactsWhy = facts.why;
    const bpfStage = facts.source
      ? new BpfExecStage(facts.source, exePathOf, sameFile, connector.subscribedNs)
      : null;
    this.#execStages = [fanotify.stage, bpfStage, audit?.stage ?? null].filter((s) => s !== null);
    this.connector = connector;
    this.fanotify = fanotify.source;
    if (this.fanotify && bpfStage) {
      this.fanotify.namedElsewhere = (pid) => bpfStage.namesExactly(pid);
    }
    this.execNamesNote = fanotify.note;
    this.audit = audit?.source ?? null;
    this.files = files?.source ?? null;
    const f = this.fanotify;
    const sources: Source[] = f ? [connector, f] : [connector];
    sources.push(...mountWatches(f, files?.source ?? null));
    if (audit) sources.push(audit.source);
    if (files) sources.push(files.source);
    if (net) sources.push(net.source);
    this.sources = sources;
    // Not polled: drained with every connector wake-up (each record has an event behind it).
    this.#closers = facts.source ? [facts.source] : [];
    this.tree = tree;
    this.seeded = seeded;
    this.clock = clock;
    this.users = hostUsers();
    this.poller = new Poller(this.sources);
  }

  /**
   * Subscribes first and snapshots `/proc` second, so no process can start unseen between
   * the two; the BPF exec program is attached before both, so every exec the connector
   * reports was recorded too. Throws {@linkcode ConnectorError} when the kernel cannot be
   * listened to.
   */
  static open(opts: ListenOptions = {}): Session {
    let connector: ProcConnector | null = null;
    let fan: ExecNamesOpened = { source: null, stage: null, note: null };
    let audit: AuditOpened | null = null;
    let files: { source: FileSource; stage: FileStage } | null = null;
    let facts: { source: BpfExecSource | null; why: string | null } = { source: null, why: null };
    let net: { source: BpfNetSource; stage: NetStage } | null = null;
    const clock = new WallClock(wallOffsetNs());
    try {
      // Attached before the subscription (loading takes 0.1–0.2 s), so every exec the
      // connector reports was recorded too; records of execs before it are dropped uncounted.
      facts = openExecFacts(opts.execFacts ?? "auto", opts);
      connector = ProcConnector.open({
        rcvbufBytes: opts.rcvbufBytes,
        eventMask: opts.eventMask,
        backlogBytes: opts.backlogBytes,
      });
      // Marked before the snapshot, like the subscription: no exec after it goes unnamed.
      fan = openExecNames(opts.execNames ?? "auto");
      if (opts.argv === "audit") audit = openAudit(clock);
      if (opts.files?.length) files = openFiles(opts.files);
      if (opts.net) net = openNet(opts.btfPath);
      const tree = new PidTree({
        graceMs: opts.graceMs,
        maxExited: opts.maxExited,
        bootOffsetNs: clockNs(Clock.BOOTTIME) - clockNs(Clock.MONOTONIC),
        bootTag: bootTag(readFileText(BOOT_ID_PATH) ?? ""),
      });
      const entries = snapshot(procfs);
      tree.seed(entries);
      warmUp(procfs, monotonicNs, Deno.pid);
      return new Session(
        connector,
        tree,
        entries.length,
        clock,
        fan,
        audit,
        files,
        facts,
        net,
      );
    } catch (e) {
      connector?.close();
      facts.source?.close();
      fan.source?.close();
      audit?.source.close();
      files?.source.close();
      net?.source.close();
      throw e;
    }
  }

  /** A processor over this session's tree, `/proc`, users, clock and kernel filter. */
  processor(config: ProcessorConfig): EventProcessor {
    const p = new EventProcessor({
      ...config,
      tree: this.tree,
      reader: procfs,
      users: this.users,
      clock: this.clock,
      now: monotonicNs,
      kernelFilter: this.connector.kernelFilter,
      stages: this.#execStages,
      lineStages: this.#lineStages,
    });
    // Their records are consumed by one processor.
    this.#execStages = [];
    this.#lineStages = [];
    this.#processors.push(p);
    return p;
  }

  /**
   * The read loop of `processor` over this session's sources, the one assembly `watch`,
   * `run` and the library share: the session's upkeep ({@linkcode Session.tick}) on every
   * tick before `hooks.tick`. Paced ({@linkcode PACE_MS}, {@linkcode BPF_PACE_MS} with BPF exec
   * facts) unless reading at real-time priority, whose point is to read each process before
   * it can exit.
   */
  loop(processor: EventProcessor, hooks: LoopHooks, tickMs?: number): EventLoop {
    const handlers: LoopHandlers = {
      ...processor.loopHandlers(),
      tick: (idle) => {
        const nowNs = monotonicNs();
        this.tick(nowNs);
        hooks.tick?.(idle, nowNs);
      },
      stopped: hooks.stopped,
      hangup: hooks.hangup,
    };
    // Without BPF exec facts a paced drain costs short-lived execs their argv: pace only
    // true storms then, and briefly.
    const stormUnits = this.bpfExec ? STORM_UNITS : PROC_STORM_UNITS;
    const paceMs = this.#realtime ? 0 : this.bpfExec ? BPF_PACE_MS : PACE_MS;
    return new EventLoop(this.sources, this.poller, handlers, tickMs, paceMs, stormUnits);
  }

  /**
   * Reads at real-time priority from now on (SCHED_FIFO, when permitted); null on
   * success, else the errno name. Kept up by {@linkcode tick}: threads the runtime starts
   * later (the one that parks in `poll`) start at normal priority.
   */
  realtime(): string | null {
    const err = realtime();
    this.#realtime = err === null;
    return err;
  }

  /**
   * Upkeep for every tick: exited processes swept; once a second, the wall-clock offset
   * refreshed (NTP steps it) and real-time priority given to any new thread.
   */
  tick(nowNs: number = monotonicNs()): void {
    this.tree.sweep(nowNs);
    for (const p of this.#processors) p.tick(nowNs);
    if (nowNs - this.#offsetCheckedNs > 1e9) {
      this.#offsetCheckedNs = nowNs;
      this.clock.offsetNs = wallOffsetNs();
      if (this.#realtime) realtime();
    }
  }

  /** Ends any wait, unsubscribes and closes every descriptor (and removes the audit rule). */
  async close(): Promise<void> {
    // Every source is closed, whatever fails first: the audit rule must not outlive proctree.
    let failed: unknown = null;
    try {
      await this.poller.close();
    } catch (e) {
      failed = e;
    }
    for (const s of [...this.sources, ...this.#closers]) {
      try {
        await s.close();
      } catch (e) {
        failed ??= e;
      }
    }
    if (failed !== null) throw failed;
  }
}
