/**
 * `proctree tree [PID]`: the live process tree from a `/proc` snapshot.
 *
 * @module
 */

import { CliError } from "./errors.ts";
import { parseFlags } from "./flags.ts";
import { snapshot } from "../lib/tree/proc_parse.ts";
import { procfs } from "../ffi/procfs.ts";
import { hostUsers } from "../ffi/passwd.ts";
import { buildForest, findEntry, formatForest } from "../lib/tree/snapshot_tree.ts";
import { terminalSafe } from "../lib/text.ts";

export const TREE_HELP = `proctree tree — the live process tree

Usage: proctree tree [--json] [PID]

Prints comm(pid), indented two spaces per level, for every process (or the subtree of
PID). --json prints nested {pid, comm, user, children} objects.

Example:
  proctree tree 1`;

/** Runs `proctree tree`. */
export function tree(args: string[]): number {
  const f = parseFlags(args, { boolean: ["json", "help"], alias: { h: "help" } }, "tree");
  if (f.help) {
    console.log(TREE_HELP);
    return 0;
  }
  if (f._.length > 1) {
    throw new CliError("tree: expects at most one PID (see proctree tree --help)", 2);
  }
  if (f._.length === 1 && !/^\d+$/.test(String(f._[0]))) {
    throw new CliError(`tree: ${String(f._[0])} is not a PID (see proctree tree --help)`, 2);
  }
  let forest = buildForest(snapshot(procfs), hostUsers());
  if (f._.length === 1) {
    const pid = Number(f._[0]);
    const entry = findEntry(forest, pid);
    if (!entry) throw new CliError(`tree: no process with pid ${pid}`, 1);
    forest = [entry];
  }
  console.log(
    f.json
      ? JSON.stringify(f._.length === 1 ? forest[0] : forest)
      : formatForest(forest, terminalSafe),
  );
  return 0;
}
