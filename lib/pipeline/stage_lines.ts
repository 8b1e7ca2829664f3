/**
 * The lines of {@linkcode LineStage}s (connections, file changes) as records: each printed
 * after the connector events before it, with its process if the tree's process of that pid
 * is the one the stage names — by its start time, or as the one that held the pid in the
 * stage's window — else `comm: null`, never another process's.
 *
 * @module
 */

import type { LineStage, StageLine } from "./stage.ts";
import type { RecordFilter } from "./filter.ts";
import { lostRecord, type RecordContext, stageRecord } from "../record/record.ts";
import type { PidTree, ProcNode } from "../tree/tree.ts";
import type { RecordSink } from "./apply.ts";

/** Prints the line stages' lines that are due. */
export class StageLines {
  readonly #stages: readonly LineStage[];
  readonly #tree: PidTree;
  readonly #filter: RecordFilter;
  readonly #ctx: RecordContext;
  readonly #sink: RecordSink;

  /** Lines of `stages`, their processes from `tree`, selected by `filter`, into `sink`. */
  constructor(
    stages: readonly LineStage[],
    tree: PidTree,
    filter: RecordFilter,
    ctx: RecordContext,
    sink: RecordSink,
  ) {
    this.#stages = stages;
    this.#tree = tree;
    this.#filter = filter;
    this.#ctx = ctx;
    this.#sink = sink;
  }

  /** Whether a stage holds lines (the loop comes back for them at once). */
  holding(): boolean {
    return this.#stages.some((s) => s.holding());
  }

  /**
   * The lines due now that connector events up to `appliedNs` are applied. After a drain
   * (`drained`), the stages' losses are said and what they hold ages; when that drain
   * emptied the connector (`emptied`), what was held since the drain before is due too.
   */
  print(appliedNs: number, drained: boolean, emptied: boolean): void {
    for (const s of this.#stages) {
      // The drop count is a bpf(2) call: read once a drain, not after every batch.
      if (drained) {
        for (const l of s.losses()) {
          this.#sink(lostRecord(this.#ctx.clock.iso(appliedNs), l.count, l.reason), null);
        }
      }
      for (const line of s.due(appliedNs, emptied)) {
        const node = this.#actor(line);
        if (this.#filter.selected(node)) this.#sink(stageRecord(line, node, this.#ctx), node);
      }
      if (drained) s.age(appliedNs);
    }
  }

  /** The process a stage's line names: by its start time, or by its window. */
  #actor(line: StageLine): ProcNode | null {
    const tree = this.#tree;
    if (line.heldNs) return tree.holder(line.pid, line.heldNs[0], line.heldNs[1]);
    const n = tree.get(line.pid);
    return n && line.startTicks !== undefined && tree.sameStart(n, line.startTicks) ? n : null;
  }
}
