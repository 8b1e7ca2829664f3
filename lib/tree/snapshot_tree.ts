/**
 * Lineage from a `/proc` snapshot, for `proctree chain` and `proctree tree`: the current
 * parent links as the kernel reports them now (no event history is involved).
 *
 * @module
 */

import type { SnapshotEntry } from "./proc_parse.ts";
import type { Users } from "./users.ts";

/** A process in a snapshot tree. */
export interface TreeEntry {
  pid: number;
  comm: string;
  user: string | null;
  children: TreeEntry[];
}

/** Builds the forest of a snapshot; roots are processes whose parent is not in it. */
export function buildForest(entries: readonly SnapshotEntry[], users: Users): TreeEntry[] {
  const byPid = new Map<number, TreeEntry>();
  for (const e of entries) {
    byPid.set(e.pid, { pid: e.pid, comm: e.comm, user: users.name(e.euid), children: [] });
  }
  const roots: TreeEntry[] = [];
  for (const e of entries) {
    const node = byPid.get(e.pid)!;
    const parent = e.ppid !== e.pid ? byPid.get(e.ppid) : undefined;
    (parent ? parent.children : roots).push(node);
  }
  const sort = (list: TreeEntry[]) => {
    list.sort((a, b) => a.pid - b.pid);
    for (const n of list) sort(n.children);
  };
  sort(roots);
  return roots;
}

/** Finds `pid` in a forest. */
export function findEntry(forest: readonly TreeEntry[], pid: number): TreeEntry | undefined {
  const stack = [...forest];
  while (stack.length) {
    const n = stack.pop()!;
    if (n.pid === pid) return n;
    stack.push(...n.children);
  }
  return undefined;
}

/** Indented text, `comm(pid)` per line, two spaces per level (names made terminal-safe by the caller). */
export function formatForest(
  forest: readonly TreeEntry[],
  name: (s: string) => string = (s) => s,
): string {
  const lines: string[] = [];
  const walk = (n: TreeEntry, depth: number) => {
    lines.push(`${"  ".repeat(depth)}${name(n.comm)}(${n.pid})`);
    for (const c of n.children) walk(c, depth + 1);
  };
  for (const r of forest) walk(r, 0);
  return lines.join("\n");
}
