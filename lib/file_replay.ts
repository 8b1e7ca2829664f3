/**
 * Replays `--files` lines: every `create`, `delete` and `rename` applied in order to a set of
 * paths, as a check that the stream can rebuild what is under PATH. Counts what the replay
 * finds impossible (a delete of what is not there, a create of what is, a rename of nothing):
 * a line out of order or at a wrong path shows up there. Pure.
 *
 * @module
 */

import type { WatchRecord } from "./record.ts";

/** What a replay rebuilt, and what it could not apply. */
export interface Replay {
  /** The paths under PATH at the end, as the lines tell it. */
  paths: Set<string>;
  /** Operations that could not have happened as printed. */
  impossible: number;
  /** The lines that were impossible (at most 20), for a report. */
  examples: WatchRecord[];
}

/** Replays `lines` (any events; only `file` lines count) for the watched path `root`. */
export function replayFiles(lines: Iterable<WatchRecord>, root: string): Replay {
  const paths = new Set<string>();
  const examples: WatchRecord[] = [];
  let impossible = 0;
  const bad = (l: WatchRecord) => {
    impossible++;
    if (examples.length < 20) examples.push(l);
  };
  const inside = (p: string | undefined): p is string =>
    p !== undefined && (p === root || p.startsWith(root + "/"));
  const under = (p: string) => [...paths].filter((q) => q === p || q.startsWith(p + "/"));
  for (const l of lines) {
    if (l.event !== "file" || l.path === undefined) continue;
    const p = l.path;
    if (l.action === "create") {
      if (paths.has(p)) bad(l);
      paths.add(p);
    } else if (l.action === "delete") {
      if (!paths.has(p)) bad(l);
      for (const q of under(p)) paths.delete(q);
    } else if (l.action === "rename") {
      const moved = inside(p) ? under(p) : [];
      if (inside(p) && moved.length === 0) bad(l);
      for (const q of moved) paths.delete(q);
      if (!inside(l.to)) continue;
      for (const q of under(l.to)) paths.delete(q); // replaced
      if (moved.length === 0) paths.add(l.to); // moved in: what is inside is not told
      for (const q of moved) paths.add(l.to + q.slice(p.length));
    }
  }
  return { paths, impossible, examples };
}
