/**
 * The process trees of a `watch` log: what `proctree report` draws. Lines are joined by
 * their `id` and `parent_id` (a pid alone is ambiguous in a log that spans pid reuse),
 * within a time window, optionally under named processes, and bounded: a window holding
 * more processes than the page can show keeps the first ones in lineage order and says how
 * many it left out.
 *
 * @module
 */

import {
  applyRecord,
  type AuditEntry,
  type AuditTotals,
  flatten,
  newEntry,
  totalsOf,
} from "./audit.ts";
import type { WatchRecord } from "./record.ts";
import { isoToUs } from "./report_html.ts";

/** Most processes a report shows by default. */
export const DEFAULT_MAX_REPORT_PROCESSES = 20_000;

/** What to take from the log. */
export interface LogSelection {
  /** Only events at or after this time (µs since the epoch). */
  sinceUs?: number;
  /** Only events at or before this time (µs since the epoch). */
  untilUs?: number;
  /** Only processes that are, or descend from, one matching a name, path, pid or id. */
  under?: readonly string[];
  /** Most processes kept. */
  maxProcesses?: number;
}

/** The trees of a log. */
export interface LogAudit {
  /** One tree per process whose creator is not in the window. */
  roots: AuditEntry[];
  /** Totals over the processes kept. */
  totals: AuditTotals;
  /** Processes of the window (and selection) beyond the limit. */
  leftOut: number;
  /** Lines that were not JSON objects. */
  malformed: number;
  /** Process lines without an `id` (written before proctree had ids): not joinable. */
  withoutId: number;
  /** Processes whose `parent_id` chain loops (a damaged or forged log): shown as roots, marked. */
  cycles: number;
  /** Lines that were proctree watch lines (JSON objects with a `time`), in or out of the window. */
  records: number;
}

const PROCESS_EVENTS = new Set([
  "fork",
  "exec",
  "exit",
  "comm",
  "uid",
  "gid",
  "sid",
  "ptrace",
  "coredump",
]);

/**
 * Entries that no root reaches sit on a `parent_id` loop (A's parent B, B's parent A): each
 * loop is cut at its first entry, which becomes a marked root, so no process disappears.
 * Returns how many entries were on loops.
 */
function breakCycles(
  roots: AuditEntry[],
  all: Iterable<AuditEntry>,
  parentOf: Map<AuditEntry, AuditEntry>,
): number {
  const reached = new Set(flatten(roots).map((f) => f.entry));
  let onCycles = 0;
  for (const e of all) {
    if (reached.has(e)) continue;
    // Climb to the loop itself (e may hang below it), then cut the loop there.
    const seen = new Set<AuditEntry>();
    let at = e;
    while (!seen.has(at)) {
      seen.add(at);
      at = parentOf.get(at)!;
    }
    const p = parentOf.get(at)!;
    p.children.splice(p.children.indexOf(at), 1);
    parentOf.delete(at);
    at.parent_cycle = true;
    roots.push(at);
    for (const f of flatten([at])) reached.add(f.entry);
    for (let x = p;; x = parentOf.get(x)!) {
      onCycles++;
      if (x === at) break;
    }
  }
  return onCycles;
}

/** Builds entries by id as the lines come; {@linkcode finish} links and selects them. */
export class LogAuditor {
  #byId = new Map<string, AuditEntry>();
  #parentOf = new Map<AuditEntry, string | null>();
  #sel: LogSelection;
  #lost = 0;
  #malformed = 0;
  #withoutId = 0;
  #records = 0;

  /** An auditor for `selection`. */
  constructor(selection: LogSelection = {}) {
    this.#sel = selection;
  }

  /** Takes one line of the log. */
  line(text: string): void {
    if (text.trim() === "") return;
    let rec: WatchRecord;
    try {
      rec = JSON.parse(text);
      if (typeof rec !== "object" || rec === null || typeof rec.time !== "string") {
        throw new TypeError("not a record");
      }
    } catch {
      this.#malformed++;
      return;
    }
    const t = isoToUs(rec.time);
    if (Number.isNaN(t)) {
      this.#malformed++;
      return;
    }
    this.#records++;
    if (this.#sel.sinceUs !== undefined && t < this.#sel.sinceUs) return;
    if (this.#sel.untilUs !== undefined && t > this.#sel.untilUs) return;
    if (rec.event === "lost" && rec.reason !== "output") this.#lost += rec.count ?? 1;
    if (!PROCESS_EVENTS.has(rec.event) || rec.tid !== undefined) return;
    if (typeof rec.id !== "string") {
      this.#withoutId++;
      return;
    }
    this.#apply(rec, rec.id);
  }

  #apply(rec: WatchRecord, id: string): void {
    let e = this.#byId.get(id);
    if (!e) {
      e = newEntry(rec, rec.pid ?? 0);
      this.#byId.set(id, e);
      this.#parentOf.set(e, rec.parent_id ?? null);
    }
    applyRecord(e, rec);
  }

  /** Links the entries into trees and applies the selection and the bound. */
  finish(): LogAudit {
    const roots: AuditEntry[] = [];
    const parentOf = new Map<AuditEntry, AuditEntry>();
    for (const [e, parentId] of this.#parentOf) {
      const p = parentId === null ? undefined : this.#byId.get(parentId);
      if (p && p !== e) {
        p.children.push(e);
        parentOf.set(e, p);
      } else roots.push(e);
    }
    const cycles = breakCycles(roots, this.#parentOf.keys(), parentOf);
    let selected = this.#sel.under?.length ? underRoots(roots, this.#sel.under) : roots;
    const max = this.#sel.maxProcesses ?? DEFAULT_MAX_REPORT_PROCESSES;
    let all = flatten(selected).map((f) => f.entry);
    const total = all.length;
    if (total > max) {
      selected = bound(selected, max);
      all = flatten(selected).map((f) => f.entry);
    }
    return {
      roots: selected,
      totals: totalsOf(all, this.#lost),
      leftOut: Math.max(0, total - max),
      malformed: this.#malformed,
      withoutId: this.#withoutId,
      records: this.#records,
      cycles,
    };
  }
}

const base = (s: string | null | undefined) => s ? s.slice(s.lastIndexOf("/") + 1) : null;

/** Whether an entry is named by `v`: its id, pid, executable path, or comm/program name. */
function matches(e: AuditEntry, v: string): boolean {
  if (v === e.id || v === String(e.pid)) return true;
  if (v.includes("/")) return v === e.exe;
  return v === e.comm || v === base(e.exe) || v === base(e.argv?.[0]);
}

/** The topmost entries that match one of `under`, with their whole subtrees. */
function underRoots(roots: readonly AuditEntry[], under: readonly string[]): AuditEntry[] {
  const out: AuditEntry[] = [];
  const stack = [...roots].reverse();
  while (stack.length) {
    const e = stack.pop()!;
    if (under.some((v) => matches(e, v))) out.push(e);
    else for (let i = e.children.length - 1; i >= 0; i--) stack.push(e.children[i]);
  }
  return out;
}

/** The first `max` entries in lineage order, as trees (copies: the input is not changed). */
function bound(roots: readonly AuditEntry[], max: number): AuditEntry[] {
  const flat = flatten(roots, max);
  const copies = flat.map((f) => ({ ...f.entry, children: [] as AuditEntry[] }));
  const out: AuditEntry[] = [];
  flat.forEach((f, i) => (f.parent < 0 ? out : copies[f.parent].children).push(copies[i]));
  return out;
}
