/**
 * `proctree chain PID`: the ancestors of a live process, from `/proc`.
 *
 * @module
 */

import { CliError } from "./errors.ts";
import { parseFlags } from "./flags.ts";
import { procfs } from "../ffi/procfs.ts";
import { hostUsers } from "../ffi/passwd.ts";
import { terminalSafe } from "../lib/text.ts";
import { chainObjects, formatChain } from "../lib/record/record.ts";
import { PidTree, type ProcNode, type SeedEntry } from "../lib/tree/tree.ts";

export const CHAIN_HELP = `proctree chain — the ancestors of a live process

Usage: proctree chain [--json] PID

Prints pid|comm|user for the process and each parent up to the root, joined by ";"
(fsmon's format). --json prints an array of {pid, comm, user} instead.

Example:
  proctree chain $$`;

/** Reads the chain of a live process from `/proc` as tree nodes (self first). */
export function liveChain(pid: number): ProcNode[] | null {
  const entries: SeedEntry[] = [];
  const seen = new Set<number>();
  for (let p = pid; p > 0 && !seen.has(p);) {
    seen.add(p);
    const st = procfs.stat(p);
    if (!st) break;
    entries.push({ ...st, euid: procfs.status(p)?.euid ?? null });
    p = st.ppid;
  }
  if (entries.length === 0) return null;
  const tree = new PidTree();
  tree.seed(entries);
  return tree.chain(tree.get(pid)!);
}

/** Runs `proctree chain`. */
export function chain(args: string[]): number {
  const f = parseFlags(args, { boolean: ["json", "help"], alias: { h: "help" } }, "chain");
  if (f.help) {
    console.log(CHAIN_HELP);
    return 0;
  }
  if (f._.length !== 1) {
    throw new CliError("chain: expects one PID (see proctree chain --help)", 2);
  }
  if (!/^\d+$/.test(String(f._[0]))) {
    throw new CliError(`chain: ${String(f._[0])} is not a PID (see proctree chain --help)`, 2);
  }
  const pid = Number(f._[0]);
  const nodes = liveChain(pid);
  if (!nodes) throw new CliError(`chain: no process with pid ${pid}`, 1);
  const users = hostUsers();
  // The text form goes to terminals: a name's control bytes are shown escaped, not run.
  console.log(
    f.json ? JSON.stringify(chainObjects(nodes, users)) : terminalSafe(formatChain(nodes, users)),
  );
  return 0;
}
