/**
 * `/proc` reads for exec events, and the proof that each read describes its exec.
 *
 * An exec's `/proc/<pid>` is read the moment its datagram is decoded ({@linkcode
 * ExecReads.readNew}), because a process that lives a millisecond is gone by the end of a
 * large batch. A read is kept only when it provably describes that exec: the batch must
 * contain every event up to the read (the drain ended on an empty socket, or later events
 * were already queued), and none of them may be another exec or a new process on the same
 * pid before the read (a rename before the read voids the name and argv read, a uid change
 * the uid read), and the process may not be traced (a tracer can hold it at its next
 * exec, with the next image installed and not yet reported). Otherwise the exec's fields
 * are null.
 *
 * @module
 */

import type { Decoded } from "../event/wire.ts";
import { NOT_HERE, type ProcReader } from "../tree/proc_parse.ts";
import type { ExecInfo } from "../tree/tree.ts";
import { type Container, containerOf } from "../tree/container.ts";

/** Slack for the enqueue of an event after its timestamp was taken on another CPU. */
export const READ_MARGIN_NS = 200_000;

/**
 * argv, cwd, login uid and cgroup change without an event (a title rewritten in memory,
 * `cd`, pam_loginuid, a move into a container's cgroup): they are kept only from a read
 * that began within this long after the exec. A later read (a host too busy to run
 * proctree) takes only what events guard: the name, the uid and the executable. Outside a
 * storm a read usually begins within 0.3 ms, but a shared 2-CPU host delayed one by more
 * than 5 ms now and then (a CI run lost a shell's argv that way).
 */
export const FRESH_READ_NS = 50_000_000;

/**
 * What {@linkcode FRESH_READ_NS} is while the loop paces a storm: its reads are late by
 * proctree's own choice (up to `PACE_MS`), and a full read of every exec would cost the
 * storm's CPU back (six files instead of two).
 */
export const STORM_FRESH_READ_NS = 5_000_000;

/**
 * The container of a process whose cgroup was read before its directory: kept only if the
 * directory could still be read. An exiting process drops its directory (`exit_fs`) before
 * it leaves its cgroups (`cgroup_exit`), after which a v1 hierarchy shows its root — a wrong
 * "no container" for a process that ran in one. Unkept, the container stays its creator's.
 */
function placedBefore(cgroup: string | null, cwd: string | null): Container | null | undefined {
  return cwd === null ? undefined : containerOf(cgroup);
}

/** A question about the exec of `pid` at `execNs` that a stage answers. */
type ExecCheck = (pid: number, execNs: number) => boolean;

/** Every fact unknown: what an exec gets when no read can vouch for it. */
export const NULL_INFO: ExecInfo = Object.freeze({
  comm: null,
  argv: null,
  exe: null,
  uid: null,
  ppid: null,
  startTicks: null,
  cwd: null,
  loginUid: null,
});

/**
 * What an event changes of what `/proc` shows: everything (a new image, or a new process
 * on the pid), the name and the arguments (a rename, as `setproctitle` and perl's `$0` do
 * with a rewrite of argv), or the uid.
 */
const CHANGE = { ALL: 0, NAME: 1, UID: 2, NONE: -1 } as const;

/** The change an event makes to what a read of its process shows ({@linkcode CHANGE}). */
function changeOf(ev: Decoded): number {
  switch (ev.what) {
    case "exec":
      return CHANGE.ALL;
    case "fork":
      return ev.pid === ev.tgid ? CHANGE.ALL : CHANGE.NONE;
    case "comm":
      // status shows the main thread's name: another thread's rename changes nothing read.
      return ev.pid === ev.tgid ? CHANGE.NAME : CHANGE.NONE;
    case "uid":
      return CHANGE.UID;
    default:
      return CHANGE.NONE;
  }
}

/** Reads taken during one drain, validated when the drain ends. */
export class ExecReads {
  #reader: ProcReader;
  #now: () => number;
  /**
   * What the reads of this batch's execs found, by batch index, and when each read was made
   * (CLOCK_MONOTONIC ns): two lists, no object per exec.
   */
  #infos: (ExecInfo | undefined)[] = [];
  #readNs: number[] = [];
  /** A read of this batch found something: only then do the batch's changes matter. */
  #found = false;
  /**
   * The batch's events that change what a read shows, as parallel lists (time, CHANGE, the
   * index of the same pid's previous change or -1), and per pid the index of its last.
   */
  #changeNs: number[] = [];
  #changeKind: number[] = [];
  #changePrev: number[] = [];
  #lastChange = new Map<number, number>();
  #complete = true;
  #lastNs = 0;
  #vouched: ExecCheck | null;
  #exeElsewhere: boolean;
  #inCreatorsCgroups: ExecCheck | null;
  #knowsCwd: ExecCheck | null;

  /**
   * `now`: CLOCK_MONOTONIC in ns, to date each read. `vouched`: whether another source gives
   * an exec its argv, comm, uid, login uid and parent exactly (then only what it cannot say
   * is read: the directory, the cgroup, and the executable unless `exeElsewhere`, another
   * source naming every exec's program).
   */
  constructor(
    reader: ProcReader,
    now: () => number,
    vouched?: ExecCheck,
    exeElsewhere = false,
    rest: { inCreatorsCgroups?: ExecCheck; knowsCwd?: ExecCheck } = {},
  ) {
    this.#reader = reader;
    this.#now = now;
    this.#vouched = vouched ?? null;
    this.#exeElsewhere = exeElsewhere;
    this.#inCreatorsCgroups = rest.inCreatorsCgroups ?? null;
    this.#knowsCwd = rest.knowsCwd ?? null;
  }

  /**
   * Reads `/proc` for the execs among `batch[from…]`, just decoded; `storm`: the loop is
   * pacing a storm ({@linkcode STORM_FRESH_READ_NS}).
   */
  readNew(batch: readonly Decoded[], from: number, storm = false): void {
    const freshNs = storm ? STORM_FRESH_READ_NS : FRESH_READ_NS;
    for (let i = from; i < batch.length; i++) {
      const ev = batch[i];
      if (ev.what !== "exec") continue;
      const fresh = this.#now() - ev.timestampNs <= freshNs;
      const info = this.#vouched?.(ev.tgid, ev.timestampNs)
        ? this.#readRest(ev.tgid, ev.timestampNs, fresh)
        : this.#read(ev.tgid, fresh);
      this.#infos[i] = info;
      this.#readNs[i] = this.#now();
      if (info !== NULL_INFO) this.#found = true;
    }
  }

  /**
   * Starts validating a drained batch. `complete`: the drain stopped because the socket
   * was empty (not at a size cap).
   */
  begin(batch: readonly Decoded[], complete: boolean): void {
    this.#complete = complete;
    this.#lastChange.clear();
    this.#changeNs.length = this.#changeKind.length = this.#changePrev.length = 0;
    // Reads that found nothing stay nothing whatever changed: in a storm, most batches.
    const track = this.#found;
    let lastNs = 0;
    for (const ev of batch) {
      if (ev.what === "error") continue;
      if (ev.timestampNs > lastNs) lastNs = ev.timestampNs;
      if (!track || ev.what === "unknown") continue;
      const kind = changeOf(ev);
      if (kind === CHANGE.NONE) continue;
      this.#changePrev.push(this.#lastChange.get(ev.tgid) ?? -1);
      this.#lastChange.set(ev.tgid, this.#changeNs.length);
      this.#changeNs.push(ev.timestampNs);
      this.#changeKind.push(kind);
    }
    this.#lastNs = lastNs;
  }

  /** What the exec at `batch[index]` may claim: its read, or {@linkcode NULL_INFO}. */
  take(index: number, pid: number, execNs: number): ExecInfo {
    let info = this.#infos[index];
    if (info === undefined || info === NULL_INFO) return NULL_INFO;
    const readNs = this.#readNs[index];
    // Every event up to the read must be in this batch…
    if (!this.#complete && this.#lastNs < readNs + READ_MARGIN_NS) return NULL_INFO;
    // …and what any of them changed before the read is not the exec's: null, never the
    // changed value.
    for (let c = this.#lastChange.get(pid) ?? -1; c >= 0; c = this.#changePrev[c]) {
      const ts = this.#changeNs[c], kind = this.#changeKind[c];
      if (ts <= execNs || ts > readNs + READ_MARGIN_NS) continue;
      if (kind === CHANGE.ALL) return NULL_INFO;
      info = kind === CHANGE.NAME ? { ...info, comm: null, argv: null } : { ...info, uid: null };
    }
    return info;
  }

  /** Forgets the batch's reads. */
  end(): void {
    this.#infos.length = this.#readNs.length = 0;
    this.#found = false;
  }

  /**
   * What no other source says of a vouched-for exec: cwd and cgroup (kept only fresh, as in
   * {@linkcode #read}) unless a source says them too, and the executable when nothing else
   * names it. Usually nothing: the exec costs no `/proc` read at all.
   */
  #readRest(pid: number, execNs: number, fresh: boolean): ExecInfo {
    const r = this.#reader;
    let exe: string | null = null, notHere = false;
    if (!this.#exeElsewhere) {
      const link = r.exe(pid);
      notHere = link === NOT_HERE;
      exe = notHere ? null : link;
    }
    if (!fresh && exe === null && !notHere) return NULL_INFO;
    // In its creator's cgroups: its container is its creator's (undefined: kept).
    const placed = fresh && this.#inCreatorsCgroups !== null &&
      this.#inCreatorsCgroups(pid, execNs);
    const cgroup = fresh && !placed ? r.cgroup(pid) : null;
    // The directory, unless a source says it; also the proof that a cgroup read came before
    // the process left its cgroups. No cgroup file: the process is reaped, directory and all.
    const cwd = fresh && (placed ? !this.#knowsCwd?.(pid, execNs) : cgroup !== null)
      ? r.cwd(pid)
      : null;
    // Nothing found (the usual end of a storm's reads): one shared object, no changes to track.
    if (exe === null && !notHere && cwd === null) return NULL_INFO;
    return {
      ...NULL_INFO,
      exe,
      exeNotHere: notHere || undefined,
      cwd,
      container: placed ? undefined : placedBefore(cgroup, cwd),
    };
  }

  #read(pid: number, fresh: boolean): ExecInfo {
    // status gives name, parent and uid in one read; stat (for the start time) is not
    // needed: validation against the batch already rules out a reused pid.
    const r = this.#reader;
    const st = r.status(pid);
    // A tracer can hold a process between installing its next image and reporting that
    // exec, so what /proc shows of a traced process may be a later program: not kept.
    if (!st || st.tracerPid !== 0) return NULL_INFO;
    const comm = st.comm, uid = st.euid, ppid = st.ppid;
    // An exited process has no memory, executable or directory left to read; its login
    // uid and cgroup (there until it is reaped) are not worth a storm's reads. One object
    // per read: this runs for every exec of a storm.
    if (st.exited) return { ...NULL_INFO, comm, uid, ppid };
    const link = r.exe(pid);
    // A path that reaches another file from here names nothing, and no other source may;
    // the process's other facts stand.
    const notHere = link === NOT_HERE;
    const exe = notHere ? null : link;
    if (!fresh) return { ...NULL_INFO, comm, uid, ppid, exe, exeNotHere: notHere || undefined };
    const cgroup = r.cgroup(pid);
    const cwd = r.cwd(pid);
    return {
      comm,
      argv: r.cmdline(pid),
      exe,
      uid,
      ppid,
      startTicks: null,
      cwd,
      loginUid: r.loginUid(pid) ?? null,
      container: placedBefore(cgroup, cwd),
      exeNotHere: notHere || undefined,
    };
  }
}
