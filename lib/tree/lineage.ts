/**
 * Matchers for lineage questions, to pass to `PidTree.isUnder` (is this process, or one of
 * its ancestors, …?) or to `--under`-style filters.
 *
 * ```ts
 * tree.isUnder(node, byComm("openclaw"));   // is_descendant(pid, "openclaw")
 * tree.isUnder(node, byExe("/usr/bin/npm"));
 * tree.isUnder(node, byUser(1000));
 * tree.isUnder(node, byNode(tree.get(4242)!));  // by pid, pinned to that process
 * ```
 *
 * @module
 */

import type { ProcNode } from "./tree.ts";

/** A predicate over tree nodes. */
export type NodeMatcher = (n: ProcNode) => boolean;

/** Matches a comm (the kernel keeps 15 bytes of a name, so longer names are cut to match). */
export function byComm(name: string): NodeMatcher {
  const comm = name.slice(0, 15);
  return (n) => n.comm === comm;
}

/**
 * Matches an executable path exactly, or its basename when `path` has no slash. A `#!`
 * script counts as the executable too: `--under /opt/deploy.sh` means the script, which runs
 * as its interpreter.
 */
export function byExe(path: string): NodeMatcher {
  const base = (p: string | null) => p !== null && p.slice(p.lastIndexOf("/") + 1) === path;
  if (path.includes("/")) return (n) => n.exe === path || n.script === path;
  return (n) => base(n.exe) || base(n.script);
}

/** Matches a process by its effective uid. */
export function byUser(uid: number): NodeMatcher {
  return (n) => n.uid === uid;
}

/** Matches one process incarnation: a later process that reuses its pid does not match. */
export function byNode(node: ProcNode): NodeMatcher {
  return (n) => n === node;
}

/**
 * Matches as `--under` does: a path (with a slash) is the executable's path; a name is the
 * comm or the executable's basename.
 */
export function byName(name: string): NodeMatcher {
  if (name.includes("/")) return byExe(name);
  const comm = byComm(name);
  const exe = byExe(name);
  return (n) => comm(n) || exe(n);
}
