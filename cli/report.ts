/**
 * `proctree report LOG.jsonl --html FILE`: the page `run --html` writes, from a `watch`
 * log — processes joined by `id`, within a time window, optionally under named processes.
 * {@linkcode parseReportConfig} checks the arguments (pure); {@linkcode runReport} reads the
 * log and writes the files.
 *
 * @module
 */

import { CliError, say } from "./errors.ts";
import { intFlag, parseFlags } from "./flags.ts";
import { checkWritable, writeAtomic } from "../ffi/sink/output.ts";
import { DEFAULT_MAX_REPORT_PROCESSES, LogIndex } from "../lib/report/log_subtree.ts";
import { pageNonce, renderHtml } from "../lib/report/html.ts";
import { count } from "../lib/sink/text_view.ts";
import { PathHistory } from "../lib/report/path_history.ts";
import { absolutePath } from "../ffi/source/files.ts";
import { traceOf } from "../lib/report/trace.ts";

export const REPORT_HELP = `proctree report — a page (or trace) of the processes in a watch log,
or the history of a path

Usage: proctree report LOG.jsonl (--html FILE | --trace FILE) [options]
       proctree report LOG.jsonl --path PATH [--json] [--since TIME] [--until TIME]

Reads a log written by proctree watch (-o FILE, or its stdout), joins each process's lines
by their id, and writes the page run --html writes: a timeline of every process, nested by
lineage and coloured by outcome, and a table to sort and filter.

With --path, prints instead every change the log has to PATH or under it (watch --files),
oldest first: time, action, path, and the process that made it with its chain — and where
the log says changes may be missing (a files_overflow, a restart).

Options:
  --html FILE          write the page here (mode 0600, whole or not at all)
  --trace FILE         write Chrome's Trace Event Format here (ui.perfetto.dev)
  --path PATH          print the changes to PATH and under it (a rename: either side)
  --json               with --path: print the log's own lines, for jq
  --under NAME|PATH|PID|ID  only processes that are, or descend from, one with this comm or
                       program name (executable, script or argv[0]), executable or script
                       path, pid or id, as watch means them; repeatable
  --since TIME         only events at or after TIME (ISO 8601, e.g. 2026-11-29T18:00:00Z)
  --until TIME         only events at or before TIME
  --max-processes N    show at most N processes, the first in lineage order (default ${DEFAULT_MAX_REPORT_PROCESSES});
                       the page says how many were left out
  -h, --help           this help

Examples:
  proctree report /var/log/proctree/events.jsonl --under sshd --since 2026-11-29T09:00:00Z --html ssh.html
  proctree report /var/log/proctree/events.jsonl --path /etc/ssh/sshd_config`;

/** Everything `report` was asked to do, checked. */
export interface ReportConfig {
  /** Print the help and exit. */
  help: boolean;
  /** The log to read. */
  log: string;
  /** Write the page here. */
  html?: string;
  /** Write the trace here. */
  trace?: string;
  /** Print the changes to this path (absolute) and under it instead. */
  path?: string;
  /** With `path`: the log's own lines. */
  json: boolean;
  /** `--under` values. */
  under: string[];
  /** Window start, µs since the epoch. */
  sinceUs?: number;
  /** Window end, µs since the epoch. */
  untilUs?: number;
  /** Most processes shown. */
  maxProcesses: number;
}

function timeFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new CliError(`--${name} expects an ISO 8601 time, got ${JSON.stringify(value)}`, 2);
  }
  return ms * 1000;
}

/** Parses `report`'s arguments; every bad flag is a {@linkcode CliError} with status 2. */
export function parseReportConfig(args: string[]): ReportConfig {
  const f = parseFlags(args, {
    boolean: ["help", "json"],
    string: ["html", "trace", "since", "until", "max-processes", "path"],
    collect: ["under"],
    alias: { h: "help" },
  }, "report");
  const help = f.help;
  if (!help && f._.length !== 1) {
    throw new CliError("report: expects one log file (see proctree report --help)", 2);
  }
  if (!help && !f.html && !f.trace && f.path === undefined) {
    throw new CliError("report: give --html FILE, --trace FILE or --path PATH", 2);
  }
  if (f.path !== undefined && (f.html || f.trace || f.under.length)) {
    throw new CliError(
      "report: --path prints changes; it does not go with --html, --trace or --under",
      2,
    );
  }
  if (f.json && f.path === undefined) throw new CliError("report: --json goes with --path", 2);
  return {
    help,
    log: String(f._[0] ?? ""),
    html: f.html,
    trace: f.trace,
    path: f.path === undefined ? undefined : absolutePath(f.path, Deno.cwd()),
    json: f.json,
    under: f.under,
    sinceUs: timeFlag(f.since, "since"),
    untilUs: timeFlag(f.until, "until"),
    maxProcesses: f["max-processes"] !== undefined
      ? intFlag(f["max-processes"], "max-processes", 1)
      : DEFAULT_MAX_REPORT_PROCESSES,
  };
}

/** Feeds `path` to `take` line by line, in chunks (a log can be larger than memory). */
function readLines(path: string, take: (line: string) => void): void {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (e) {
    throw new CliError(`report: cannot read ${path}: ${(e as Error).message}`, 1);
  }
  const decoder = new TextDecoder();
  const buf = new Uint8Array(1 << 20);
  let rest = "";
  try {
    for (;;) {
      const n = file.readSync(buf);
      if (n === null) break;
      const lines = (rest + decoder.decode(buf.subarray(0, n), { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const l of lines) take(l);
    }
    take(rest + decoder.decode());
  } finally {
    file.close();
  }
}

/** Runs `proctree report`; resolves to the exit status. */
export function report(args: string[]): number {
  const c = parseReportConfig(args);
  if (c.help) {
    console.log(REPORT_HELP);
    return 0;
  }
  return runReport(c);
}

/** Lines to stdout, written in chunks; a reader that went away (`| head`) ends the output. */
class LineOut {
  #buf: string[] = [];
  #bytes = 0;
  /** The reader went away: nothing more is written. */
  closed = false;

  line(l: string): void {
    if (this.closed) return;
    this.#buf.push(l);
    this.#bytes += l.length + 1;
    if (this.#bytes >= 1 << 16) this.flush();
  }

  /** Writes what is buffered. */
  flush(): void {
    if (this.closed || this.#buf.length === 0) return;
    const bytes = new TextEncoder().encode(this.#buf.join("\n") + "\n");
    this.#buf = [];
    this.#bytes = 0;
    try {
      for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
    } catch (e) {
      if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
      this.closed = true;
    }
  }
}

/** Prints the history of `c.path` in the log: every change, and every gap. */
function runPathReport(c: ReportConfig): number {
  const out = new LineOut();
  const h = new PathHistory(
    { path: c.path!, sinceUs: c.sinceUs, untilUs: c.untilUs },
    c.json,
    (l) => out.line(l),
  );
  readLines(c.log, (l) => h.line(l));
  out.flush();
  const { lines, changes, gaps, malformed } = h.counts;
  if (lines === 0) throw new CliError(`report: ${c.log} is empty`, 1);
  say(
    `proctree: ${count(changes, "change", "changes")} to ${c.path}` +
      (gaps ? `, ${count(gaps, "place", "places")} where changes may be missing` : "") +
      ` (${count(lines, "line", "lines")} read` +
      (malformed ? `, ${malformed} not JSON, skipped)` : ")"),
  );
  return 0;
}

/** Reads the log of a parsed config and writes its page and trace (or prints a path's history). */
export function runReport(c: ReportConfig): number {
  if (c.path !== undefined) return runPathReport(c);
  for (const path of [c.html, c.trace]) if (path) checkWritable(path);
  // Two passes: the first keeps only who created whom, the second builds what the page shows.
  const index = new LogIndex({
    sinceUs: c.sinceUs,
    untilUs: c.untilUs,
    under: c.under,
    maxProcesses: c.maxProcesses,
  });
  readLines(c.log, (l) => index.line(l));
  const builder = index.builder();
  if (builder.needed) readLines(c.log, (l) => builder.line(l));
  const r = builder.finish();
  if (r.records === 0) {
    throw new CliError(
      `report: ${c.log} holds no proctree watch line` +
        (r.malformed
          ? ` (${count(r.malformed, "line", "lines")}, none of them one)`
          : " (it is empty)"),
      1,
    );
  }
  const window = [
    c.sinceUs !== undefined ? `from ${new Date(c.sinceUs / 1000).toISOString()}` : "",
    c.untilUs !== undefined ? `until ${new Date(c.untilUs / 1000).toISOString()}` : "",
    c.under.length ? `under ${c.under.join(", ")}` : "",
  ].filter(Boolean).join(" ");
  const notes = [
    r.leftOut ? `${count(r.leftOut, "process")} left out (more than ${c.maxProcesses})` : "",
    r.malformed ? `${count(r.malformed, "line", "lines")} not JSON, skipped` : "",
    r.cycles
      ? `${count(r.cycles, "process", "processes")} on a parent_id loop (a damaged log?), ` +
        "shown as roots marked ↻"
      : "",
    r.withoutId
      ? `${count(r.withoutId, "line", "lines")} without an id (older proctree), skipped`
      : "",
  ].filter(Boolean);
  if (c.html) {
    writeAtomic(
      c.html,
      renderHtml({
        title: `${c.log}${window ? ` (${window})` : ""}`,
        exitStatus: null,
        totals: r.totals,
        note: notes.length ? notes.join("; ") : undefined,
        roots: r.roots,
      }, pageNonce()),
    );
  }
  if (c.trace) writeAtomic(c.trace, JSON.stringify(traceOf(r.roots)) + "\n");
  say(
    `proctree: ${count(r.totals.processes, "process")}` +
      (notes.length ? ` (${notes.join("; ")})` : "") +
      ` → ${[c.html, c.trace].filter(Boolean).join(", ")}`,
  );
  return 0;
}
