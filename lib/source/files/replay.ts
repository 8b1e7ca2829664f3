/**
 * Replays `--files` lines: every `create`, `delete`, `rename` and `found` applied in order to a set of
 * paths, as a check that the stream can rebuild what is under PATH. Counts what the replay
 * finds impossible (a delete of what is not there, a create of what is, a rename of nothing):
 * a line out of order or at a wrong path shows up there.
 *
 * A directory moved in from outside comes with `found` lines, what proctree's walk found in
 * it when it read the move; a change made in it before that walk may also come as its own
 * line after them (a create of an entry already found, a delete of one the walk missed).
 * Below such a directory those are not impossible: they are counted as `raced` and change
 * nothing, so the end state is still exact. Pure.
 *
 * @module
 */

import type { WatchRecord } from "../../record/record.ts";

/** What a replay rebuilt, and what it could not apply. */
export interface Replay {
  /** The paths under PATH at the end, as the lines tell it. */
  paths: Set<string>;
  /** Operations that could not have happened as printed. */
  impossible: number;
  /** The lines that were impossible (at most 20), for a report. */
  examples: WatchRecord[];
  /** Changes below a directory moved in that its `found` lines had already told. */
  raced: number;
  /** Directories moved in whose listing stopped at its bound: the replay cannot be exact. */
  cut: number;
}

/** Replays `lines` (any events; only `file` lines count) for the watched path `root`. */
export function replayFiles(lines: Iterable<WatchRecord>, root: string): Replay {
  const paths = new Set<string>();
  const examples: WatchRecord[] = [];
  let impossible = 0;
  let raced = 0;
  let cut = 0;
  const listed: string[] = []; // directories moved in with found lines
  const within = (p: string, dir: string) => p === dir || p.startsWith(dir + "/");
  // A change the walk of a directory moved in may have seen already: not impossible.
  const bad = (l: WatchRecord) => {
    if (listed.some((d) => within(l.path!, d))) raced++;
    else {
      impossible++;
      if (examples.length < 20) examples.push(l);
    }
  };
  const inside = (p: string | undefined): p is string => p !== undefined && within(p, root);
  const under = (p: string) => [...paths].filter((q) => within(q, p));
  for (const l of lines) {
    if (l.event !== "file" || l.path === undefined) continue;
    const p = l.path;
    if (l.action === "create") {
      if (paths.has(p)) bad(l);
      paths.add(p);
    } else if (l.action === "found") {
      if (paths.has(p)) bad(l);
      paths.add(p);
    } else if (l.action === "delete") {
      if (!paths.has(p)) bad(l);
      for (const q of under(p)) paths.delete(q);
    } else if (l.action === "rename") {
      const moved = inside(p) ? under(p) : [];
      if (inside(p) && moved.length === 0) {
        bad(l);
        // Already as the walk found it (the rename happened before the walk), unless what
        // was renamed is listed now.
        if (l.found === undefined && listed.some((d) => within(p, d))) continue;
      }
      for (const q of moved) paths.delete(q);
      if (!inside(l.to)) continue;
      for (const q of under(l.to)) paths.delete(q); // replaced
      if (moved.length === 0) paths.add(l.to); // moved in: found lines tell what is inside
      for (const q of moved) paths.add(l.to + q.slice(p.length));
      if (l.found !== undefined) listed.push(l.to);
      if (l.found_cut) cut++;
    }
  }
  return { paths, impossible, examples, raced, cut };
}
