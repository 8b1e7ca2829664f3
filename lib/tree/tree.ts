/**
 * The live process tree: seeded from a `/proc` snapshot, kept current by kernel events.
 *
 * - A node is one process incarnation: a fork for a pid already held makes a new node, so a
 *   reused pid never joins an old process's lineage.
 * - `parent` is the process that created this one (from the fork event) and never changes:
 *   chains and `--under` follow creation lineage, so a daemon that double-forks stays under
 *   whatever started it. `ppid` is the current parent as the kernel last reported it
 *   (reparenting to init or a subreaper shows there).
 * - Exited nodes stay for a grace period, and as long as a child of theirs is held, so late
 *   lookups and the chains of short-lived children work. A cap bounds how many are kept.
 *
 * @module
 */

import { NS_PER_TICK } from "./proc_parse.ts";
import { monotonicOfTicks, processId, ticksOf } from "./identity.ts";
import type { Container } from "./container.ts";

/**
 * What a process runs as: the facts of its last exec, or its creator's until it execs (the
 * kernel copies them into the child). The tree keeps them as one immutable object, shared
 * by a process and the children it forks until they exec: a new fact is one field here, set
 * in {@linkcode PidTree.exec} and read through a node.
 */
export interface ProcFacts {
  /** Kernel name; null when not known (an exec whose process could not be read). */
  readonly comm: string | null;
  /** Arguments from `/proc/<pid>/cmdline`; null when not readable. */
  readonly argv: readonly string[] | null;
  /** Executable path from `/proc/<pid>/exe`; null when not readable. */
  readonly exe: string | null;
  /** The script a `#!` exec ran (with `exe` its interpreter); null: none or unknown. */
  readonly script: string | null;
  /** Effective uid. */
  readonly uid: number | null;
  /** Working directory read with the last exec; null when not read. */
  readonly cwd: string | null;
  /** Login uid read with the last exec; null when unset or not read. */
  readonly loginUid: number | null;
  /**
   * The container its cgroup names: read with each exec, else inherited from its creator
   * (a child starts in its parent's cgroup); null: none; undefined: never known.
   */
  readonly container: Container | null | undefined;
}

/** Facts of a process the tree knows nothing of yet. */
const NO_FACTS: ProcFacts = Object.freeze({
  comm: null,
  argv: null,
  exe: null,
  script: null,
  uid: null,
  cwd: null,
  loginUid: null,
  container: undefined,
});

/**
 * One process incarnation, as the tree shows it to its consumers (records, subtrees, the
 * library): read-only. Only the tree changes nodes, from kernel events.
 */
export interface ProcNode extends ProcFacts {
  /** Process id. */
  readonly pid: number;
  /** Current parent pid as last reported by the kernel (0: unknown or none). */
  readonly ppid: number;
  /** The creator, for lineage; null for a root or when unknown. */
  readonly parent: ProcNode | null;
  /** Children created by this process and still held by the tree (null: none yet; most
   * processes never fork, and an empty Set per node costs more than the node). */
  readonly children: ReadonlySet<ProcNode> | null;
  /** Start: fork event time (CLOCK_MONOTONIC ns), when the fork was seen. */
  readonly startNs: number | null;
  /** Start from `/proc/<pid>/stat` (ticks after boot), when it was read. */
  readonly startTicks: number | null;
  /** False once the exit was seen (or the process was found gone). */
  readonly alive: boolean;
  /** Raw wait status; null while alive or when the exit was not seen. */
  readonly exitStatus: number | null;
  /** Exit time (CLOCK_MONOTONIC ns); null while alive or when not seen. */
  readonly exitNs: number | null;
  /** True once eviction was due but children kept the node. */
  readonly expired: boolean;
}

/** The tree's own, writable node; its facts are read through {@linkcode ProcFacts}. */
class Node implements ProcNode {
  readonly pid: number;
  ppid: number;
  parent: Node | null;
  children: Set<Node> | null = null;
  startNs: number | null = null;
  startTicks: number | null = null;
  facts: ProcFacts = NO_FACTS;
  alive = true;
  exitStatus: number | null = null;
  exitNs: number | null = null;
  expired = false;
  /**
   * Live threads besides the main one (null: none known). A process ends when its last
   * thread does: its main thread may end first (`pthread_exit`), and an `execve` from
   * another thread ends the main thread and makes the caller the main one.
   */
  tids: Set<number> | null = null;
  /** The main thread has ended while other threads run. */
  mainExited = false;
  /** The id, once asked for (see `identity.ts`). */
  id?: string;
  /** The process that held this pid before (one level: its own `previous` is cut). */
  previous: Node | null = null;
  /**
   * When the pid's earlier holders had all ended, CLOCK_MONOTONIC ns, as an upper bound
   * (-Infinity: none since proctree started; Infinity: not known).
   */
  prevExitNs = -Infinity;

  constructor(pid: number, parent: Node | null) {
    this.pid = pid;
    this.ppid = parent?.pid ?? 0;
    this.parent = parent;
  }

  get comm(): string | null {
    return this.facts.comm;
  }
  get argv(): readonly string[] | null {
    return this.facts.argv;
  }
  get exe(): string | null {
    return this.facts.exe;
  }
  get script(): string | null {
    return this.facts.script;
  }
  get uid(): number | null {
    return this.facts.uid;
  }
  get cwd(): string | null {
    return this.facts.cwd;
  }
  get loginUid(): number | null {
    return this.facts.loginUid;
  }
  get container(): Container | null | undefined {
    return this.facts.container;
  }

  /** Replaces some of its facts (a new object: the old one may be shared). */
  change(changed: Partial<ProcFacts>): void {
    this.facts = { ...this.facts, ...changed };
  }
}

/** What exec enrichment learned from `/proc`; null fields were not readable. */
export interface ExecInfo {
  /** The name (at most 15 bytes from the kernel). */
  comm: string | null;
  /** Arguments from `/proc/<pid>/cmdline`; null when not readable. */
  argv: string[] | null;
  /** Executable path from `/proc/<pid>/exe`; null when not readable. */
  exe: string | null;
  /** The script of a `#!` exec (from fanotify); null or absent: none or unknown. */
  script?: string | null;
  /** Effective uid; null when unknown. */
  uid: number | null;
  /** Parent pid from stat, used only for a process the tree has never seen. */
  ppid: number | null;
  /** Start time from `/proc/<pid>/stat`, in ticks after boot. */
  startTicks: number | null;
  /** Working directory from `/proc/<pid>/cwd`; null when not readable. */
  cwd: string | null;
  /** Login uid from `/proc/<pid>/loginuid`; null when unset or not readable. */
  loginUid: number | null;
  /** From `/proc/<pid>/cgroup`: the container, null for none, undefined when not read. */
  container?: Container | null;
  /** The file that ran is not the one its path reaches from here: no source may name it. */
  exeNotHere?: true;
  /** argv was cut (the BPF source carries at most 32 KiB): its true length in bytes. */
  argvTrueBytes?: number;
}

/** A live process for seeding and resync. */
export interface SeedEntry {
  /** Process id. */
  pid: number;
  /** Parent process id. */
  ppid: number;
  /** The name (at most 15 bytes from the kernel). */
  comm: string;
  /** Effective uid; null when not readable. */
  euid: number | null;
  /** Start time from `/proc/<pid>/stat`, in ticks after boot. */
  startTicks: number;
  /** Its other threads (besides the main one), when it has any. */
  tids?: readonly number[];
  /** Its container (see {@linkcode ProcNode.container}); undefined: not read. */
  container?: Container | null;
}

/** Tree settings. */
export interface TreeOptions {
  /** How long exited processes stay, in ms. */
  graceMs?: number;
  /** Most exited nodes kept; the oldest are dropped first. */
  maxExited?: number;
  /** CLOCK_BOOTTIME − CLOCK_MONOTONIC in ns, to compare fork times with stat start times. */
  bootOffsetNs?: number;
  /** The boot part of process ids (`identity.ts`); default `"noboot"`. */
  bootTag?: string;
}

/** Counters for stats lines and tests. */
export interface TreeStats {
  /** Live processes held. */
  live: number;
  /** Exited processes still held. */
  exited: number;
  /** Exited nodes dropped because of the cap before their grace period ended. */
  evictedByCap: number;
  /** Live nodes found to be gone without an exit event (lost events, resync). */
  vanished: number;
}

/** Outcome of a reconciliation with `/proc`. */
export interface ResyncResult {
  /** Live processes added. */
  added: number;
  /** Processes marked gone. */
  removed: number;
}

/** Default time exited processes stay in the tree, for late lookups and chains. */
export const DEFAULT_GRACE_MS = 60_000;

/** Default cap on exited processes held: about 4 MB of nodes. */
export const DEFAULT_MAX_EXITED = 10_000;

function newNode(pid: number, parent: Node | null): Node {
  return new Node(pid, parent);
}

/**
 * Most pids whose last process the tree has dropped and remembers the exit of; beyond
 * (checked each {@linkcode FREED_PIDS_TRIM} more), the oldest are forgotten and their exits
 * only bounded (a pid can be up to 4 million).
 */
export const MAX_FREED_PIDS = 65_536;

/** How far past {@linkcode MAX_FREED_PIDS} the remembered exits grow before the oldest go. */
export const FREED_PIDS_TRIM = 1_024;

/** The questions consumers may ask the live tree (the library's `onListening` gets this). */
export interface ProcessTree {
  /** The newest node for `pid`, alive or exited-but-held. */
  get(pid: number): ProcNode | undefined;
  /** Every node currently reachable by pid. */
  nodes(): IterableIterator<ProcNode>;
  /** Ancestors by creation, self first, up to the root (at most `max`). */
  chain(node: ProcNode, max?: number): ProcNode[];
  /** The process's id (`identity.ts`); null when its start time is unknown. */
  idOf(node: ProcNode): string | null;
  /** When the process started, CLOCK_MONOTONIC ns; null when unknown. */
  startOf(node: ProcNode): number | null;
  /** The held process with this id, if any. */
  byId(id: string): ProcNode | undefined;
  /** True when `node` or one of its ancestors satisfies `match`. */
  isUnder(node: ProcNode, match: (n: ProcNode) => boolean): boolean;
  /** True when `ancestor` is `node` or created it, directly or not. */
  descendsFrom(node: ProcNode, ancestor: ProcNode): boolean;
  /** Every held node created (directly or not) by `node`. */
  descendants(node: ProcNode): ProcNode[];
  /** Counters. */
  readonly stats: TreeStats;
}

/** The process tree: changed only by kernel events and `/proc` snapshots. */
export class PidTree implements ProcessTree {
  #byPid = new Map<number, Node>();
  #exitQueue: Node[] = [];
  #queueHead = 0;
  #graceNs: number;
  #maxExited: number;
  #bootOffsetNs: number;
  #bootTag: string;
  #exitedHeld = 0;
  /** Pids whose last node was dropped: when that process ended. */
  #freedNs = new Map<number, number>();
  /** Every pid not in `#freedNs` nor held was free (as far as the tree knows) by then. */
  #forgottenNs = -Infinity;
  /** The newest loss of kernel events: until then, processes may have come and gone unseen. */
  #lostNs = -Infinity;
  #evictedByCap = 0;
  #vanished = 0;
  #live = 0;

  /** An empty tree; `seed` fills it. */
  constructor(options: TreeOptions = {}) {
    this.#graceNs = (options.graceMs ?? DEFAULT_GRACE_MS) * 1e6;
    this.#maxExited = options.maxExited ?? DEFAULT_MAX_EXITED;
    this.#bootOffsetNs = options.bootOffsetNs ?? 0;
    this.#bootTag = options.bootTag ?? "noboot";
  }

  /** Counters. */
  get stats(): TreeStats {
    return {
      live: this.#live,
      exited: this.#exitedHeld,
      evictedByCap: this.#evictedByCap,
      vanished: this.#vanished,
    };
  }

  /** The newest node for `pid`, alive or exited-but-held. */
  get(pid: number): ProcNode | undefined {
    return this.#byPid.get(pid);
  }

  /** Every node currently reachable by pid. */
  nodes(): IterableIterator<ProcNode> {
    return this.#byPid.values();
  }

  /** Adds live processes from a snapshot (parents resolved among them). */
  seed(entries: readonly SeedEntry[]): void {
    const added: [Node, number][] = [];
    for (const e of entries) {
      const old = this.#byPid.get(e.pid);
      if (old?.alive) continue;
      const n = newNode(e.pid, null);
      this.#handOver(n, old);
      n.change({ comm: e.comm, uid: e.euid, container: e.container });
      n.startTicks = e.startTicks;
      n.ppid = e.ppid;
      if (e.tids?.length) n.tids = new Set(e.tids);
      this.#put(n);
      added.push([n, e.ppid]);
    }
    for (const [n, ppid] of added) {
      const p = this.#byPid.get(ppid);
      // A snapshot read while pids are reused can claim A under B and B under A.
      if (p && !this.descendsFrom(p, n)) this.#link(n, p);
    }
  }

  /** A new process (`pid === tgid` in the event) created by process `parentTgid`. */
  fork(pid: number, parentTgid: number, timestampNs: number): ProcNode {
    const parent = this.#byPid.get(parentTgid) ?? null;
    const old = this.#byPid.get(pid);
    if (old?.alive && old.startNs === null && old.startTicks !== null) {
      old.startNs = timestampNs;
      if (this.sameStart({ startNs: old.startNs, startTicks: null }, old.startTicks)) {
        // A fork that raced the start-up snapshot: the same process, now with its creator.
        old.ppid = parentTgid;
        if (parent && !old.parent && !this.descendsFrom(parent, old)) this.#link(old, parent);
        return old;
      }
      old.startNs = null;
    }
    this.#retire(pid, timestampNs);
    const n = newNode(pid, null);
    this.#handOver(n, old);
    n.startNs = timestampNs;
    if (parent) {
      this.#link(n, parent);
      // The kernel copies the creator's name and credentials into the child.
      n.facts = parent.facts;
    }
    n.ppid = parentTgid;
    this.#put(n);
    return n;
  }

  /** An exec: the process's identity facts are replaced by what `/proc` said (null: unknown). */
  exec(pid: number, info: ExecInfo): ProcNode {
    let n = this.#byPid.get(pid);
    if (!n || !n.alive) {
      const old = n;
      n = newNode(pid, null);
      this.#handOver(n, old);
      n.startTicks = info.startTicks;
      if (info.ppid !== null) {
        n.ppid = info.ppid;
        const p = this.#byPid.get(info.ppid);
        if (p?.alive) this.#link(n, p);
      }
      this.#put(n);
    }
    // cwd and login uid may change between fork and exec (`cd dir && cmd`, a login's
    // pam_loginuid): unread means unknown. A cgroup move before an exec is rare, and a
    // child starts in its creator's cgroup: an unread container stays inherited.
    n.facts = {
      comm: info.comm,
      argv: info.argv,
      exe: info.exe,
      script: info.script ?? null,
      uid: info.uid ?? n.uid,
      cwd: info.cwd,
      loginUid: info.loginUid,
      container: info.container !== undefined ? info.container : n.container,
    };
    if (info.ppid !== null) n.ppid = info.ppid; // read with the exec: its current parent
    // execve leaves one thread: the one that called it, which becomes the main thread.
    n.tids = null;
    n.mainExited = false;
    if (n.startTicks === null) n.startTicks = info.startTicks;
    return n;
  }

  /** A rename reported by the kernel. */
  rename(pid: number, comm: string): ProcNode | undefined {
    const n = this.#byPid.get(pid);
    if (n?.alive) n.change({ comm });
    return n;
  }

  /** A change of effective uid reported by the kernel. */
  setUid(pid: number, euid: number): ProcNode | undefined {
    const n = this.#byPid.get(pid);
    if (n?.alive) n.change({ uid: euid });
    return n;
  }

  /**
   * A process exit; `parentTgid` is the parent at exit time (shows reparenting). Its live
   * children are reparented by the kernel to a subreaper or init, which no event names:
   * their `ppid` becomes 0 (unknown) until {@linkcode reparent} says.
   */
  exit(pid: number, status: number, parentTgid: number, timestampNs: number): ProcNode | undefined {
    const n = this.#byPid.get(pid);
    if (!n || !n.alive) return undefined;
    if (parentTgid > 0) n.ppid = parentTgid;
    this.#markExited(n, status, timestampNs);
    if (n.children) {
      for (const c of n.children) if (c.alive && c.ppid === pid) c.ppid = 0;
    }
    return n;
  }

  /** The process's id (`identity.ts`), the same on every line; null when its start is unknown. */
  idOf(node: ProcNode): string | null {
    const n = node as Node;
    if (n.id !== undefined) return n.id;
    const ticks = n.startTicks ??
      (n.startNs === null ? null : ticksOf(n.startNs, this.#bootOffsetNs));
    if (ticks === null) return null;
    n.id = processId(this.#bootTag, ticks, n.pid);
    return n.id;
  }

  /** When the process started, CLOCK_MONOTONIC ns (tick precision when seeded); null: unknown. */
  startOf(node: ProcNode): number | null {
    if (node.startNs !== null) return node.startNs;
    return node.startTicks === null ? null : monotonicOfTicks(node.startTicks, this.#bootOffsetNs);
  }

  /**
   * The process that held `pid` at a moment after `afterNs` and no later than `beforeNs`
   * (CLOCK_MONOTONIC), when the tree can tell that exactly one did; else null. For a source
   * that names a process by pid alone and can only bound when (fanotify): never the pid's
   * later process, never an earlier one.
   */
  holder(pid: number, afterNs: number, beforeNs: number): ProcNode | null {
    if (afterNs <= this.#lostNs) return null; // processes of the window may be unseen
    let n: Node | null = this.#byPid.get(pid) ?? null;
    if (n && this.#startBounds(n)[0] > beforeNs) n = n.previous; // it came after
    if (!n) return null;
    const latest = this.#startBounds(n)[1];
    if (latest > beforeNs) return null; // it may have started after
    if (n.exitNs !== null && n.exitNs < afterNs) return null; // gone before: holder unknown
    if (latest > afterNs && n.prevExitNs >= afterNs) return null; // the pid changed hands
    return n;
  }

  /** Kernel events were lost by `nowNs`: processes may have come and gone unseen. */
  lost(nowNs: number): void {
    this.#lostNs = Math.max(this.#lostNs, nowNs);
  }

  /** The earliest and latest the process can have started (ticks from `/proc` are coarse). */
  #startBounds(n: Node): [number, number] {
    if (n.startNs !== null) return [n.startNs, n.startNs];
    if (n.startTicks === null) return [-Infinity, Infinity];
    const t = monotonicOfTicks(n.startTicks, this.#bootOffsetNs);
    return [t, t + NS_PER_TICK];
  }

  /** `n` takes its pid over from `old` (or from a process dropped or never seen). */
  #handOver(n: Node, old: Node | undefined): void {
    let endedNs = this.#forgottenNs;
    if (old) {
      old.previous = null; // one level: a pid's history is not kept as a chain
      n.previous = old;
      endedNs = Math.max(endedNs, old.exitNs ?? Infinity);
    } else {
      endedNs = Math.max(endedNs, this.#freedNs.get(n.pid) ?? -Infinity);
      this.#freedNs.delete(n.pid);
    }
    n.prevExitNs = endedNs;
  }

  /** The last node of `pid` was dropped; it ended at `exitNs`. */
  #freed(pid: number, exitNs: number): void {
    this.#freedNs.delete(pid);
    this.#freedNs.set(pid, exitNs);
    if (this.#freedNs.size <= MAX_FREED_PIDS + FREED_PIDS_TRIM) return;
    // The oldest go together: one walk of the map for many, not one per freed pid.
    let over = this.#freedNs.size - MAX_FREED_PIDS;
    for (const oldest of this.#freedNs.keys()) {
      if (over-- === 0) break;
      this.#forgottenNs = Math.max(this.#forgottenNs, this.#freedNs.get(oldest)!);
      this.#freedNs.delete(oldest);
    }
  }

  /** The live or held process with this id, if any. */
  byId(id: string): ProcNode | undefined {
    const pid = parseInt(id.slice(id.lastIndexOf(".") + 1), 36);
    const n = this.#byPid.get(pid);
    return n && this.idOf(n) === id ? n : undefined;
  }

  /** Stops holding a process's argv (it was printed; it is too long to keep). */
  forgetArgv(node: ProcNode): void {
    (node as Node).change({ argv: null });
  }

  /** Thread `tid` started in process `tgid`. */
  threadStart(tgid: number, tid: number): ProcNode | undefined {
    const n = this.#byPid.get(tgid);
    if (n?.alive) (n.tids ??= new Set()).add(tid);
    return n;
  }

  /**
   * Thread `tid` of process `tgid` ended (`tid === tgid`: the main thread). The process
   * ends with its last thread, and is then marked exited like {@linkcode exit}. Returns
   * the node and whether the process ended.
   */
  taskExit(
    tgid: number,
    tid: number,
    status: number,
    parentTgid: number,
    timestampNs: number,
  ): { node: ProcNode | undefined; ended: boolean } {
    const n = this.#byPid.get(tgid);
    // A process the tree does not hold alive (its fork was lost, or a resync found it
    // gone): its main thread's exit is all there is to report, and no node is named (an
    // exited node on this pid may be an earlier process).
    if (!n || !n.alive) return { node: undefined, ended: tid === tgid };
    if (tid === tgid) n.mainExited = true;
    else n.tids?.delete(tid);
    if (!n.mainExited || n.tids?.size) return { node: n, ended: false };
    this.exit(tgid, status, parentTgid, timestampNs);
    return { node: n, ended: true };
  }

  /** The current parent of a live process, learnt from `/proc` (after its parent exited). */
  reparent(node: ProcNode, ppid: number): void {
    const n = node as Node;
    if (n.alive && this.#byPid.get(n.pid) === n) n.ppid = ppid;
  }

  /**
   * Whether a `/proc` start time (ticks) can belong to `node`: equal ticks, or a fork time
   * within one tick of it. Unknown start times are taken as matching.
   */
  sameStart(node: Pick<ProcNode, "startTicks" | "startNs">, startTicks: number): boolean {
    if (node.startTicks !== null) return node.startTicks === startTicks;
    if (node.startNs === null) return true;
    const expected = ticksOf(node.startNs, this.#bootOffsetNs);
    return Math.abs(expected - startTicks) <= 1;
  }

  /**
   * Ancestors by creation, self first, up to the root; at most `max` of them (a chain that
   * long is cut: formatters mark it). Lineage has no depth limit: links only ever point
   * from a node to an older one, so every walk ends.
   */
  chain(node: ProcNode, max = Infinity): ProcNode[] {
    const out: ProcNode[] = [];
    for (let n: ProcNode | null = node; n && out.length < max; n = n.parent) out.push(n);
    return out;
  }

  /** True when `node` or one of its ancestors, at any depth, satisfies `match`. */
  isUnder(node: ProcNode, match: (n: ProcNode) => boolean): boolean {
    for (let n: ProcNode | null = node; n; n = n.parent) if (match(n)) return true;
    return false;
  }

  /** True when `ancestor` is `node` or created it, directly or not. */
  descendsFrom(node: ProcNode, ancestor: ProcNode): boolean {
    return this.isUnder(node, (n) => n === ancestor);
  }

  /** Every held node created (directly or not) by `node`, depth first, `node` excluded. */
  descendants(node: ProcNode): ProcNode[] {
    const out: ProcNode[] = [];
    const stack = [...(node.children ?? [])];
    while (stack.length) {
      const n = stack.pop()!;
      out.push(n);
      if (n.children) { for (const c of n.children) stack.push(c); }
    }
    return out;
  }

  /**
   * Drops exited nodes whose grace period has passed at `nowNs` (CLOCK_MONOTONIC) or that
   * exceed the cap, oldest first. A node with children held is dropped after them.
   */
  sweep(nowNs: number): void {
    const q = this.#exitQueue;
    while (this.#queueHead < q.length) {
      const n = q[this.#queueHead];
      const overCap = this.#exitedHeld > this.#maxExited;
      if (!overCap && (n.exitNs ?? 0) + this.#graceNs > nowNs) break;
      this.#queueHead++;
      if (overCap && (n.exitNs ?? 0) + this.#graceNs > nowNs) this.#evictedByCap++;
      n.expired = true;
      this.#dropIfDone(n);
    }
    if (this.#queueHead > 1024 && this.#queueHead * 2 > q.length) {
      this.#exitQueue = q.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  /**
   * Reconciles with a `/proc` snapshot after lost events: live processes the tree lacks
   * are added (parents linked by ppid), live nodes absent from `/proc` are marked exited.
   */
  resync(entries: readonly SeedEntry[], nowNs: number): ResyncResult {
    const seen = new Set<number>();
    const missing: SeedEntry[] = [];
    for (const e of entries) {
      seen.add(e.pid);
      const n = this.#byPid.get(e.pid);
      if (!n || !n.alive || !this.sameStart(n, e.startTicks)) missing.push(e);
      else {
        if (n.startTicks === null) n.startTicks = e.startTicks;
        n.tids = e.tids?.length ? new Set(e.tids) : null; // thread events may have been lost
      }
    }
    let removed = 0;
    for (const n of [...this.#byPid.values()]) {
      if (n.alive && !seen.has(n.pid)) {
        this.#vanished++;
        this.#markExited(n, null, nowNs);
        removed++;
      }
    }
    for (const e of missing) {
      const old = this.#byPid.get(e.pid);
      if (old?.alive) {
        this.#vanished++;
        this.#markExited(old, null, nowNs);
        removed++;
      }
    }
    this.seed(missing);
    return { added: missing.length, removed };
  }

  #put(n: Node): void {
    this.#byPid.set(n.pid, n);
    this.#live++;
  }

  #link(child: Node, parent: Node): void {
    child.parent = parent;
    (parent.children ??= new Set()).add(child);
  }

  /** A pid is about to be taken by a new process: whatever held it has ended. */
  #retire(pid: number, nowNs: number): void {
    const old = this.#byPid.get(pid);
    if (old?.alive) {
      this.#vanished++;
      this.#markExited(old, null, nowNs);
    }
  }

  #markExited(n: Node, status: number | null, nowNs: number): void {
    n.alive = false;
    n.exitStatus = status;
    n.exitNs = nowNs;
    this.#live--;
    this.#exitedHeld++;
    this.#exitQueue.push(n);
  }

  #dropIfDone(n: Node): void {
    let cur: Node | null = n;
    while (cur && cur.expired && !cur.alive && !cur.children?.size) {
      if (this.#byPid.get(cur.pid) === cur) {
        this.#byPid.delete(cur.pid);
        this.#freed(cur.pid, cur.exitNs ?? Infinity);
      }
      this.#exitedHeld--;
      cur.expired = false; // dropped: never counted twice
      const p: Node | null = cur.parent;
      if (p?.children) {
        p.children.delete(cur);
        if (p.children.size === 0) p.children = null;
      }
      cur = p && p.expired ? p : null;
    }
  }
}
