/**
 * One connector event applied: the tree updated, the selection asked, the record built and
 * handed to the sink. A thread's own events print only with `--threads`; process-wide facts
 * always do.
 *
 * @module
 */

import type { ProcEvent } from "../event/wire.ts";
import { PROCESS_WIDE } from "../event/kinds.ts";
import type { ProcReader } from "../tree/proc_parse.ts";
import type { ExecInfo, PidTree, ProcNode } from "../tree/tree.ts";
import { processRecord, type RecordContext, type WatchRecord } from "../record/record.ts";
import type { RecordFilter } from "./filter.ts";
import { NULL_INFO } from "./exec_reads.ts";
import { decodeBytes } from "../text.ts";

/** Receives each record that passes the filters, with the tree node it is about. */
export type RecordSink = (rec: WatchRecord, node: ProcNode | null) => void;

/** A process event: what the tree applies (not an ack, error or unknown kind). */
export type TreeEvent = Exclude<ProcEvent, { what: "ack" }>;

/**
 * Longest argv (in characters, about bytes) the tree holds for a process after its exec
 * line: the line carries argv whole, but 60 processes with 6 MB of arguments each would
 * otherwise hold 360 MB. A longer one is dropped (null for later forks' inheritance), not cut.
 */
export const ARGV_KEEP_CHARS = 4096;

function argvChars(argv: readonly string[]): number {
  let n = 0;
  for (const a of argv) n += a.length + 1;
  return n;
}

/** What {@linkcode EventApply} works with. */
export interface ApplyParts {
  tree: PidTree;
  /** Reads an orphan's new parent. */
  reader: ProcReader;
  filter: RecordFilter;
  ctx: RecordContext;
  sink: RecordSink;
  /** Print threads' own events too. */
  threads: boolean;
}

/** Applies events to the tree and prints their records. */
export class EventApply {
  readonly #p: ApplyParts;
  /** Printed execs whose program no source could vouch for (`exe` printed as null). */
  execsUnreadable = 0;
  /** Set by {@linkcode EventApply.#tree}: the event just applied is about the whole process. */
  #wholeProcess = true;

  /** Applies with `parts`. */
  constructor(parts: ApplyParts) {
    this.#p = parts;
  }

  /** Applies `ev` (an exec with its facts `info`) and prints its record if selected. */
  apply(ev: TreeEvent, info: ExecInfo | undefined): void {
    const { tree, filter, sink } = this.#p;
    const node = this.#tree(ev, info ?? NULL_INFO);
    const isProcess = this.#wholeProcess;
    if (!isProcess && !this.#p.threads) return;
    if (!filter.wanted(ev.what, node)) return;
    if (info !== undefined && info.exe === null) this.execsUnreadable++;
    // An exit names the parent itself; any other line of an orphan reads it once.
    if (node?.alive && node.ppid === 0 && node.pid > 2 && ev.what !== "exit") {
      this.#refreshParent(node);
    }
    const rec = processRecord(ev, node, this.#p.ctx, isProcess);
    if (info?.argvTrueBytes !== undefined && rec.argv) {
      rec.argv_truncated = true;
      rec.argv_bytes = info.argvTrueBytes;
    }
    sink(rec, node);
    if (ev.what === "exec" && node?.argv && argvChars(node.argv) > ARGV_KEEP_CHARS) {
      tree.forgetArgv(node); // printed in full; not held for the process's lifetime
    }
  }

  /**
   * Applies `ev` to the tree; returns the node it is about (null: unknown) and sets
   * {@linkcode EventApply.#wholeProcess} — a field, not a second result: this runs once
   * per event and allocates nothing.
   */
  #tree(ev: TreeEvent, info: ExecInfo): ProcNode | null {
    const tree = this.#p.tree;
    const isProcess = ev.pid === ev.tgid;
    this.#wholeProcess = isProcess || PROCESS_WIDE.has(ev.what);
    switch (ev.what) {
      case "fork":
        return isProcess
          ? tree.fork(ev.pid, ev.parentTgid, ev.timestampNs)
          : tree.threadStart(ev.tgid, ev.pid) ?? null;
      case "exec":
        return tree.exec(ev.tgid, info);
      case "exit": {
        // The process ends with its last thread, whichever thread that is.
        const r = tree.taskExit(ev.tgid, ev.pid, ev.exitCode, ev.parentTgid, ev.timestampNs);
        this.#wholeProcess = r.ended;
        return r.node ?? null;
      }
      case "comm":
        return isProcess
          ? tree.rename(ev.tgid, decodeBytes(ev.comm)) ?? null
          : tree.get(ev.tgid) ?? null;
      case "uid":
        return isProcess ? tree.setUid(ev.tgid, ev.effective) ?? null : tree.get(ev.tgid) ?? null;
      default:
        return tree.get(ev.tgid) ?? null;
    }
  }

  /**
   * A live process whose parent exited: the kernel moved it to a subreaper or init without
   * an event. Its current parent is read from `/proc` (once), so no line names a dead
   * creator as its parent; unreadable, `ppid` stays unknown (null).
   */
  #refreshParent(node: ProcNode): void {
    const st = this.#p.reader.stat(node.pid);
    if (st && this.#p.tree.sameStart(node, st.startTicks)) this.#p.tree.reparent(node, st.ppid);
  }
}
