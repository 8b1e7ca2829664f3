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

/** What {@linkcode nameMatches} looks at: a tree node and a `watch` line both have it. */
export interface NamedProcess {
  readonly comm?: string | null;
  readonly exe?: string | null;
  readonly script?: string | null;
  readonly argv?: readonly string[] | null;
}

/** The part of `path` after its last slash; null for null. */
function baseName(path: string | null | undefined): string | null {
  return path == null ? null : path.slice(path.lastIndexOf("/") + 1);
}

/**
 * What a `--under` name or path means, for `watch`, `run` and `report` alike: a path (with a
 * slash) is the executable's or the `#!` script's path; a name is the comm (cut to the
 * kernel's 15 bytes) or the basename of the executable, the script or argv[0].
 */
export function nameMatches(name: string, p: NamedProcess): boolean {
  if (name.includes("/")) return p.exe === name || p.script === name;
  return p.comm === name.slice(0, 15) || baseName(p.exe) === name ||
    baseName(p.script) === name || baseName(p.argv?.[0]) === name;
}

/** Matches as `--under NAME|PATH` does ({@linkcode nameMatches}). */
export function byName(name: string): NodeMatcher {
  return (n) => nameMatches(name, n);
}
