/**
 * After lost events the tree no longer matches the system: reconcile it with a `/proc`
 * snapshot (processes added, processes marked gone).
 *
 * A resync reads every process in `/proc`: on a host with tens of thousands of them that
 * takes long enough for more events to be lost, and a resync after every loss would never
 * catch up. So resyncs are at least {@linkcode RESYNC_INTERVAL_MS} apart; losses in between
 * wait for the next one.
 *
 * @module
 */

import { type ProcReader, snapshot } from "./proc_parse.ts";
import type { PidTree, ResyncResult } from "./tree.ts";

/** Least time between two resyncs with `/proc`, in ms. */
export const RESYNC_INTERVAL_MS = 1000;

/** Reads every process from `reader` and reconciles `tree` with it at `nowNs`. */
export function resyncTree(tree: PidTree, reader: ProcReader, nowNs: number): ResyncResult {
  return tree.resync(snapshot(reader), nowNs);
}

/** Resyncs of one tree, {@linkcode RESYNC_INTERVAL_MS} apart at least. */
export class Resyncs {
  readonly #tree: PidTree;
  readonly #reader: ProcReader;
  #lastMs = -Infinity;
  /** Resyncs done. */
  count = 0;

  /** Resyncs of `tree` from `reader`. */
  constructor(tree: PidTree, reader: ProcReader) {
    this.#tree = tree;
    this.#reader = reader;
  }

  /** Whether a resync may run at `nowMs` (CLOCK_MONOTONIC); if so, it counts as run then. */
  due(nowMs: number): boolean {
    if (nowMs - this.#lastMs < RESYNC_INTERVAL_MS) return false;
    this.#lastMs = nowMs;
    return true;
  }

  /** Reconciles the tree now, dated `nowNs`. */
  run(nowNs: number): ResyncResult {
    this.count++;
    return resyncTree(this.#tree, this.#reader, nowNs);
  }
}
