/**
 * The JSON line `proctree watch` prints: one object per event, snake_case keys, and the
 * fsmon-style chain `pid|comm|user;…` from the process itself up to the root.
 *
 * @module
 */

import type { ProcNode } from "./tree.ts";
import type { Users } from "./users.ts";

/** Every `event` value a line can carry. */
export type RecordKind =
  | "fork"
  | "exec"
  | "exit"
  | "uid"
  | "gid"
  | "sid"
  | "ptrace"
  | "comm"
  | "coredump"
  | "lost"
  | "resync"
  | "unknown"
  | "malformed"
  | "stats";

/**
 * One output line. Which keys are present depends on `event`; a key present with null means
 * "proctree could not know" (the process was gone, or /proc was not readable).
 */
export interface WatchRecord {
  /** What happened. */
  event: RecordKind;
  /** ISO-8601 UTC with microseconds, from the kernel's timestamp. */
  time: string;
  /** The process (thread group id). */
  pid?: number;
  /** The thread, when it differs from the process (only with `--threads`). */
  tid?: number;
  /** Parent process: from the event for fork/exit, from the tree otherwise. */
  ppid?: number | null;
  /** The name (at most 15 bytes from the kernel). */
  comm?: string | null;
  /** Arguments from `/proc/<pid>/cmdline`; null when not readable. */
  argv?: string[] | null;
  /** Executable path from `/proc/<pid>/exe`; null when not readable. */
  exe?: string | null;
  /** Effective uid; null when unknown. */
  uid?: number | null;
  /** User name of the effective uid (the number when unnamed). */
  user?: string | null;
  /** exit: status of a normal exit, else null. */
  exit_code?: number | null;
  /** exit: terminating signal name (`SIGKILL`), else null. */
  signal?: string | null;
  /** True when a core was dumped. */
  core_dumped?: boolean;
  /** uid/gid events. */
  real?: number;
  /** Effective id after the change. */
  effective?: number;
  /** ptrace: the tracer process, 0 on detach. */
  tracer_pid?: number;
  /** lost: how many events were dropped (null: unknown, at least one). */
  count?: number | null;
  /** lost: `overrun` (kernel said ENOBUFS), `seq_gap`; malformed: the decode error. */
  reason?: string;
  /** lost: the CPU whose events were dropped. */
  cpu?: number;
  /** resync: processes added to and removed from the tree. */
  added?: number;
  /** Processes marked gone. */
  removed?: number;
  /** unknown: the `what` code. */
  code?: number;
  /** Ancestor chain, self first: `pid|comm|user;…`. */
  chain?: string;
  /** stats lines carry their own counters. */
  [extra: string]: unknown;
}

// `|` and `;` separate chain fields; `%` escapes them, so hostile names cannot fake entries.
function chainField(s: string): string {
  return /[%|;]/.test(s)
    ? s.replace(/[%|;]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())
    : s;
}

/**
 * The fsmon chain of `nodes` (self first): `102|touch|root;101|sh|root`. An unknown name or
 * user is `?`; `%`, `|` and `;` inside a name are written `%25`, `%7C`, `%3B`.
 */
export function formatChain(nodes: readonly ProcNode[], users: Users): string {
  let out = "";
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    if (i) out += ";";
    out += n.pid + "|" + (n.comm === null ? "?" : chainField(n.comm)) + "|" +
      (n.uid === null ? "?" : chainField(users.name(n.uid) ?? "?"));
  }
  return out;
}

/** The chain as objects, for `chain --json` and the library. */
export function chainObjects(
  nodes: readonly ProcNode[],
  users: Users,
): { pid: number; comm: string | null; user: string | null }[] {
  return nodes.map((n) => ({ pid: n.pid, comm: n.comm, user: users.name(n.uid) }));
}

/** One JSON line (without the newline). Lone surrogates become `\udcXX` escapes. */
export function toJsonLine(rec: WatchRecord): string {
  return JSON.stringify(rec);
}
