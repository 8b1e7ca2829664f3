/**
 * The output of `watch` and `run`: lines queued on a {@linkcode LineWriter}, written to the
 * `--output` file or to stdout by whole lines, a run of dropped lines said by a `lost` line
 * in the command's own format, and what is left drained (for a bounded time) at the end.
 *
 * @module
 */

import { DRAIN_MS, drainNote, LineWriter, MAX_PENDING_BYTES } from "../lib/sink/line_writer.ts";
import { lostRecord, type WatchRecord } from "../lib/record/record.ts";
import type { WallClock } from "../lib/time.ts";
import type { LogFile } from "../ffi/sink/output.ts";
import { FdWriter } from "../ffi/sink/fd_writer.ts";
import { monotonicNs } from "../session.ts";

/** A command's line output and how to end it. */
export interface LineOutput {
  /** The queue of lines. */
  out: LineWriter;
  /** Drains what is queued, at most `DRAIN_MS`; the note for stderr when lines were left. */
  finish(): string | null;
}

/**
 * Lines to `file`, else stdout; `format` renders the `lost` line for dropped output
 * (reason `output`), dated by `clock`.
 */
export function lineOutput(
  file: LogFile | null,
  format: (rec: WatchRecord) => string,
  clock: WallClock,
  maxPendingBytes: number = MAX_PENDING_BYTES,
): LineOutput {
  const stdout = new FdWriter(1);
  const dropLine = (n: number) => format(lostRecord(clock.iso(monotonicNs()), n, "output"));
  const out = new LineWriter(file ?? stdout, dropLine, maxPendingBytes);
  return {
    out,
    // Stdout's writability bounds the final drain, also when the lines go to a file.
    finish: () => drainNote(out.drain(DRAIN_MS, (ms) => stdout.writable(ms)), DRAIN_MS),
  };
}
