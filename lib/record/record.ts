/**
 * The JSON line `proctree watch` prints: one object per event, snake_case keys, and the
 * fsmon-style chain `pid|comm|user;…` from the process itself up to the root.
 *
 * @module
 */

import type { ProcessTree, ProcNode, ResyncResult } from "../tree/tree.ts";
import type { Users } from "../tree/users.ts";
import type { EventKind } from "../event/kinds.ts";
import type { ProcEvent } from "../event/wire.ts";
import type { WallClock } from "../time.ts";
import { decodeWaitStatus } from "../event/wait_status.ts";
import { decodeBytes, flatJoin } from "../text.ts";
import type { StageLine } from "../pipeline/stage.ts";

/** Every `event` value a line can carry: each event kind, and proctree's own lines. */
export type RecordKind =
  | EventKind
  | "lost"
  | "resync"
  | "unknown"
  | "malformed"
  | "stats"
  | "restart"
  | "file"
  | "connect"
  | "connect_result"
  | "accept"
  | "bind";

/**
 * One output line. Which keys are present depends on `event`; a key present with null means
 * "proctree could not know" (the process was gone, or /proc was not readable).
 */
export interface WatchRecord {
  /** What happened. */
  event: RecordKind;
  /** ISO-8601 UTC with microseconds, from the kernel's timestamp. */
  time: string;
  /** The process (thread group id). */
  pid?: number;
  /** The thread, when it differs from the process (only with `--threads`). */
  tid?: number;
  /** Parent process: from the event for fork/exit, from the tree otherwise. */
  ppid?: number | null;
  /** The name (at most 15 bytes from the kernel). */
  comm?: string | null;
  /** Arguments from `/proc/<pid>/cmdline`; null when not readable. */
  argv?: readonly string[] | null;
  /** exec: argv was cut at the source's cap (`argv` ends with the cut element). */
  argv_truncated?: true;
  /** exec: argv's true length in bytes, when cut. */
  argv_bytes?: number;
  /** Executable path from `/proc/<pid>/exe`; null when not readable. */
  exe?: string | null;
  /** Effective uid; null when unknown. */
  uid?: number | null;
  /** exec: the script a `#!` exec ran (then `exe` is its interpreter); absent when none known. */
  script?: string;
  /** exec: the working directory (exact bytes as in `text.ts`); null when not readable. */
  cwd?: string | null;
  /** exec: the uid of the login session (`/proc/<pid>/loginuid`); null when unset or unread. */
  login_uid?: number | null;
  /** exec: the user name of `login_uid`. */
  login_user?: string | null;
  /** User name of the effective uid (the number when unnamed). */
  user?: string | null;
  /** exit: status of a normal exit, else null. */
  exit_code?: number | null;
  /** exit: terminating signal name (`SIGKILL`), else null. */
  signal?: string | null;
  /** True when a core was dumped. */
  core_dumped?: boolean;
  /** uid/gid events. */
  real?: number;
  /** Effective id after the change. */
  effective?: number;
  /** ptrace: the tracer process, 0 on detach. */
  tracer_pid?: number;
  /** lost: how many events were dropped (null: unknown, at least one). */
  count?: number | null;
  /** lost: `overrun` (kernel said ENOBUFS), `seq_gap`; malformed: the decode error. */
  reason?: string;
  /** lost: the CPU whose events were dropped. */
  cpu?: number;
  /** resync: processes added to and removed from the tree. */
  added?: number;
  /** Processes marked gone. */
  removed?: number;
  /** unknown: the `what` code. */
  code?: number;
  /** One process incarnation (`identity.ts`): the same on every line of the process. */
  id?: string | null;
  /** The `id` of the process that created it. */
  parent_id?: string | null;
  /** When the process started (ISO-8601 UTC, µs; 10 ms precision for processes older than proctree). */
  start_time?: string | null;
  /** exit: from start to exit, in ms (µs precision). */
  duration_ms?: number | null;
  /** The 64-hex id of the container whose cgroup holds the process (absent: none known). */
  container_id?: string;
  /** The Kubernetes pod uid, when the cgroup names one. */
  pod_uid?: string;
  /** file: `create`, `write`, `delete`, `rename`, `attrib` or `found`. */
  action?: string;
  /** file: the absolute path (a rename's old one), exact bytes as in `text.ts`. */
  path?: string;
  /** file: a rename's new path. */
  to?: string;
  /** file: the object is a directory. */
  dir?: boolean;
  /** file: a create and a delete the kernel merged into one event (their order is unknown). */
  merged?: boolean;
  /**
   * file: a rename from or to outside the watched paths: which side (`path` or `to`) is
   * named as it was when the line was read, not at the rename.
   */
  named_at_read?: "path" | "to";
  /** file: a directory moved in: how many `found` lines list what was in it. */
  found?: number;
  /** file: the listing of a directory moved in stopped at its bound. */
  found_cut?: boolean;
  /** connect/accept/bind (`--net`): `inet`, `inet6` or `unix` (then `path`). */
  family?: string;
  /** connect/accept/bind: `tcp`, `udp`, or null when the kernel did not say. */
  protocol?: string | null;
  /** connect/accept: the peer's address and port; bind: the local ones. */
  address?: string | null;
  /** connect/accept: the peer's port; bind: the local one. */
  port?: number | null;
  /** connect/accept: the local address and port, when the socket has them. */
  local_address?: string | null;
  /** connect/accept: the local port. */
  local_port?: number | null;
  /**
   * connect/accept/bind: `ok`, `in_progress`, or the errno name; connect_result: how a
   * connect in progress ended (`ok`, the errno name, or `closed` before it connected).
   */
  result?: string;
  /** connect: a UDP connect whose socket let go of its peer before it was printed (a route probe). */
  probe?: boolean;
  /** Ancestor chain, self first: `pid|comm|user;…`. */
  chain?: string;
  /** stats lines carry their own counters. */
  [extra: string]: unknown;
}

// `|` and `;` separate chain fields; `%` escapes them, so hostile names cannot fake entries.
// `[` is escaped too: a bracketed name is always proctree's (an executable's, below).
function chainField(s: string): string {
  return /[%|;[]/.test(s)
    ? s.replace(/[%|;[]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())
    : s;
}

/** A chain entry's name: the comm; unknown, the executable's name in brackets; else `?`. */
function chainName(n: ProcNode): string {
  if (n.comm !== null) return chainField(n.comm);
  if (n.exe !== null) return `[${chainField(n.exe.slice(n.exe.lastIndexOf("/") + 1))}]`;
  return "?";
}

/** Most ancestors a printed chain holds; a longer one ends with {@linkcode CHAIN_CUT}. */
export const MAX_CHAIN_ENTRIES = 1024;
/** The last entry of a chain cut at {@linkcode MAX_CHAIN_ENTRIES}. */
export const CHAIN_CUT = "…";

/** Slots of the chain entries kept for reuse (a power of two; one per pid modulo it). */
export const CHAIN_ENTRY_SLOTS = 4096;

/** One chain entry as last written for its pid, and what it was written from. */
interface ChainEntry {
  pid: number;
  comm: string | null;
  exe: string | null;
  uid: number | null;
  /** The table that named the user, its generation, and whether it had an entry for uid. */
  users: Users;
  generation: number;
  named: boolean;
  /** `pid|name|user`. */
  text: string;
}

/**
 * The entries of ancestors repeat on every line of their descendants: each pid's last one
 * is kept and used again while its name, uid and the user table are the same (a rename, a
 * uid change, reloaded user names: written anew). A user the table did not name is looked
 * up again each time, so that a reload (`users.ts`) can name it.
 */
const chainEntries: (ChainEntry | undefined)[] = new Array(CHAIN_ENTRY_SLOTS);

/** `pid|name|user` for `n`. */
function chainEntry(n: ProcNode, users: Users): string {
  const slot = n.pid & (CHAIN_ENTRY_SLOTS - 1);
  // One object per slot, rewritten on a miss: none made for each process's own entry.
  const e = chainEntries[slot] ??= {
    pid: -1,
    comm: null,
    exe: null,
    uid: null,
    users,
    generation: -1,
    named: false,
    text: "",
  };
  if (
    e.pid === n.pid && e.comm === n.comm && e.uid === n.uid && e.named && e.users === users &&
    e.generation === users.generation && (n.comm !== null || e.exe === n.exe)
  ) return e.text;
  const user = n.uid === null ? "?" : users.name(n.uid) ?? "?";
  e.pid = n.pid;
  e.comm = n.comm;
  e.exe = n.exe;
  e.uid = n.uid;
  e.users = users;
  e.generation = users.generation; // after name(): a lookup may have loaded the table
  e.named = n.uid === null || users.has(n.uid);
  e.text = flatJoin(
    [String(n.pid), chainName(n), n.uid === null ? "?" : chainField(user)],
    "|",
  );
  return e.text;
}

/**
 * A chain's entries, gathered to be joined (one array for every line). Refilled from index 0
 * and cut to the new count, never emptied: V8 frees an emptied array's storage, and growing it
 * again for every line allocated ~150 bytes a line.
 */
const chainParts: string[] = [];

/** The first `count` entries of `chainParts` joined (flat: `flatJoin`), cut past the bound. */
function joinChain(count: number): string {
  if (count > MAX_CHAIN_ENTRIES) {
    chainParts[MAX_CHAIN_ENTRIES] = CHAIN_CUT;
    count = MAX_CHAIN_ENTRIES + 1;
  }
  chainParts.length = count;
  return flatJoin(chainParts, ";");
}

/**
 * The fsmon chain of `nodes` (self first): `102|touch|root;101|sh|root`. A name the kernel's
 * comm did not give is the executable's in brackets (`[touch]`); an unknown name or user is
 * `?`; `%`, `|`, `;` and `[` inside a name are written `%25`, `%7C`, `%3B`, `%5B`. More than
 * {@linkcode MAX_CHAIN_ENTRIES} nodes: the first ones, then `;…`.
 */
export function formatChain(nodes: readonly ProcNode[], users: Users): string {
  const n = Math.min(nodes.length, MAX_CHAIN_ENTRIES + 1);
  for (let i = 0; i < n; i++) chainParts[i] = chainEntry(nodes[i], users);
  return joinChain(n);
}

/**
 * {@linkcode formatChain} of `node` and its creators (`ProcessTree.chain`), walked without
 * gathering the nodes first: a line's chain.
 */
export function chainOf(node: ProcNode, users: Users): string {
  let count = 0;
  for (let n: ProcNode | null = node; n !== null && count <= MAX_CHAIN_ENTRIES; n = n.parent) {
    chainParts[count++] = chainEntry(n, users);
  }
  return joinChain(count);
}

/** The chain as objects, for `chain --json` and the library. */
export function chainObjects(
  nodes: readonly ProcNode[],
  users: Users,
): { pid: number; comm: string | null; user: string | null }[] {
  return nodes.map((n) => ({ pid: n.pid, comm: n.comm, user: users.name(n.uid) }));
}

/** One JSON line (without the newline). Lone surrogates become `\udcXX` escapes. */
export function toJsonLine(rec: WatchRecord): string {
  return JSON.stringify(rec);
}

/** What building a process record needs besides the event and its node. */
export interface RecordContext {
  /** Dates the record. */
  clock: WallClock;
  /** Names users. */
  users: Users;
  /** The tree for chains; null: no `chain` field. */
  chains: ProcessTree | null;
  /** The tree for `id`, `parent_id`, `start_time` and `duration_ms`; null: none of them. */
  ids?: ProcessTree | null;
}

/**
 * A line's first fields, in an object made with `new`: V8 gives such objects room for the
 * fields added after them, while a literal's fields past its own go to a separate array,
 * grown and copied as they come (an exec line: 248 bytes against 520, and `JSON.stringify`
 * a quarter faster, measured). Its prototype is `Object.prototype`: to everything that
 * reads a line, a plain object.
 */
const Line = function (this: WatchRecord, event: RecordKind, time: string, pid: number) {
  this.event = event;
  this.time = time;
  this.pid = pid;
} as unknown as new (event: RecordKind, time: string, pid: number) => WatchRecord;
Line.prototype = Object.prototype;

/**
 * The line for a process event, built from the event and the node the tree holds for it
 * after applying the event (null: a process the tree does not know). `isProcess`: the
 * event is about the whole process (a new process, its end, a process-wide fact), not one
 * of its threads; a thread's lines carry `tid`.
 */
export function processRecord(
  ev: Exclude<ProcEvent, { what: "ack" }>,
  node: ProcNode | null,
  ctx: RecordContext,
  isProcess: boolean = ev.pid === ev.tgid,
): WatchRecord {
  const rec = new Line(ev.what, ctx.clock.iso(ev.timestampNs), ev.tgid);
  if (!isProcess || (ev.pid !== ev.tgid && ev.what !== "exit")) rec.tid = ev.pid;
  if (node) {
    rec.ppid = node.ppid || null;
    rec.comm = node.comm;
  }
  switch (ev.what) {
    case "fork":
      // From a thread's fork only the process is known; a new process names its creator.
      if (isProcess) rec.ppid = ev.parentTgid;
      // The image it runs until it execs: its creator's.
      if (node?.exe) rec.exe = node.exe;
      break;
    case "exec": {
      rec.argv = node?.argv ?? null;
      rec.exe = node?.exe ?? null;
      if (node?.script) rec.script = node.script;
      rec.cwd = node?.cwd ?? null;
      rec.uid = node?.uid ?? null;
      const loginUid = node?.loginUid ?? null;
      rec.login_uid = loginUid;
      rec.login_user = loginUid === null ? null : ctx.users.name(loginUid);
      break;
    }
    case "exit": {
      if (node?.exe) rec.exe = node.exe;
      const ws = decodeWaitStatus(ev.exitCode);
      if (isProcess) rec.ppid = ev.parentTgid || null;
      rec.exit_code = ws.exitCode;
      rec.signal = ws.signal;
      if (ws.coreDumped) rec.core_dumped = true;
      break;
    }
    case "comm":
      rec.comm = decodeBytes(ev.comm);
      break;
    case "uid":
    case "gid":
      rec.real = ev.real;
      rec.effective = ev.effective;
      break;
    case "ptrace":
      rec.tracer_pid = ev.tracerTgid;
      break;
  }
  if (node) {
    rec.user = ctx.users.name(node.uid);
    if (ctx.ids) identify(rec, node, ctx.ids, ctx.clock, isProcess && ev.what === "exit");
    if (node.container) {
      rec.container_id = node.container.id;
      if (node.container.podUid !== null) rec.pod_uid = node.container.podUid;
    }
    if (ctx.chains) {
      rec.chain = chainOf(node, ctx.users);
    }
  }
  return rec;
}

/**
 * Adds the process that did what `rec` reports: `pid`, and from its node (null: not
 * known — `comm` null, no guess) its name, program, user, id and chain.
 */
function withActor(
  rec: WatchRecord,
  pid: number,
  node: ProcNode | null,
  ctx: RecordContext,
): WatchRecord {
  rec.pid = pid;
  rec.comm = node?.comm ?? null;
  if (node?.exe) rec.exe = node.exe;
  rec.user = node ? ctx.users.name(node.uid) : null;
  if (node && ctx.ids) rec.id = ctx.ids.idOf(node);
  if (node && ctx.chains) {
    rec.chain = chainOf(node, ctx.users);
  }
  return rec;
}

/**
 * A stage's own line (a network connection, a file change): its event, its leading fields,
 * its process, then its other fields.
 */
export function stageRecord(
  line: StageLine,
  node: ProcNode | null,
  ctx: RecordContext,
): WatchRecord {
  const rec: WatchRecord = { event: line.event as RecordKind, time: ctx.clock.iso(line.timeNs) };
  if (line.lead) Object.assign(rec, line.lead);
  return Object.assign(withActor(rec, line.pid, node, ctx), line.fields);
}

/**
 * The first line proctree appends to a log that already held lines: events between the
 * previous line and this one were not seen (proctree was not running). `repaired`: the
 * previous run's last line was torn and has been closed with a newline.
 */
export function restartRecord(time: string, repaired: boolean): WatchRecord {
  const rec: WatchRecord = { event: "restart", time };
  if (repaired) rec.repaired_torn_line = true;
  return rec;
}

/** Adds the identity fields of `node` to `rec` (and `duration_ms` to a process's exit). */
function identify(
  rec: WatchRecord,
  node: ProcNode,
  tree: ProcessTree,
  clock: WallClock,
  ended: boolean,
): void {
  rec.id = tree.idOf(node);
  rec.parent_id = node.parent ? tree.idOf(node.parent) : null;
  const startNs = tree.startOf(node);
  rec.start_time = startNs === null ? null : clock.iso(startNs);
  if (ended) {
    rec.duration_ms = startNs === null || node.exitNs === null
      ? null
      : Math.round((node.exitNs - startNs) / 1e3) / 1e3;
  }
}

/** A `resync` line: what reconciling the tree with `/proc` added and marked gone. */
export function resyncRecord(time: string, r: ResyncResult): WatchRecord {
  return { event: "resync", time, added: r.added, removed: r.removed };
}

/** A `lost` line: `count` events (null: at least one) dropped for `reason`. */
export function lostRecord(
  time: string,
  count: number | null,
  reason: string,
  cpu?: number,
): WatchRecord {
  const rec: WatchRecord = { event: "lost", time, count, reason };
  if (cpu !== undefined) rec.cpu = cpu;
  return rec;
}
