/**
 * The exec-facts stage of the BPF source: pairs each exec event of the proc connector with
 * the record the BPF program wrote inside the same `execve`, and gives the exec that
 * record's facts.
 *
 * Pairing is by process id and time, never by position: the record is taken on the exec
 * path just before the connector's event is stamped, so an event's own record is the
 * newest of its pid no later than the event. Older ones of the pid belong to execs whose
 * events were lost: they are counted and dropped, never given to a later exec. One case
 * cannot be told apart: the event's own record dropped by a full ring buffer while an
 * older record's event was lost too. So after the ring buffer has dropped anything, a
 * record older than a connector loss is not used (the exec keeps its `/proc` facts).
 *
 * The program is loaded before the connector is subscribed (the verifier takes a tenth of
 * a second or more, and an exec in between would have an event and no record), so the first
 * records can be of execs whose events were never sent: those, older than the subscription,
 * are dropped without being counted.
 *
 * @module
 */

import type { ExecStage, StageLoss } from "../../pipeline/stage.ts";
import type { ExecInfo } from "../../tree/tree.ts";
import { type BpfExec, decodeBpfExec } from "./record.ts";

/** The cgroup moves counted when the tree's containers began to be read, and when (ns). */
export interface CgroupBaseline {
  /** The count of moves then. */
  moves: number;
  /** CLOCK_MONOTONIC then: an exec before it is never said to be in its creator's cgroups. */
  ns: number;
}

/** What the stage reads: the ring buffer's records and the program's drop count. */
export interface BpfRecords {
  /** Hands every committed record to `take` (a view valid during the call). */
  drain(take: (record: Uint8Array) => void): void;
  /** Records the ring buffer could not take, since the program was loaded. */
  drops(): number;
  /**
   * The moves counted just before the tree was read from `/proc` (absent or null: moves are
   * not counted, and no exec is said to keep its creator's cgroups).
   */
  readonly cgroupBaseline?: CgroupBaseline | null;
  /** Cgroup moves counted since the program was loaded. */
  cgroupMoves?(): number;
}

/**
 * The canonical path of `path` when it still names the file `id` (`major:minor:inode`),
 * else null: a path is only a name, the identity is the fact.
 */
export type ExeResolver = (path: string, id: string) => string | null;

/** Whether `path` reaches, from here, the file `id` (device and inode) names (`sameFile`). */
export type ExeCheck = (id: string, path: string) => boolean;

/** Most records held waiting for their events; beyond, the oldest are dropped (counted). */
export const MAX_PENDING_RECORDS = 65536;

/**
 * Most record bytes held waiting for their events (argv of up to 32 KiB each): the same.
 * Records wait while proctree reads a backlog of connector events; 64 MiB is 2 048 records
 * of 32 KiB, or about 100 000 ordinary ones.
 */
export const MAX_PENDING_BYTES = 64 << 20;

/**
 * A record this much older than the newest event applied has lost its event: an event
 * reaches proctree after its record, and the connector delivers in order.
 */
export const STALE_RECORD_NS = 10_000_000_000;

/** Least time between two sweeps for stale records (in kernel time). */
const SWEEP_EVERY_NS = 1_000_000_000;

/** `#exe`'s verdicts besides a name: the facts' own name stands; no name reaches the file. */
const KEEP_EXE = Symbol("keep");
const NOT_REACHED = Symbol("not reached");

/** The counters, as the stats line names them. */
interface Counts {
  execs_facts_from_bpf: number;
  execs_without_bpf_record: number;
  bpf_records_unpaired: number;
  bpf_records_malformed: number;
  bpf_records_dropped: number;
  argv_truncated: number;
  execs_cwd_unverified: number;
  execs_in_creators_cgroups: number;
  execs_named_by_bpf: number;
  execs_exe_unverified: number;
  execs_exe_corrected: number;
}

/** Bytes of `argv` as the kernel holds it: each element's bytes (see `text.ts`) and a NUL. */
export function argvByteLength(argv: readonly string[]): number {
  let n = 0;
  for (const a of argv) {
    n++;
    for (let i = 0; i < a.length; i++) {
      const c = a.charCodeAt(i);
      if (c < 0x80) n++;
      else if (c < 0x800) n += 2;
      else if (c >= 0xdc80 && c <= 0xdcff) n++; // an escaped byte that was not UTF-8
      else if (c >= 0xd800 && c <= 0xdbff) n += 4, i++; // a pair: one 4-byte character
      else n += 3;
    }
  }
  return n;
}

/**
 * Whether `whole` is all of `trueBytes` and begins with `cut` (its last element completed):
 * a `/proc` read cut short (the process exited while it was read) is not whole.
 */
function extends_(
  whole: readonly string[],
  cut: readonly string[] | null,
  trueBytes: number,
): boolean {
  if (cut === null || cut.length === 0 || whole.length < cut.length) return false;
  if (argvByteLength(whole) !== trueBytes) return false;
  const last = cut.length - 1;
  for (let i = 0; i < last; i++) if (whole[i] !== cut[i]) return false;
  return whole[last].startsWith(cut[last]);
}

/** Pairs exec events with BPF records (see the module doc). */
export class BpfExecStage implements ExecStage {
  readonly name = "bpf";
  readonly #src: BpfRecords;
  readonly #resolveExe: ExeResolver | null;
  readonly #reaches: ExeCheck | null;
  /** When the connector's events began to be sent (kernel time): older records are not owed. */
  readonly #subscribedNs: number;
  /** Unpaired records by pid, oldest first. */
  readonly #pending = new Map<number, BpfExec[]>();
  #size = 0;
  #bytes = 0;
  /** The most records, and bytes, held after any drain: what pairing has cost in memory. */
  #peakSize = 0;
  #peakBytes = 0;
  /** Newest record time seen. */
  #newestNs = 0;
  /** Newest record time seen when connector events were last lost (-1: never). */
  #lossAtNs = -1;
  #sweptNs = -Infinity;
  readonly #counts: Counts = {
    execs_facts_from_bpf: 0,
    execs_without_bpf_record: 0,
    bpf_records_unpaired: 0,
    bpf_records_malformed: 0,
    bpf_records_dropped: 0,
    argv_truncated: 0,
    execs_cwd_unverified: 0,
    execs_in_creators_cgroups: 0,
    execs_named_by_bpf: 0,
    execs_exe_unverified: 0,
    execs_exe_corrected: 0,
  };

  /**
   * A stage over `src`; `resolveExe` names the executable of an exec no other source could
   * name (absent: such an exec's `exe` stays null); `reaches` checks a name another source
   * gave against the file that ran (absent: such names are kept unchecked), and the record's
   * own paths against the file and the directory it names (absent: those are not used).
   * `subscribedNs`: when the connector was subscribed (CLOCK_MONOTONIC; absent: before any
   * record): a record older than that whose event never comes is not counted unpaired.
   */
  constructor(
    src: BpfRecords,
    resolveExe?: ExeResolver,
    reaches?: ExeCheck,
    subscribedNs = -Infinity,
  ) {
    this.#src = src;
    this.#resolveExe = resolveExe ?? null;
    this.#reaches = reaches ?? null;
    this.#subscribedNs = subscribedNs;
  }

  poll(): void {
    this.#src.drain((r) => {
      const rec = decodeBpfExec(r);
      if (!rec) {
        this.#counts.bpf_records_malformed++;
        return;
      }
      const list = this.#pending.get(rec.tgid);
      if (list) list.push(rec);
      else this.#pending.set(rec.tgid, [rec]);
      this.#size++;
      this.#bytes += rec.recordBytes;
      if (rec.ktimeNs > this.#newestNs) this.#newestNs = rec.ktimeNs;
    });
    if (this.#size > MAX_PENDING_RECORDS || this.#bytes > MAX_PENDING_BYTES) this.#trim();
    if (this.#size > this.#peakSize) this.#peakSize = this.#size;
    if (this.#bytes > this.#peakBytes) this.#peakBytes = this.#bytes;
  }

  losses(): StageLoss[] {
    const drops = this.#src.drops();
    const count = drops - this.#counts.bpf_records_dropped;
    this.#counts.bpf_records_dropped = drops;
    return count > 0 ? [{ reason: "bpf_ringbuf_full", count }] : [];
  }

  vouches(pid: number, execNs: number): boolean {
    // A cut argv is not vouched for: `/proc` may still have it whole.
    const rec = this.#newest(pid, execNs);
    return rec !== null && !rec.argvTruncated && rec.argv !== null;
  }

  /**
   * Whether the exec of `pid` at `execNs` runs in the cgroups its creator's container was
   * read from, by its record: no task changed cgroup on the host since the tree was read
   * (the moves counted at the exec are those counted then), and its cgroups are its
   * parent's. Its container is then its creator's, without reading `/proc/<pid>/cgroup`.
   */
  inCreatorsCgroups(pid: number, execNs: number): boolean {
    const rec = this.#newest(pid, execNs);
    return rec !== null && this.#unmoved(rec);
  }

  /** See {@linkcode inCreatorsCgroups}. */
  #unmoved(rec: BpfExec): boolean {
    const base = this.#src.cgroupBaseline;
    return base != null && rec.sameCgroups && rec.cgroupMoves === base.moves &&
      rec.ktimeNs > base.ns;
  }

  /** Whether the exec's record names its working directory (see `#cwd`). */
  knowsCwd(pid: number, execNs: number): boolean {
    const rec = this.#newest(pid, execNs);
    return rec !== null && this.#reached(rec.cwdPath, rec.cwdId) !== null;
  }

  exec(pid: number, execNs: number, facts: ExecInfo): ExecInfo {
    const rec = this.#take(pid, execNs);
    if (!rec) {
      this.#counts.execs_without_bpf_record++;
      return facts;
    }
    this.#counts.execs_facts_from_bpf++;
    if (this.#unmoved(rec)) this.#counts.execs_in_creators_cgroups++;
    // A cut argv that a validated /proc read shows whole (it begins the same): the whole one.
    const whole = rec.argvTruncated && facts.argv !== null &&
      extends_(facts.argv, rec.argv, rec.argvBytes);
    if (rec.argvTruncated && !whole) this.#counts.argv_truncated++;
    const exe = this.#exe(facts, rec);
    const kept = exe === KEEP_EXE;
    // Every field written out (no spread of `facts`): one object of one shape per exec.
    return {
      comm: rec.comm,
      // Unreadable in the new image (never seen here): what `/proc` could vouch for.
      argv: whole ? facts.argv : rec.argv ?? facts.argv,
      exe: kept ? facts.exe : exe === NOT_REACHED ? null : exe,
      // A name dropped takes its script with it.
      script: kept || facts.exe === null ? facts.script : null,
      uid: rec.euid,
      ppid: rec.ppid,
      startTicks: rec.startTicks,
      cwd: this.#cwd(facts, rec),
      loginUid: rec.loginUid,
      container: facts.container,
      exeNotHere: kept ? facts.exeNotHere : exe === NOT_REACHED || undefined,
      argvTrueBytes: rec.argvTruncated && !whole ? rec.argvBytes : undefined,
    };
  }

  /**
   * The executable. A name fanotify or `/proc` gave is kept when it reaches the very file
   * that ran (the record's device and inode); one that does not is dropped (counted): a
   * name matched by pid alone can be a later exec's — fanotify's opens of the process that
   * took the pid next, read while the connector lags behind a storm. Where no name is left:
   * the path the program walked inside `execve`, when it reaches that file from here; else
   * the record's path as the kernel was given it, resolved (a `#!` script's is its
   * interpreter's, as `/proc` says). When neither does (a path that names another file from
   * here, e.g. a bind mount in the process's own mount namespace, or a relative one), the
   * exec is marked so that no later source names it by that path either (audit's `exe=` is
   * the same path, unchecked). The verdict: the name to use (null: none), `KEEP_EXE` (the
   * facts' own name, script and mark stand) or `NOT_REACHED` (no name; the exec is marked).
   */
  #exe(facts: ExecInfo, rec: BpfExec): string | null | typeof KEEP_EXE | typeof NOT_REACHED {
    if (facts.exeNotHere || !rec.exeId) return KEEP_EXE;
    if (facts.exe !== null) {
      if (!this.#reaches || this.#reaches(rec.exeId, facts.exe)) return KEEP_EXE;
      this.#counts.execs_exe_corrected++;
    }
    if (!this.#resolveExe) return null;
    const exe = this.#reached(rec.exePath, rec.exeId) ??
      (rec.interp.startsWith("/") ? this.#resolveExe(rec.interp, rec.exeId) : null);
    if (exe === null) {
      this.#counts.execs_exe_unverified++;
      return NOT_REACHED;
    }
    this.#counts.execs_named_by_bpf++;
    return exe;
  }

  /**
   * The working directory at the exec: the record's walked path when it reaches, from here,
   * the directory the record names; else what `/proc` said (a process in another mount
   * namespace walks to its own root), counted.
   */
  #cwd(facts: ExecInfo, rec: BpfExec): string | null {
    const cwd = this.#reached(rec.cwdPath, rec.cwdId);
    if (cwd !== null) return cwd;
    this.#counts.execs_cwd_unverified++;
    return facts.cwd;
  }

  /**
   * A path the record walked, when it reaches from here the file or directory `id` the record
   * names (the program's: `exePath`, `exeId`; the directory's: `cwdPath`, `cwdId`); else null.
   */
  #reached(path: string | null, id: string | null): string | null {
    return path !== null && id !== null && this.#reaches?.(id, path) ? path : null;
  }

  /**
   * Whether this stage names the newest exec of `pid` exactly: its record (the ring's new
   * records taken first) is of a program the kernel ran as given (not a `#!` script or a
   * binfmt_misc file), with a walked path that reaches it. fanotify's opens of such an exec
   * need not be read (`ffi/source/exec_names.ts`). One race is left: opens of a second exec
   * of `pid` read before its record is written are taken for the first's — that exec then
   * has no `script` (its `exe` is still named, from its own record).
   */
  namesExactly(pid: number): boolean {
    this.poll();
    const list = this.#pending.get(pid);
    const rec = list?.[list.length - 1];
    return rec !== undefined && rec.interp === rec.filename && this.#usable(rec) &&
      this.#reached(rec.exePath, rec.exeId) !== null;
  }

  lost(): void {
    this.#lossAtNs = this.#newestNs;
  }

  sweep(appliedNs: number): void {
    // Called after every drain: a pass over every held record once a second is enough. The
    // pass is a method of its own: in one, V8 compiled the drain's early return alone and
    // threw the code away at every pass (55 times in a 20 s storm).
    if (appliedNs - this.#sweptNs >= SWEEP_EVERY_NS) this.#sweepNow(appliedNs);
  }

  #sweepNow(appliedNs: number): void {
    this.#sweptNs = appliedNs;
    const before = appliedNs - STALE_RECORD_NS;
    // `forEach`, not `for…of`: the entries iterator makes a [pid, list] pair for every pid
    // held, and a storm's connector can lag its records by tens of thousands.
    this.#pending.forEach((list, pid) => {
      let i = 0;
      while (i < list.length && list[i].ktimeNs < before) i++;
      if (i > 0) this.#forget(pid, list, i);
    });
  }

  /** The counters, and the records held for their events: now, and the most after a drain. */
  counters(): Readonly<Record<string, number>> {
    const base = this.#src.cgroupBaseline;
    const moves = base && this.#src.cgroupMoves ? this.#src.cgroupMoves() - base.moves : null;
    const held = {
      bpf_records_held: this.#size,
      bpf_records_held_peak: this.#peakSize,
      bpf_records_held_peak_bytes: this.#peakBytes,
    };
    return moves === null
      ? { ...this.#counts, ...held }
      : { ...this.#counts, ...held, cgroup_moves: moves };
  }

  /**
   * How many of `list`'s records are up to `execNs` (the last is the exec's own candidate);
   * 0 when there is none or no list.
   */
  #upTo(list: BpfExec[] | undefined, execNs: number): number {
    if (!list) return 0;
    let n = 0;
    while (n < list.length && list[n].ktimeNs <= execNs) n++;
    return n;
  }

  /** Whether `rec` may be used: not older than a connector loss once the ring has dropped. */
  #usable(rec: BpfExec): boolean {
    return !(this.#counts.bpf_records_dropped > 0 && rec.ktimeNs <= this.#lossAtNs);
  }

  /** The newest record of `pid` no later than `execNs`, if it can be used; left in place. */
  #newest(pid: number, execNs: number): BpfExec | null {
    const list = this.#pending.get(pid);
    const n = this.#upTo(list, execNs);
    const rec = n > 0 ? list![n - 1] : null;
    return rec && this.#usable(rec) ? rec : null;
  }

  /** The record of the exec of `pid` at `execNs`, if one can be vouched for; taken. */
  #take(pid: number, execNs: number): BpfExec | null {
    const list = this.#pending.get(pid);
    const n = this.#upTo(list, execNs);
    if (n === 0) return null;
    const rec = list![n - 1];
    // The older ones' events were lost: counted, when owed. The one taken is paired.
    const owed = this.#remove(pid, list!, n);
    const taken = this.#usable(rec);
    this.#counts.bpf_records_unpaired += taken && this.#owed(rec) ? owed - 1 : owed;
    return taken ? rec : null;
  }

  /** Whether `rec`'s event is owed to proctree: the record is not older than the subscription. */
  #owed(rec: BpfExec): boolean {
    return rec.ktimeNs >= this.#subscribedNs;
  }

  /** Drops the first `n` records of `pid`: the owed ones counted unpaired. */
  #forget(pid: number, list: BpfExec[], n: number): void {
    this.#counts.bpf_records_unpaired += this.#remove(pid, list, n);
  }

  /** Removes the first `n` records of `pid`; how many of them were owed an event. */
  #remove(pid: number, list: BpfExec[], n: number): number {
    let owed = 0;
    this.#size -= n;
    for (let i = 0; i < n && i < list.length; i++) {
      this.#bytes -= list[i].recordBytes;
      if (this.#owed(list[i])) owed++;
    }
    if (n >= list.length) this.#pending.delete(pid);
    else list.splice(0, n);
    return owed;
  }

  /** Drops the oldest pids' records until within bounds (one pass: a Map deletes lazily). */
  #trim(): void {
    let size = this.#size, bytes = this.#bytes;
    for (const [pid, list] of this.#pending) {
      let n = 0;
      while (n < list.length && (size > MAX_PENDING_RECORDS || bytes > MAX_PENDING_BYTES)) {
        size--;
        bytes -= list[n++].recordBytes;
      }
      if (n > 0) this.#forget(pid, list, n);
      if (size <= MAX_PENDING_RECORDS && bytes <= MAX_PENDING_BYTES) return;
    }
  }
}
