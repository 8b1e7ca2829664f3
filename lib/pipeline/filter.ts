/**
 * Which records reach the output: the `--events` kinds and the process selection of
 * `--under`, `--user` and `--comm`. Lines about no process (lost, resync, malformed,
 * unknown) pass whenever no process selection is set.
 *
 * @module
 */

import type { ProcessTree, ProcNode } from "../tree/tree.ts";
import type { RecordKind } from "../record/record.ts";

/** Selects processes for `--under`, `--user` and `--comm`. */
export interface ProcessFilter {
  /** Keep processes that are, or descend from, a node matching one of these. */
  under?: ((n: ProcNode) => boolean)[];
  /** Keep processes whose effective uid is one of these. */
  uids?: Set<number>;
  /** Keep processes whose comm is one of these. */
  comms?: Set<string>;
}

/** Decides, per record, whether it is printed. */
export class RecordFilter {
  #tree: ProcessTree;
  #events?: ReadonlySet<string>;
  #f: ProcessFilter;
  #any: boolean;

  /** `events`: kinds to print (undefined: all); `filter`: the process selection. */
  constructor(tree: ProcessTree, events?: ReadonlySet<string>, filter: ProcessFilter = {}) {
    this.#tree = tree;
    this.#events = events;
    this.#f = filter;
    this.#any = !!(filter.under || filter.uids || filter.comms);
  }

  /** Whether a process record of `kind` about `node` is printed. */
  wanted(kind: RecordKind, node: ProcNode | null): boolean {
    if (this.#events && !this.#events.has(kind)) return false;
    return this.selected(node);
  }

  /** Whether `node` is in the process selection (file changes use this alone). */
  selected(node: ProcNode | null): boolean {
    if (!this.#any) return true;
    if (!node) return false;
    const f = this.#f;
    if (f.uids && (node.uid === null || !f.uids.has(node.uid))) return false;
    if (f.comms && (node.comm === null || !f.comms.has(node.comm))) return false;
    if (f.under) {
      const under = f.under;
      if (!this.#tree.isUnder(node, (n) => under.some((m) => m(n)))) return false;
    }
    return true;
  }
}
