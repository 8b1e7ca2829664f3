/**
 * The record of one command's process subtree, built from watch records: who ran what,
 * under whom, how it ended, how long it took. Used by `proctree run` and the library.
 *
 * Entries are keyed by tree node (process identity), not by pid, so a pid reused inside
 * the run is a separate entry.
 *
 * @module
 */

import type { WatchRecord } from "../record/record.ts";
import type { ProcNode } from "../tree/tree.ts";
import { displayArg, displayName, MAX_INDENT } from "../sink/text_view.ts";
import { terminalSafe } from "../text.ts";

/** One process of the subtree. */
export interface SubtreeEntry {
  /** Process id. */
  pid: number;
  /** Parent process id. */
  ppid: number | null;
  /** The name (at most 15 bytes from the kernel). */
  comm: string | null;
  /** Arguments from `/proc/<pid>/cmdline`; null when not readable. */
  argv: readonly string[] | null;
  /** Executable path from `/proc/<pid>/exe`; null when not readable. */
  exe: string | null;
  /** The script of a `#!` exec, when known. */
  script?: string;
  /** Working directory at the last exec, when read. */
  cwd?: string | null;
  /** The process id (`identity.ts`), when known. */
  id?: string | null;
  /** The container it ran in, when any. */
  container_id?: string;
  /** User name of the effective uid (the number when unnamed). */
  user: string | null;
  /** ISO time of the fork (or of the first event seen). */
  start: string;
  /** ISO time of the exit; null while running or when the exit was not seen. */
  end: string | null;
  /** Status of a normal exit, else null. */
  exit_code: number | null;
  /** Terminating signal name, else null. */
  signal: string | null;
  /** True when the process is known to be gone but its exit event was lost. */
  exit_unknown?: boolean;
  /** With `--files`: the changes it made under the watched paths. */
  files?: FileSummary;
  /** With `--net`: its connections. */
  net?: NetSummary;
  /** The images it ran before its last exec, oldest first (`bash -c '…; sleep 1'` → bash). */
  earlier_images?: Image[];
  /** `report`: its `parent_id` chain loops back to itself (a damaged or forged log); shown as a root. */
  parent_cycle?: true;
  /** Processes it started. */
  children: SubtreeEntry[];
}

/** One program a process ran: what an exec line said of it. */
export interface Image {
  /** Its arguments; null when not read. */
  argv: readonly string[] | null;
  /** Its executable; null when not known. */
  exe: string | null;
  /** Its name; null when not known. */
  comm: string | null;
}

/** The file changes of one process (`run --files`). */
export interface FileSummary {
  /** Changes by action (`create`, `write`, `delete`, `rename`, `attrib`). */
  counts: Record<string, number>;
  /** The paths changed, first seen first, at most {@linkcode MAX_FILE_PATHS}. */
  paths: string[];
  /** Paths changed beyond those listed. */
  more: number;
}

/** Most paths listed per process in a summary. */
export const MAX_FILE_PATHS = 20;

/** Most paths the "who touched this file" index of a run keeps (beyond: counted). */
export const MAX_TOUCHED_PATHS = 10_000;

/** Most processes the index keeps for one path. */
export const MAX_TOUCHERS = 10;

/** A process in the index of who changed a path: enough to find it in the tree. */
export interface Toucher {
  /** Process id. */
  pid: number;
  /** The process id (`identity.ts`), when known. */
  id: string | null;
  /** How the tree names it. */
  name: string;
  /** What it did to the path, in order, each once (`create`, `write`, …). */
  actions: string[];
}

/** Who changed each path of a run (`run --files`), for `--summary`. */
export interface TouchedIndex {
  /** Path → the processes that changed it, first first (at most {@linkcode MAX_TOUCHERS}). */
  paths: Record<string, Toucher[]>;
  /** Paths changed beyond the {@linkcode MAX_TOUCHED_PATHS} indexed. */
  more: number;
}

/** The connections of one process (`run --net`). */
export interface NetSummary {
  /** Calls by kind (`connect`, `accept`, `bind`), and `failed` of them. */
  counts: Record<string, number>;
  /**
   * Where it connected to (`tcp 127.0.0.1:8080`, `udp [::1]:53`, `unix /run/x.sock`, with
   * ` ECONNREFUSED` when it failed), first seen first, at most {@linkcode MAX_FILE_PATHS}.
   */
  destinations: string[];
  /** Destinations beyond those listed. */
  more: number;
}

/** Totals of a subtree. */
export interface SubtreeTotals {
  /** Processes recorded. */
  processes: number;
  /** Processes that exited non-zero. */
  failed: number;
  /** Processes killed by a signal. */
  killed: number;
  /** Kernel events lost during the run (0: complete). */
  lost_events: number;
}

/** One entry of {@linkcode flatten}: where it sits in the trees. */
export interface FlatEntry {
  /** The entry. */
  entry: SubtreeEntry;
  /** Generations below its root (0: a root). */
  depth: number;
  /** Index of its creator in the flat list; -1 for a root. */
  parent: number;
}

/**
 * The entries of the trees under `roots` in lineage order (depth first, each before its
 * children), at most `max` of them. Iterative: any depth works.
 */
export function flatten(roots: readonly SubtreeEntry[], max = Infinity): FlatEntry[] {
  const out: FlatEntry[] = [];
  const stack: FlatEntry[] = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push({ entry: roots[i], depth: 0, parent: -1 });
  while (stack.length && out.length < max) {
    const f = stack.pop()!;
    const index = out.length;
    out.push(f);
    const kids = f.entry.children;
    for (let i = kids.length - 1; i >= 0; i--) {
      stack.push({ entry: kids[i], depth: f.depth + 1, parent: index });
    }
  }
  return out;
}

/** A new entry for the process a record is about (name and argv come with its exec). */
export function newEntry(rec: WatchRecord, pid: number): SubtreeEntry {
  return {
    pid,
    ppid: rec.ppid ?? null,
    comm: rec.comm ?? null,
    argv: null,
    exe: null,
    user: rec.user ?? null,
    id: rec.id ?? null,
    start: rec.start_time ?? rec.time,
    end: null,
    exit_code: null,
    signal: null,
    children: [],
  };
}

/** What a record says of its process: a new image, a new name, or its end. */
/** Entries whose current image came from an exec line (a fork's is its creator's). */
const EXECUTED = new WeakSet<SubtreeEntry>();

/** How an entry is named in the tree, the page and the trace: every image it ran, in order. */
export function entryName(e: SubtreeEntry): string {
  const now = displayName(e.argv, e.comm, e.exe);
  if (!e.earlier_images) return now;
  return [...e.earlier_images.map((i) => displayName(i.argv, i.comm, i.exe)), now].join(" → ");
}

export function applyRecord(e: SubtreeEntry, rec: WatchRecord): void {
  if (rec.container_id) e.container_id = rec.container_id;
  switch (rec.event) {
    case "exec":
      // A second exec: the image it replaces is history, kept in order.
      if (EXECUTED.has(e)) {
        (e.earlier_images ??= []).push({ argv: e.argv, exe: e.exe, comm: e.comm });
      }
      EXECUTED.add(e);
      e.comm = rec.comm ?? null;
      e.argv = rec.argv ?? null;
      e.exe = rec.exe ?? null;
      e.user = rec.user ?? e.user;
      e.cwd = rec.cwd ?? null;
      if (rec.script) e.script = rec.script;
      else delete e.script;
      break;
    case "comm":
      e.comm = rec.comm ?? e.comm;
      break;
    case "file":
      addFile(e, rec);
      break;
    case "connect":
    case "connect_result":
    case "accept":
    case "bind":
      addNet(e, rec);
      break;
    case "exit":
      e.end = rec.time;
      e.exit_code = rec.exit_code ?? null;
      e.signal = rec.signal ?? null;
      if (rec.ppid) e.ppid = rec.ppid;
      break;
  }
}

function addFile(e: SubtreeEntry, rec: WatchRecord): void {
  const f = e.files ??= { counts: {}, paths: [], more: 0 };
  const action = rec.action ?? "?";
  f.counts[action] = (f.counts[action] ?? 0) + 1;
  for (const p of rec.to === undefined ? [rec.path] : [rec.path, rec.to]) {
    if (p === undefined || f.paths.includes(p)) continue;
    if (f.paths.length < MAX_FILE_PATHS) f.paths.push(p);
    else f.more++;
  }
}

/**
 * A connection line into the process's summary: counted by call, and a connect's
 * destination listed (with its errno when it failed). A connect in progress that then
 * failed (`connect_result`) counts as failed and lists its destination with the errno.
 */
function addNet(e: SubtreeEntry, rec: WatchRecord): void {
  const n = e.net ??= { counts: {}, destinations: [], more: 0 };
  const failed = rec.result !== "ok" && rec.result !== "in_progress";
  if (rec.event !== "connect_result") n.counts[rec.event] = (n.counts[rec.event] ?? 0) + 1;
  else if (!failed) return;
  if (failed) n.counts.failed = (n.counts.failed ?? 0) + 1;
  if (rec.event !== "connect" && rec.event !== "connect_result") return;
  const where = rec.family === "unix"
    ? `unix ${rec.path ?? "(unnamed)"}`
    : `${rec.protocol ?? rec.family} ${
      rec.family === "inet6" ? `[${rec.address}]` : rec.address
    }:${rec.port}`;
  const d = failed ? `${where} ${rec.result}` : where;
  if (n.destinations.includes(d)) return;
  if (n.destinations.length < MAX_FILE_PATHS) n.destinations.push(d);
  else n.more++;
}

/** One line on a process's connections: `net: 2 connect: tcp 127.0.0.1:80 (+3 more)`. */
export function netLine(n: NetSummary): string {
  const counts = Object.entries(n.counts).map(([a, k]) => `${k} ${a}`).join(", ");
  const to = n.destinations.map(terminalSafe).join(", ");
  return `net: ${counts}${to ? `: ${to}` : ""}${n.more ? ` (+${n.more} more)` : ""}`;
}

/** One line on a process's file changes: `files: 2 create, 1 delete: /a /b (+3 more)`. */
export function fileLine(f: FileSummary): string {
  const counts = Object.entries(f.counts).map(([a, n]) => `${n} ${a}`).join(", ");
  const paths = f.paths.map((p) => displayArg(p)).join(" ");
  return `files: ${counts}: ${paths}${f.more ? ` (+${f.more} more)` : ""}`;
}

/** Totals over `entries`, with `lostEvents` kernel events lost meanwhile. */
export function totalsOf(entries: readonly SubtreeEntry[], lostEvents: number): SubtreeTotals {
  return {
    processes: entries.length,
    failed: entries.filter((e) => e.exit_code !== null && e.exit_code !== 0).length,
    killed: entries.filter((e) => e.signal !== null).length,
    lost_events: lostEvents,
  };
}

/** Builds the subtree from records that passed an `--under` filter on the root. */
export class Subtree {
  /** The command's process; null until its fork was seen. */
  root: SubtreeEntry | null = null;
  #byNode = new Map<ProcNode, SubtreeEntry>();
  #open = new Map<ProcNode, SubtreeEntry>();
  #nodes = new Map<SubtreeEntry, ProcNode>();
  /** Path → the entries that changed it and what they did (see {@linkcode Subtree.touched}). */
  #touched = new Map<string, Map<SubtreeEntry, string[]>>();
  #touchedMore = 0;

  /** Processes seen that have not exited yet. */
  get open(): ReadonlyMap<ProcNode, SubtreeEntry> {
    return this.#open;
  }

  /** Every entry, root first, depth first. */
  entries(): SubtreeEntry[] {
    return flatten(this.#roots()).map((f) => f.entry);
  }

  #roots(): SubtreeEntry[] {
    return this.root ? [this.root] : [];
  }

  /** Milliseconds between a process's fork and exit, when both were seen (kernel times). */
  durationMs(e: SubtreeEntry): number | null {
    const n = this.#nodes.get(e);
    if (!n || n.startNs === null || n.exitNs === null || n.exitStatus === null) return null;
    return (n.exitNs - n.startNs) / 1e6;
  }

  /** Takes one record about `node` (records without a node are ignored). */
  add(rec: WatchRecord, node: ProcNode | null): void {
    if (!node || rec.tid !== undefined) return;
    let e = this.#byNode.get(node);
    if (!e) {
      e = newEntry(rec, node.pid);
      e.comm = node.comm;
      e.argv = node.argv;
      e.exe = node.exe;
      this.#byNode.set(node, e);
      this.#open.set(node, e);
      this.#nodes.set(e, node);
      const parent = node.parent ? this.#byNode.get(node.parent) : undefined;
      if (parent) parent.children.push(e);
      else if (!this.root) this.root = e;
      else this.root.children.push(e);
    }
    applyRecord(e, rec);
    if (rec.event === "file" && rec.action !== "found") this.#touch(e, rec);
    if (rec.event === "exit") this.#open.delete(node);
  }

  #touch(e: SubtreeEntry, rec: WatchRecord): void {
    for (const p of rec.to === undefined ? [rec.path] : [rec.path, rec.to]) {
      if (p === undefined) continue;
      let by = this.#touched.get(p);
      if (!by) {
        if (this.#touched.size >= MAX_TOUCHED_PATHS) {
          this.#touchedMore++;
          continue;
        }
        this.#touched.set(p, by = new Map());
      }
      const actions = by.get(e) ?? (by.size < MAX_TOUCHERS ? [] : undefined);
      if (!actions) continue;
      by.set(e, actions);
      if (rec.action && !actions.includes(rec.action)) actions.push(rec.action);
    }
  }

  /** Who changed each path (`run --files`); null when nothing was changed. */
  touched(): TouchedIndex | null {
    if (this.#touched.size === 0) return null;
    const paths: Record<string, Toucher[]> = {};
    for (const [p, by] of this.#touched) {
      paths[p] = [...by].map(([e, actions]) => ({
        pid: e.pid,
        id: e.id ?? null,
        name: entryName(e),
        actions,
      }));
    }
    return { paths, more: this.#touchedMore };
  }

  /** The paths each entry changed, as indexed (for the page's filter). */
  pathsByEntry(): Map<SubtreeEntry, string[]> {
    const out = new Map<SubtreeEntry, string[]>();
    for (const [p, by] of this.#touched) {
      for (const e of by.keys()) {
        const list = out.get(e);
        if (list) list.push(p);
        else out.set(e, [p]);
      }
    }
    return out;
  }

  /** A process found gone without an exit event (lost events): closed with unknown status. */
  markGone(node: ProcNode, time: string): void {
    const e = this.#open.get(node);
    if (!e) return;
    e.end = time;
    e.exit_unknown = true;
    this.#open.delete(node);
  }

  /** Totals over every entry. */
  totals(lostEvents: number): SubtreeTotals {
    return totalsOf(this.entries(), lostEvents);
  }

  /** The indented text tree: pid, argv (or comm, or `<unknown>`), how it ended, duration. */
  format(): string {
    const lines: string[] = [];
    for (const { entry: e, depth } of flatten(this.#roots())) {
      const how = e.signal
        ? `killed by ${e.signal}`
        : e.exit_code !== null
        ? `exit ${e.exit_code}`
        : e.exit_unknown
        ? "exit unknown"
        : "running";
      const ms = this.durationMs(e);
      const took = ms === null
        ? ""
        : ` ${ms < 1000 ? ms.toFixed(1) + " ms" : (ms / 1000).toFixed(2) + " s"}`;
      const indent = "  ".repeat(Math.min(depth, MAX_INDENT));
      lines.push(`${indent}${e.pid} ${entryName(e)}  [${how}${took}]`);
      if (e.files) lines.push(`${indent}    ${fileLine(e.files)}`);
      if (e.net) lines.push(`${indent}    ${netLine(e.net)}`);
    }
    return lines.join("\n");
  }
}

/** @deprecated The `run` subtree was called an audit; use {@linkcode Subtree}. */
export const Audit: typeof Subtree = Subtree;
/** @deprecated Use {@linkcode Subtree}. */
export type Audit = Subtree;
/** @deprecated Use {@linkcode SubtreeEntry}. */
export type AuditEntry = SubtreeEntry;
/** @deprecated Use {@linkcode SubtreeTotals}. */
export type AuditTotals = SubtreeTotals;
