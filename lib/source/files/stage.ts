/**
 * The file-change stage: holds the changes `--files` read until the connector events before
 * them are applied, then hands them on as `file` lines, in the order read. fanotify names a
 * process by a pid number and carries no time, so each line names its process by a window —
 * after the source's last empty read, no later than the read that returned the change — and
 * the processor asks the tree which process held that pid then (`PidTree.holder`).
 *
 * @module
 */

import type { LineStage, StageLine, StageLoss } from "../../pipeline/stage.ts";
import type { FileChange } from "./events.ts";

/** What the stage takes from the file-change source. */
export interface FileChanges {
  /** The changes read since the last call, in order. */
  take(): readonly FileChange[];
  /** Changes whose directory could not be named so far. */
  unnamed(): number;
  /** Whether changes are held back in the source (the stage asks again soon). */
  holding(): boolean;
  /** Walks of a new directory stopped at their bound. */
  readonly walksCut: number;
}

/** The fields a file line has before its process's, in print order. */
function lead(c: FileChange): Record<string, unknown> {
  const f: Record<string, unknown> = { action: c.action, path: c.path };
  if (c.to !== undefined) f.to = c.to;
  if (c.dir) f.dir = true;
  if (c.merged) f.merged = true;
  if (c.namedAtRead) f.named_at_read = c.namedAtRead;
  if (c.found !== undefined) f.found = c.found;
  if (c.foundCut) f.found_cut = true;
  return f;
}

/** See the module doc. */
export class FileStage implements LineStage {
  readonly name = "files";
  readonly #source: FileChanges;
  /** Not handed on yet, in order; the first `#aged` were taken before the last drain ended. */
  #queue: FileChange[] = [];
  #aged = 0;
  #overflows = 0;
  #changes = 0;

  /** A stage over `source`'s changes. */
  constructor(source: FileChanges) {
    this.#source = source;
  }

  /** The kernel's queue overflowed: changes were dropped (said as a `lost` line). */
  overflowed(): void {
    this.#overflows++;
  }

  losses(): StageLoss[] {
    const n = this.#overflows;
    this.#overflows = 0;
    return Array.from({ length: n }, () => ({ reason: "files_overflow", count: null }));
  }

  due(appliedNs: number, held: boolean): StageLine[] {
    for (const c of this.#source.take()) this.#queue.push(c);
    const q = this.#queue;
    const aged = held ? this.#aged : 0;
    let n = 0;
    while (n < q.length && (n < aged || q[n].beforeNs <= appliedNs)) n++;
    if (n === 0) return [];
    this.#queue = q.slice(n);
    this.#aged = Math.max(0, this.#aged - n);
    this.#changes += n;
    return q.slice(0, n).map((c) => ({
      timeNs: c.beforeNs,
      pid: c.pid,
      heldNs: [c.afterNs, c.beforeNs] as const,
      event: "file",
      lead: lead(c),
      fields: {},
    }));
  }

  age(_appliedNs: number): void {
    this.#aged = this.#queue.length;
  }

  holding(): boolean {
    return this.#queue.length > 0 || this.#source.holding();
  }

  counters(): Readonly<Record<string, number>> {
    return {
      file_changes: this.#changes,
      file_changes_unnamed: this.#source.unnamed(),
      file_walks_cut: this.#source.walksCut,
    };
  }
}
