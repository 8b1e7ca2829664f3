/**
 * `proctree run -- CMD`: subscribe, start CMD, record every process of its subtree by
 * lineage from kernel events, and report the tree when CMD and its descendants are done.
 * {@linkcode parseRunConfig} checks the arguments (pure); {@linkcode runCommand} runs them.
 *
 * @module
 */

import { CliError, say } from "./errors.ts";
import { holdSignals } from "./signals.ts";
import { lineOutput } from "./output.ts";
import { parseFlags } from "./flags.ts";
import { checkWritable, LogFile, writeAtomic } from "../ffi/sink/output.ts";
import {
  ARGV_HELP,
  argvFlag,
  backlogFlag,
  BUFFER_HELP,
  EXEC_FACTS_HELP,
  EXEC_NAMES_HELP,
  execFactsFlag,
  execFactsNote,
  execNamesFlag,
  execNamesNote,
  FILES_HELP,
  filesNote,
  NET_HELP,
  netNote,
  openSession,
  rcvbufFlag,
  rcvbufNote,
  sourceOptions,
} from "./sources.ts";
import type { ArgvMode, ExecFactsMode, ExecNameMode, Session } from "../session.ts";
import { procfs } from "../ffi/procfs.ts";
import { toJsonLine } from "../lib/record/record.ts";
import { Subtree } from "../lib/report/subtree.ts";
import { pageNonce, renderHtml } from "../lib/report/html.ts";
import { traceOf } from "../lib/report/trace.ts";
import { stringifyDeep } from "../lib/sink/json.ts";
import { count, displayArg } from "../lib/sink/text_view.ts";
import type { ProcNode } from "../lib/tree/tree.ts";
import { shellStatus, signalNumber } from "../lib/event/wait_status.ts";
import { monotonicNs } from "../session.ts";

export const RUN_HELP = `proctree run — run a command and record every process it starts

Usage: proctree run [options] -- CMD [ARGS…]

Records every process in CMD's subtree (by lineage from kernel events) until CMD and all
its descendants have exited, then prints the tree on stderr. CMD's stdin, stdout and
stderr pass through; SIGINT, SIGTERM and SIGHUP are forwarded to it; proctree exits with CMD's
status (128+N when CMD was killed by signal N).

Options:
  --json               also print the subtree's events as JSON lines (on stdout, or -o)
  -o, --output FILE    write the JSON lines to FILE (mode 0600) instead of stdout
  --summary FILE       write a JSON document: the tree with argv, exe, user, times,
                       exit statuses, and totals (processes, failed, killed, lost events);
                       with --files, who changed each path (files_touched)
  --html FILE          write a self-contained page: a timeline of every process (nested
                       by lineage, coloured by outcome) and a table to sort and filter
  --trace FILE         write the tree in Chrome's Trace Event Format (open it in
                       ui.perfetto.dev or chrome://tracing)
  --no-wait-orphans    stop when CMD exits, even if descendants still run
  --no-tree            do not print the tree on stderr
  --no-realtime        read at normal priority (default: SCHED_FIFO 1 for proctree's own
                       threads when permitted, so short-lived processes are read in time;
                       CMD and its children keep normal priority)
${BUFFER_HELP}
${EXEC_FACTS_HELP}
${EXEC_NAMES_HELP}
${ARGV_HELP}
${FILES_HELP}
${NET_HELP}
  -q, --quiet          no "proctree: listening" line, nor the names of the reports written
  -h, --help           this help

Example:
  proctree run --summary run.json -- sh -c 'npm install'`;

/** How often descendants still open after CMD ended are checked against `/proc`. */
const ORPHAN_CHECK_NS = 200e6;

/** Everything `run` was asked to do, checked; nothing started yet. */
export interface RunConfig {
  /** Print the help and exit. */
  help: boolean;
  /** The command and its arguments. */
  command: string[];
  /** Stream the subtree's lines on stdout. */
  json: boolean;
  /** Write the lines to this file instead. */
  output?: string;
  /** Write the JSON summary here. */
  summary?: string;
  /** Write the HTML page here. */
  html?: string;
  /** Write the Chrome trace here. */
  trace?: string;
  /** Wait for descendants that outlive CMD. */
  waitOrphans: boolean;
  /** Print the tree on stderr. */
  tree: boolean;
  /** Read at SCHED_FIFO when permitted. */
  realtime: boolean;
  /** Receive buffer to ask for. */
  rcvbufBytes: number;
  /** The reader thread's backlog (0: none). */
  backlogBytes: number;
  /** Where exec names come from. */
  execNames: ExecNameMode;
  /** `--exec-facts`. */
  execFacts: ExecFactsMode;
  /** `--btf`: where the BPF source reads BTF; undefined: the kernel's. */
  btfPath: string | undefined;
  /** Where argv comes from. */
  argv: ArgvMode;
  /** `--files` paths. */
  files: string[];
  /** `--net`: connect, accept and bind lines, and each process's connections in the reports. */
  net: boolean;
  /** No listening line. */
  quiet: boolean;
}

/** Parses `run`'s arguments; every bad flag is a {@linkcode CliError} with status 2. */
export function parseRunConfig(args: string[]): RunConfig {
  const f = parseFlags(args, {
    boolean: ["json", "help", "quiet", "wait-orphans", "tree", "realtime", "net"],
    string: [
      "summary",
      "output",
      "rcvbuf",
      "backlog",
      "exec-names",
      "exec-facts",
      "btf",
      "argv",
      "html",
      "trace",
    ],
    collect: ["files"],
    negatable: ["wait-orphans", "tree", "realtime"],
    alias: { h: "help", q: "quiet", o: "output" },
    default: { "wait-orphans": true, tree: true, realtime: true },
    "--": true,
  }, "run");
  const command = [...f._.map(String), ...(f["--"] ?? [])];
  if (command.length === 0 && !f.help) {
    throw new CliError("run: expects a command after -- (see proctree run --help)", 2);
  }
  return {
    help: f.help,
    command,
    json: f.json,
    output: f.output,
    summary: f.summary,
    html: f.html,
    trace: f.trace,
    waitOrphans: f["wait-orphans"],
    tree: f.tree,
    realtime: f.realtime,
    rcvbufBytes: rcvbufFlag(f.rcvbuf),
    backlogBytes: backlogFlag(f.backlog),
    execNames: execNamesFlag(f["exec-names"]),
    execFacts: execFactsFlag(f["exec-facts"]),
    btfPath: f.btf,
    argv: argvFlag(f.argv),
    files: f.files as string[],
    net: f.net,
    quiet: f.quiet,
  };
}

/** Runs `proctree run`; resolves to the exit status. */
export async function run(args: string[]): Promise<number> {
  const c = parseRunConfig(args);
  if (c.help) {
    console.log(RUN_HELP);
    return 0;
  }
  return await runCommand(c);
}

/** Starts the command of a parsed config under a session and reports its subtree. */
export async function runCommand(c: RunConfig): Promise<number> {
  // Checked before CMD starts: a report that cannot be written must not cost its run.
  for (const path of [c.summary, c.html, c.trace]) if (path) checkWritable(path);
  const outFile = c.output ? new LogFile(c.output, { complain: say }) : null;
  // Held from before the audit rule or marks exist until they are gone again; a signal
  // before CMD starts ends the run before it starts it.
  let child: Deno.ChildProcess | null = null;
  let stopBeforeStart = false;
  const forward = (sig: Deno.Signal) => () => {
    if (!child) stopBeforeStart = true;
    try {
      child?.kill(sig);
    } catch { /* already gone */ }
  };
  const release = holdSignals([
    ["SIGINT", forward("SIGINT")],
    ["SIGTERM", forward("SIGTERM")],
    // Not left to its default (which ends proctree at once, an audit rule left behind).
    ["SIGHUP", forward("SIGHUP")],
  ]);
  let session: Session;
  try {
    session = openSession(sourceOptions(c));
  } catch (e) {
    release();
    throw e;
  }
  const { tree, clock } = session;
  try {
    const output = outFile || c.json ? lineOutput(outFile, toJsonLine, clock) : null;
    const out = output?.out ?? null;

    const subtree = new Subtree();
    const self = Deno.pid;
    let rootPid = 0;
    let root: ProcNode | null = null;
    const isRoot = (n: ProcNode) => {
      if (!root && rootPid && n.pid === rootPid && n.ppid === self) root = n;
      return n === root;
    };
    const processor = session.processor({
      filter: { under: [isRoot] },
      chains: out !== null, // the subtree needs no chain strings; only JSON lines carry them
      sink: (rec, node) => {
        subtree.add(rec, node);
        out?.push(toJsonLine(rec));
      },
    });
    if (!c.quiet) {
      say(
        `proctree: listening (${rcvbufNote(session)}, ${execFactsNote(session)}, ${
          execNamesNote(session)
        }${filesNote(session)}${netNote(session)}); running ${c.command.map(displayArg).join(" ")}`,
      );
    }

    if (c.realtime) session.realtime(); // best effort: without CAP_SYS_NICE it stays normal
    if (stopBeforeStart) throw new CliError("run: stopped by a signal before CMD started", 130);
    let started: Deno.ChildProcess;
    try {
      started = new Deno.Command(c.command[0], {
        args: c.command.slice(1),
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (e) {
      throw new CliError(`run: cannot start ${c.command[0]}: ${(e as Error).message}`, 127);
    }
    child = started;
    rootPid = started.pid;
    let status: Deno.CommandStatus | null = null;
    child.status.then((s) => {
      status = s;
      session.poller.wake();
    });

    let lastCheckNs = 0;
    const done = (): boolean => {
      if (status === null) return false;
      if (!c.waitOrphans || subtree.open.size === 0) return true;
      // Descendants still open after CMD ended: confirm each against /proc now and then,
      // so a lost exit event cannot keep the run waiting forever.
      const now = monotonicNs();
      if (now - lastCheckNs < ORPHAN_CHECK_NS) return false;
      lastCheckNs = now;
      for (const node of [...subtree.open.keys()]) {
        // Gone, or the pid now belongs to another process. (A zombie has exited: its exit
        // event, if lost, is not coming back, but its reaping soon makes it gone.)
        const st = procfs.stat(node.pid);
        if (!st || !tree.sameStart(node, st.startTicks)) subtree.markGone(node, clock.iso(now));
      }
      return subtree.open.size === 0;
    };
    let broken = false;
    try {
      await session.loop(processor, {
        tick: (idle) => {
          if (idle) out?.flush();
          else out?.flushIfDue();
        },
        stopped: done,
      }, 100).run();
    } catch (e) {
      // Recording failed (an output error): CMD still runs to its end and gives the status.
      say(`proctree: ${(e as Error).message}; the record is incomplete`);
      broken = true;
      await child.status;
    }
    try {
      const left = output?.finish();
      if (left) say(left);
    } catch (e) {
      say(`proctree: ${(e as Error).message}`);
    }
    outFile?.close();
    const st = (status ?? await child.status) as Deno.CommandStatus | null;
    const exitStatus = st === null
      ? 1
      : st.signal
      ? shellStatus({ exitCode: null, signalNumber: signalNumber(st.signal) })
      : st.code;
    const counters = processor.counters;
    const lost = counters.lost + counters.overrunsUncounted;
    const totals = subtree.totals(lost);
    if (c.tree) {
      say(
        `proctree: ${count(totals.processes, "process")}, ${totals.failed} exited non-zero, ` +
          `${totals.killed} killed` + (lost ? `; INCOMPLETE: ${lost} events lost` : ""),
      );
      const text = subtree.format();
      if (text) say(text);
    }
    const roots = subtree.root ? [subtree.root] : [];
    const reports: [string | undefined, () => string][] = [
      [c.summary, () =>
        stringifyDeep({
          command: c.command,
          exit_status: exitStatus,
          complete: lost === 0 && !broken,
          totals,
          tree: subtree.root,
          ...(c.files.length ? { files_touched: subtree.touched() } : {}),
        }) + "\n"],
      [c.html, () =>
        renderHtml({
          title: c.command.map(displayArg).join(" "),
          exitStatus,
          totals,
          note: lost || broken ? `incomplete: ${lost} events lost` : undefined,
          roots,
          paths: subtree.pathsByEntry(),
        }, pageNonce())],
      [c.trace, () => JSON.stringify(traceOf(roots)) + "\n"],
    ];
    for (const [path, render] of reports) {
      if (!path) continue;
      try {
        writeAtomic(path, render());
        if (!c.quiet) say(`proctree: wrote ${path}`);
      } catch (e) {
        // CMD's status is what run returns, whatever happens to the report.
        say(`proctree: ${(e as Error).message}`);
      }
    }
    return exitStatus;
  } finally {
    try {
      await session.close();
    } finally {
      release();
    }
  }
}
