/**
 * `report --path`: what happened to one path, or under it, according to a watch log — each
 * change with its time, action and the process that made it (its chain as the line has it),
 * and where the log says changes may be missing (a fanotify overflow, a restart). Pure: log
 * lines in, lines out; nothing is held but the counts.
 *
 * @module
 */

import { isoToUs } from "../time.ts";
import type { WatchRecord } from "../record/record.ts";

/** What the history of a path is drawn from, and its window. */
export interface PathQuery {
  /** The path, absolute, without a trailing slash. */
  path: string;
  /** Only lines at or after this time (µs since the epoch). */
  sinceUs?: number;
  /** Only lines at or before this time. */
  untilUs?: number;
}

/** Counts of a pass over a log. */
export interface PathHistoryCounts {
  /** Lines read. */
  lines: number;
  /** Changes to the path or under it. */
  changes: number;
  /** Places where changes may be missing (`lost` for file changes, `restart`). */
  gaps: number;
  /** Lines that were not a JSON object with a time. */
  malformed: number;
}

/** Whether `p` is `path` or under it. */
function within(p: unknown, path: string): boolean {
  return typeof p === "string" &&
    (p === path || p.startsWith(path === "/" ? "/" : path + "/"));
}

/** Whether file line `rec` changed `path` or something under it (a rename: either side). */
export function touches(rec: WatchRecord, path: string): boolean {
  return rec.event === "file" && (within(rec.path, path) || within(rec.to, path));
}

/** A line that says changes may be missing from the log here. */
function isGap(rec: WatchRecord): boolean {
  return rec.event === "restart" ||
    (rec.event === "lost" && (rec.reason === "files_overflow" || rec.reason === "output"));
}

/** One change as text: time, action, path (→ new path), the process and its chain. */
export function changeText(rec: WatchRecord): string {
  const what = `${rec.action}${rec.dir ? " (dir)" : ""}`;
  const where = rec.to !== undefined ? `${rec.path} → ${rec.to}` : String(rec.path);
  const who = rec.comm === null || rec.comm === undefined
    ? `${rec.pid} (process not known)`
    : `${rec.pid} ${rec.comm}${rec.exe ? ` ${rec.exe}` : ""}`;
  return `${rec.time}  ${what}  ${where}  by ${who}${rec.chain ? `  ${rec.chain}` : ""}`;
}

/** A gap as text. */
function gapText(rec: WatchRecord): string {
  return rec.event === "restart"
    ? `${rec.time}  (proctree restarted: changes before this line were not seen)`
    : `${rec.time}  (${rec.count ?? "some"} events lost: ${rec.reason}; changes may be missing)`;
}

/**
 * Reads log lines one at a time and hands on, as text or as the log's own lines (`json`),
 * every change to the queried path and every gap in the window.
 */
export class PathHistory {
  readonly #q: PathQuery;
  readonly #json: boolean;
  readonly #out: (line: string) => void;
  /** Running counts. */
  readonly counts: PathHistoryCounts = { lines: 0, changes: 0, gaps: 0, malformed: 0 };

  /** A pass for `query`, writing each result line to `out`. */
  constructor(query: PathQuery, json: boolean, out: (line: string) => void) {
    this.#q = query;
    this.#json = json;
    this.#out = out;
  }

  /** Takes one log line. */
  line(text: string): void {
    if (text.trim() === "") return;
    this.counts.lines++;
    let rec: WatchRecord;
    try {
      rec = JSON.parse(text);
    } catch {
      this.counts.malformed++;
      return;
    }
    if (typeof rec !== "object" || rec === null || typeof rec.time !== "string") {
      this.counts.malformed++;
      return;
    }
    const change = touches(rec, this.#q.path);
    if (!change && !isGap(rec)) return;
    const t = isoToUs(rec.time);
    if (Number.isNaN(t)) {
      this.counts.malformed++;
      return;
    }
    if (this.#q.sinceUs !== undefined && t < this.#q.sinceUs) return;
    if (this.#q.untilUs !== undefined && t > this.#q.untilUs) return;
    if (change) this.counts.changes++;
    else this.counts.gaps++;
    this.#out(this.#json ? text : change ? changeText(rec) : gapText(rec));
  }
}
