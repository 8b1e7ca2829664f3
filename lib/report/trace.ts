/**
 * `run --trace`: the process tree in the Chrome Trace Event Format, which Perfetto
 * (ui.perfetto.dev) and `chrome://tracing` open. One complete event (`"ph": "X"`, `ts` and
 * `dur` in µs) per process, each process on its own track, the tracks sorted in lineage
 * order with their names indented by depth, and a flow arrow from each creator to each
 * process it created. argv, exe, user, how it ended, and with `--files`/`--net` its changes
 * and connections in one line each, are in `args`.
 *
 * @module
 */

import type { SubtreeEntry } from "./subtree.ts";
import { pageRows } from "./html.ts";

/** One event of the Trace Event Format (only the fields proctree writes). */
export interface TraceEvent {
  /** The slice's or metadata's name. */
  name: string;
  /** Phase: `X` complete, `M` metadata, `s`/`f` flow start and finish. */
  ph: "X" | "M" | "s" | "f";
  /** Track: the process's pid. */
  pid: number;
  /** Thread within the track: the same pid. */
  tid: number;
  /** Start, µs from the earliest process start. */
  ts?: number;
  /** Duration in µs (`X`). */
  dur?: number;
  /** Category. */
  cat?: string;
  /** Flow id (`s`/`f`). */
  id?: number;
  /** Flow binding: the enclosing slice (`f`). */
  bp?: "e";
  /** Details shown when the slice is selected. */
  args?: Record<string, unknown>;
}

/** The trace document. */
export interface TraceDoc {
  /** Every event. */
  traceEvents: TraceEvent[];
  /** How viewers show times. */
  displayTimeUnit: "ms";
}

/**
 * The trace of the trees under `roots`. A process whose end was not seen lasts until the
 * last event of the trace. Pids repeat across a long run: each process gets its own track
 * number (its row), and its pid is in `args`.
 */
export function traceOf(roots: readonly SubtreeEntry[]): TraceDoc {
  const rows = pageRows(roots);
  let last = 0;
  for (const r of rows) last = Math.max(last, r.end ?? r.start);
  const events: TraceEvent[] = [];
  rows.forEach((r, i) => {
    const track = i + 1;
    const label = `${"  ".repeat(Math.min(r.depth, 30))}${r.pid} ${r.name.slice(0, 80)}`;
    events.push(
      { name: "process_name", ph: "M", pid: track, tid: track, args: { name: label } },
      { name: "process_sort_index", ph: "M", pid: track, tid: track, args: { sort_index: i } },
      {
        name: r.name.slice(0, 200),
        cat: "process",
        ph: "X",
        pid: track,
        tid: track,
        ts: r.start,
        dur: Math.max(0, (r.end ?? last) - r.start),
        args: {
          pid: r.pid,
          argv: r.argv,
          exe: r.exe,
          script: r.script,
          user: r.user,
          exit_code: r.exitCode,
          signal: r.signal,
          outcome: r.outcome,
          files: r.files ?? undefined,
          net: r.net ?? undefined,
        },
      },
    );
    if (r.parent >= 0) {
      const from = r.parent + 1;
      events.push(
        { name: "created", cat: "lineage", ph: "s", id: track, pid: from, tid: from, ts: r.start },
        {
          name: "created",
          cat: "lineage",
          ph: "f",
          bp: "e",
          id: track,
          pid: track,
          tid: track,
          ts: r.start,
        },
      );
    }
  });
  return { traceEvents: events, displayTimeUnit: "ms" };
}
