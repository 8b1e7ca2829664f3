/**
 * The process trees of a `watch` log: what `proctree report` draws. Lines are joined by
 * their `id` and `parent_id` (a pid alone is ambiguous in a log that spans pid reuse),
 * within a time window, optionally under named processes, and bounded: a window holding
 * more processes than the page can show keeps the first ones in lineage order and says how
 * many it left out.
 *
 * Memory is bounded by reading the log twice: {@linkcode LogIndex} keeps only the shape (who
 * created whom, who matches `--under`: an id string and a few numbers a process), decides
 * which processes the page keeps, and {@linkcode LogIndex.builder} builds entries for those
 * alone. {@linkcode LogSubtrees} does both in one pass, for logs that fit in memory.
 *
 * @module
 */

import {
  applyRecord,
  newEntry,
  type SubtreeEntry,
  type SubtreeTotals,
  totalsOf,
} from "./subtree.ts";
import type { WatchRecord } from "../record/record.ts";
import { isoToUs } from "../time.ts";
import { nameMatches } from "../tree/lineage.ts";

/** Most processes a report shows by default. */
export const DEFAULT_MAX_REPORT_PROCESSES = 20_000;

/** What to take from the log. */
export interface LogSelection {
  /** Only events at or after this time (µs since the epoch). */
  sinceUs?: number;
  /** Only events at or before this time (µs since the epoch). */
  untilUs?: number;
  /**
   * Only processes that are, or descend from, one matching a name, path, pid or id: its id,
   * pid, or any executable, script, argv[0] or comm one of its lines gave.
   */
  under?: readonly string[];
  /** Most processes kept. */
  maxProcesses?: number;
}

/** The trees of a log. */
export interface LogSubtree {
  /** One tree per process whose creator is not in the window. */
  roots: SubtreeEntry[];
  /** Totals over the processes kept. */
  totals: SubtreeTotals;
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
 * Whether a line names its process by `v`: its id, its pid (any process that had it in the
 * log's window: a log has no live process to pin it to), or a name or path as `--under`
 * means it live (`nameMatches`).
 */
function recordMatches(rec: WatchRecord, v: string): boolean {
  if (v === rec.id || v === String(rec.pid)) return true;
  return nameMatches(v, rec);
}

/** A log line as a record, or why not: `malformed` (not a record), `none` (blank). */
function parseLine(text: string): WatchRecord | "malformed" | "none" {
  if (text.trim() === "") return "none";
  try {
    const rec = JSON.parse(text);
    if (typeof rec !== "object" || rec === null || typeof rec.time !== "string") {
      return "malformed";
    }
    return Number.isNaN(isoToUs(rec.time)) ? "malformed" : rec as WatchRecord;
  } catch {
    return "malformed";
  }
}

/** Which processes the page keeps, in lineage order, and what it says about the rest. */
export interface LogPlan {
  /** Kept process indices (see {@linkcode LogIndex}), in lineage order. */
  kept: number[];
  /** Processes selected beyond the bound. */
  leftOut: number;
  /** Processes on `parent_id` loops. */
  cycles: number;
  /** Indices where a loop was cut: shown as roots, marked. */
  cycleRoots: Set<number>;
}

/**
 * Pass one: the shape of a log. Each process id gets an index; kept per index are its
 * creator's index, whether a line of its own was seen, and whether it matches `--under`.
 */
export class LogIndex {
  readonly #sel: LogSelection;
  /** id → index; ids named only as a `parent_id` get one too (never seen: not a process here). */
  readonly ids = new Map<string, number>();
  // Typed and grown by doubling: a few bytes a process, not an object each.
  #parent = new Int32Array(1024);
  #seen = new Uint8Array(1024);
  #matched = new Uint8Array(1024);
  #n = 0;
  /** Events the kernel dropped (`lost` lines in the window). */
  lost = 0;
  /** Lines that were not JSON objects. */
  malformed = 0;
  /** Process lines without an `id`. */
  withoutId = 0;
  /** Watch lines, in or out of the window. */
  records = 0;

  /** An index for `selection`. */
  constructor(selection: LogSelection = {}) {
    this.#sel = selection;
  }

  /** Takes one line; returns the record when it is a process line in the window (with its index). */
  line(text: string): [WatchRecord, number] | null {
    const rec = parseLine(text);
    if (rec === "none") return null;
    if (rec === "malformed") {
      this.malformed++;
      return null;
    }
    this.records++;
    const t = isoToUs(rec.time);
    if (this.#sel.sinceUs !== undefined && t < this.#sel.sinceUs) return null;
    if (this.#sel.untilUs !== undefined && t > this.#sel.untilUs) return null;
    if (rec.event === "lost" && rec.reason !== "output") this.lost += rec.count ?? 1;
    if (!PROCESS_EVENTS.has(rec.event) || rec.tid !== undefined) return null;
    if (typeof rec.id !== "string") {
      this.withoutId++;
      return null;
    }
    const i = this.#indexOf(rec.id);
    if (!this.#seen[i]) {
      this.#seen[i] = 1;
      const p = typeof rec.parent_id === "string" ? this.#indexOf(rec.parent_id) : -1;
      this.#parent[i] = p;
    }
    if (!this.#matched[i] && this.#sel.under?.some((v) => recordMatches(rec, v))) {
      this.#matched[i] = 1;
    }
    return [rec, i];
  }

  #indexOf(id: string): number {
    let i = this.ids.get(id);
    if (i === undefined) {
      i = this.#n++;
      if (i === this.#parent.length) this.#grow();
      this.ids.set(id, i);
      this.#parent[i] = -1;
    }
    return i;
  }

  #grow(): void {
    this.#parent = grown(this.#parent, new Int32Array(this.#parent.length * 2));
    this.#seen = grown(this.#seen, new Uint8Array(this.#seen.length * 2));
    this.#matched = grown(this.#matched, new Uint8Array(this.#matched.length * 2));
  }

  /** Decides what the page keeps: roots, loops cut, `--under`, the bound. */
  plan(): LogPlan {
    const n = this.#n;
    const parentOf = (i: number) => {
      const p = this.#parent[i];
      return p >= 0 && p !== i && this.#seen[p] ? p : -1;
    };
    // Children as one flat array (first-seen order), each process's at [start[i], start[i+1]).
    const start = new Int32Array(n + 1);
    const roots: number[] = [];
    for (let i = 0; i < n; i++) {
      if (!this.#seen[i]) continue;
      const p = parentOf(i);
      if (p < 0) roots.push(i);
      else start[p + 1]++;
    }
    for (let i = 0; i < n; i++) start[i + 1] += start[i];
    const kids = new Int32Array(start[n]);
    const fill = start.slice(0, n);
    for (let i = 0; i < n; i++) {
      const p = this.#seen[i] ? parentOf(i) : -1;
      if (p >= 0) kids[fill[p]++] = i;
    }
    const tree: Children = { start, kids, cut: new Uint8Array(n) };
    const { cycles, cycleRoots } = this.#cutLoops(roots, tree, parentOf);
    const selected = this.#sel.under?.length ? this.#underRoots(roots, tree) : roots;
    const max = this.#sel.maxProcesses ?? DEFAULT_MAX_REPORT_PROCESSES;
    const kept: number[] = [];
    let total = 0;
    walk(selected, tree, (i) => {
      if (total++ < max) kept.push(i);
    });
    return { kept, leftOut: Math.max(0, total - max), cycles, cycleRoots };
  }

  /**
   * Processes no root reaches sit on a `parent_id` loop (A's parent B, B's parent A): each
   * loop is cut at its first process, which becomes a marked root, so none disappears.
   */
  #cutLoops(
    roots: number[],
    tree: Children,
    parentOf: (i: number) => number,
  ): { cycles: number; cycleRoots: Set<number> } {
    const reached = new Uint8Array(this.#n);
    walk(roots, tree, (i) => (reached[i] = 1));
    const cycleRoots = new Set<number>();
    let cycles = 0;
    for (let e = 0; e < this.#n; e++) {
      if (reached[e] || !this.#seen[e]) continue;
      // Climb to the loop itself (e may hang below it; every ancestor of an unreached
      // process is unreached and has a creator), then cut the loop there.
      const onPath = new Set<number>();
      let at = e;
      while (!onPath.has(at)) {
        onPath.add(at);
        at = parentOf(at);
      }
      for (let x = parentOf(at);; x = parentOf(x)) {
        cycles++;
        if (x === at) break;
      }
      tree.cut[at] = 1;
      cycleRoots.add(at);
      roots.push(at);
      walk([at], tree, (i) => (reached[i] = 1));
    }
    return { cycles, cycleRoots };
  }

  /** The topmost processes that match `--under`, each standing for its whole subtree. */
  #underRoots(roots: readonly number[], tree: Children): number[] {
    const out: number[] = [];
    const stack = [...roots].reverse();
    while (stack.length) {
      const i = stack.pop()!;
      if (this.#matched[i]) out.push(i);
      else pushKids(stack, tree, i);
    }
    return out;
  }

  /** Pass two: a builder of the kept processes' entries (feed it the same log again). */
  builder(plan: LogPlan = this.plan()): EntryBuilder {
    return new EntryBuilder(this, plan);
  }

  /** The creator's index of `i` (-1: none). */
  parentIndex(i: number): number {
    return this.#parent[i];
  }
}

/** Each process's children, flat: `kids[start[i] .. start[i + 1])`; `cut`: a loop was cut there. */
interface Children {
  start: Int32Array;
  kids: Int32Array;
  cut: Uint8Array;
}

/** Pushes `i`'s children on `stack`, last first (so they pop in order); cut ones are roots now. */
function pushKids(stack: number[], tree: Children, i: number): void {
  for (let k = tree.start[i + 1] - 1; k >= tree.start[i]; k--) {
    if (!tree.cut[tree.kids[k]]) stack.push(tree.kids[k]);
  }
}

/** `into`, holding `from` at its start. */
function grown<T extends Int32Array | Uint8Array>(from: T, into: T): T {
  into.set(from);
  return into;
}

/** Depth-first, children in the order they were first seen: lineage order. */
function walk(roots: readonly number[], tree: Children, visit: (i: number) => void): void {
  const stack = [...roots].reverse();
  while (stack.length) {
    const i = stack.pop()!;
    visit(i);
    pushKids(stack, tree, i);
  }
}

/** Pass two: entries for the processes a {@linkcode LogPlan} keeps, linked in its order. */
export class EntryBuilder {
  readonly #index: LogIndex;
  readonly #plan: LogPlan;
  readonly #kept: Set<number>;
  readonly #entries = new Map<number, SubtreeEntry>();

  /** A builder for `plan` over `index`. */
  constructor(index: LogIndex, plan: LogPlan) {
    this.#index = index;
    this.#plan = plan;
    this.#kept = new Set(plan.kept);
  }

  /** Whether a second pass has anything to build. */
  get needed(): boolean {
    return this.#kept.size > 0;
  }

  /** Takes one line of the same log (lines of processes left out are skipped unparsed). */
  line(text: string): void {
    const id = idOf(text);
    if (id === null) return;
    const i = this.#index.ids.get(id);
    if (i === undefined || !this.#kept.has(i)) return;
    const rec = parseLine(text);
    if (typeof rec === "string") return;
    this.take(rec, i);
  }

  /** Applies a process line whose index is `i`. */
  take(rec: WatchRecord, i: number): void {
    if (!this.#kept.has(i)) return;
    let e = this.#entries.get(i);
    if (!e) this.#entries.set(i, e = newEntry(rec, rec.pid ?? 0));
    applyRecord(e, rec);
  }

  /** The trees, in lineage order, with the totals and what was left out. */
  finish(): LogSubtree {
    const roots: SubtreeEntry[] = [];
    const all: SubtreeEntry[] = [];
    const { kept, cycleRoots } = this.#plan;
    for (const i of kept) {
      const e = this.#entries.get(i);
      if (!e) continue;
      all.push(e);
      const p = this.#entries.get(this.#index.parentIndex(i));
      if (cycleRoots.has(i)) e.parent_cycle = true;
      if (p && p !== e && !cycleRoots.has(i) && this.#kept.has(this.#index.parentIndex(i))) {
        p.children.push(e);
      } else roots.push(e);
    }
    const ix = this.#index;
    return {
      roots,
      totals: totalsOf(all, ix.lost),
      leftOut: this.#plan.leftOut,
      malformed: ix.malformed,
      withoutId: ix.withoutId,
      records: ix.records,
      cycles: this.#plan.cycles,
    };
  }
}

/**
 * The `id` of a watch line without parsing it: the first `,"id":"…"` (a JSON string value
 * cannot hold an unescaped quote, so the pattern appears only as the key); null: none.
 */
function idOf(text: string): string | null {
  const at = text.indexOf(',"id":"');
  if (at < 0) return null;
  const end = text.indexOf('"', at + 7);
  return end < 0 ? null : text.slice(at + 7, end);
}

/**
 * Both passes at once, for a log that fits in memory (tests, the library): every process
 * gets an entry; {@linkcode finish} keeps what the page shows.
 */
export class LogSubtrees {
  #index: LogIndex;
  #lines: [WatchRecord, number][] = [];

  /** The subtrees of a log for `selection`. */
  constructor(selection: LogSelection = {}) {
    this.#index = new LogIndex(selection);
  }

  /** Takes one line of the log. */
  line(text: string): void {
    const got = this.#index.line(text);
    if (got) this.#lines.push(got);
  }

  /** Links the entries into trees and applies the selection and the bound. */
  finish(): LogSubtree {
    const b = this.#index.builder();
    for (const [rec, i] of this.#lines) b.take(rec, i);
    return b.finish();
  }
}
