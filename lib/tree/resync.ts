/**
 * After lost events the tree no longer matches the system: reconcile it with a `/proc`
 * snapshot (processes added, processes marked gone).
 *
 * @module
 */

import { type ProcReader, snapshot } from "./proc_parse.ts";
import type { PidTree, ResyncResult } from "./tree.ts";

/** Reads every process from `reader` and reconciles `tree` with it at `nowNs`. */
export function resyncTree(tree: PidTree, reader: ProcReader, nowNs: number): ResyncResult {
  return tree.resync(snapshot(reader), nowNs);
}
