/**
 * `proctree watch`: every process event as one JSON line (or a readable text line).
 * {@linkcode parseWatchConfig} turns the arguments into a {@linkcode WatchConfig} (pure,
 * unit-tested); {@linkcode watch} runs it.
 *
 * @module
 */

import { StatsClock } from "./stats.ts";
import { lineOutput } from "./output.ts";
import { byName, byNode } from "../lib/tree/lineage.ts";
import { CliError, say } from "./errors.ts";
import { holdSignals } from "./signals.ts";
import { bytesFlag, formatBytes, intFlag, parseFlags } from "./flags.ts";
import { LogFile } from "../ffi/sink/output.ts";
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
import type { ArgvMode, ExecFactsMode, ExecNameMode } from "../session.ts";
import { MAX_PENDING_BYTES } from "../lib/sink/line_writer.ts";
import type { ProcessFilter } from "../lib/pipeline/processor.ts";
import {
  EVENT_KINDS,
  type EventKind,
  eventMask,
  eventsHelp,
  isEventKind,
  TREE_EVENTS,
} from "../lib/event/kinds.ts";
import type { Users } from "../lib/tree/users.ts";
import { restartRecord, toJsonLine, type WatchRecord } from "../lib/record/record.ts";
import { TextFormatter } from "../lib/sink/text_view.ts";
import type { ProcessTree, ProcNode } from "../lib/tree/tree.ts";
import { isProcessId } from "../lib/tree/identity.ts";
import { DEFAULT_GRACE_MS, DEFAULT_MAX_EXITED } from "../lib/tree/tree.ts";
import { ECS_VERSION, toEcs } from "../lib/sink/ecs.ts";
import { hostFacts } from "../ffi/procfs.ts";
import { monotonicNs, type Session } from "../session.ts";

export const WATCH_HELP = `proctree watch — stream process events as JSON lines

Usage: proctree watch [options]

Options:
  --events LIST        only these events (comma-separated); lost, resync, malformed and
                       unknown always print. The events:
${eventsHelp("                         ")}
  --under NAME|PATH|PID|ID  only processes that are, or descend from, a process with this
                       comm or program name (executable, script or argv[0]), this executable
                       or script path, this pid or this id; repeatable
  --user NAME|UID      only processes of this user; repeatable
  --comm NAME          only processes with this comm; repeatable
  --threads            also report thread creation and exit (tid differs from pid)
  --format json|ecs|text  JSON lines (default), Elastic Common Schema ${ECS_VERSION} documents
                       (one per line), or a readable, indented view
  --no-chain           leave out the ancestor chain
  -o, --output FILE    append the lines to FILE (created with mode 0600) instead of stdout;
                       SIGHUP reopens it (for logrotate)
  --truncate           with --output: start FILE empty instead of appending
  --rotate-bytes SIZE  with --output: move FILE to FILE.1 when it reaches SIZE (e.g. 100M)
  --output-buffer SIZE output held while the reader is slow (default ${
  formatBytes(MAX_PENDING_BYTES)
}); beyond it lines
                       are dropped and reported as {"event":"lost","reason":"output",…}
  --stats SECONDS      every SECONDS, a {"event":"stats",…} line: events/s, lost, tree size,
                       exited processes held, RSS
${BUFFER_HELP}
${EXEC_FACTS_HELP}
${EXEC_NAMES_HELP}
${ARGV_HELP}
${FILES_HELP}
${NET_HELP}
  --realtime           read at real-time priority (SCHED_FIFO 1, root): far fewer execs whose
                       process exits before /proc can be read; children are not affected
  --grace SECONDS      keep exited processes this long for chains (default ${
  DEFAULT_GRACE_MS / 1000
})
  --max-exited N       keep at most N exited processes (default ${DEFAULT_MAX_EXITED})
  -q, --quiet          no "proctree: listening" line on stderr
  -h, --help           this help

Example:
  proctree watch --events exec --under sshd | jq -r .chain`;

/** With `--stats`, the idle loop wakes this often, so lines come out on their schedule. */
const STATS_TICK_MS = 100;

/** Everything `watch` was asked to do, checked; nothing opened yet. */
export interface WatchConfig {
  /** Print the help and exit. */
  help: boolean;
  /** Kinds to print; undefined: all. */
  events?: ReadonlySet<EventKind>;
  /** `--under` values: names, paths or pids (resolved against the tree when listening). */
  under: string[];
  /** `--user` values: names or uids (names resolved when listening). */
  users: string[];
  /** `--comm` values. */
  comms: string[];
  /** Report threads. */
  threads: boolean;
  /** Output format. */
  format: "json" | "ecs" | "text";
  /** Add the chain field. */
  chains: boolean;
  /** `--output` path. */
  output?: string;
  /** Start the output file empty. */
  truncate: boolean;
  /** Rotate the output file at this size (0: never). */
  rotateBytes: number;
  /** Output held while the reader is slow. */
  outputBufferBytes: number;
  /** Period of stats lines (0: none). */
  statsMs: number;
  /** Receive buffer to ask for. */
  rcvbufBytes: number;
  /** The reader thread's backlog (0: none). */
  backlogBytes: number;
  /** Read at SCHED_FIFO. */
  realtime: boolean;
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
  /** `--net`: connect, accept and bind lines. */
  net: boolean;
  /** How long exited processes are kept. */
  graceMs: number;
  /** Most exited processes kept. */
  maxExited: number;
  /** No listening line. */
  quiet: boolean;
}

function parseEvents(list: string): Set<EventKind> {
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) {
    throw new CliError(`--events: no event named in ${JSON.stringify(list)}`, 2);
  }
  for (const n of names) {
    if (!isEventKind(n)) {
      throw new CliError(`--events: unknown event "${n}" (known: ${EVENT_KINDS.join(",")})`, 2);
    }
  }
  return new Set(names as EventKind[]);
}

/** Parses `watch`'s arguments; every bad flag is a {@linkcode CliError} with status 2. */
export function parseWatchConfig(args: string[]): WatchConfig {
  const f = parseFlags(args, {
    boolean: ["threads", "quiet", "help", "chain", "realtime", "truncate", "net"],
    string: [
      "events",
      "format",
      "rcvbuf",
      "backlog",
      "grace",
      "max-exited",
      "output",
      "rotate-bytes",
      "stats",
      "output-buffer",
      "exec-names",
      "exec-facts",
      "btf",
      "argv",
    ],
    collect: ["under", "user", "comm", "files"],
    negatable: ["chain"],
    alias: { q: "quiet", h: "help", o: "output" },
    default: { format: "json", chain: true },
  }, "watch");
  if (f._.length) throw new CliError(`watch: unexpected argument ${String(f._[0])}`, 2);
  if (f.format !== "json" && f.format !== "ecs" && f.format !== "text") {
    throw new CliError(`--format expects json, ecs or text, got ${JSON.stringify(f.format)}`, 2);
  }
  if ((f.truncate || f["rotate-bytes"] !== undefined) && !f.output) {
    throw new CliError("--truncate and --rotate-bytes go with --output", 2);
  }
  for (const c of f.comm as string[]) {
    if (new TextEncoder().encode(c).length > 15) {
      throw new CliError(
        `--comm ${c}: the kernel keeps at most 15 bytes of a name (use --under for longer names)`,
        2,
      );
    }
  }
  // `-o -` and `-o /dev/stdout` mean stdout, which is written without blocking.
  if (f.output === "-" || f.output === "/dev/stdout") f.output = undefined;
  const opt = <T>(name: string, parse: (v: string) => T, fallback: T): T =>
    f[name] !== undefined ? parse(f[name]) : fallback;
  return {
    help: f.help,
    events: f.events !== undefined ? parseEvents(f.events) : undefined,
    under: f.under,
    users: f.user,
    comms: f.comm,
    threads: f.threads,
    format: f.format,
    chains: f.chain,
    output: f.output,
    truncate: f.truncate,
    rotateBytes: opt("rotate-bytes", (v) => bytesFlag(v, "rotate-bytes", 1024), 0),
    outputBufferBytes: opt(
      "output-buffer",
      (v) => bytesFlag(v, "output-buffer", 1024),
      MAX_PENDING_BYTES,
    ),
    statsMs: opt("stats", (v) => intFlag(v, "stats", 1) * 1000, 0),
    rcvbufBytes: rcvbufFlag(f.rcvbuf),
    backlogBytes: backlogFlag(f.backlog),
    realtime: f.realtime,
    execNames: execNamesFlag(f["exec-names"]),
    execFacts: execFactsFlag(f["exec-facts"]),
    btfPath: f.btf,
    argv: argvFlag(f.argv),
    files: f.files as string[],
    net: f.net,
    graceMs: opt("grace", (v) => intFlag(v, "grace") * 1000, DEFAULT_GRACE_MS),
    maxExited: opt("max-exited", (v) => intFlag(v, "max-exited", 1), DEFAULT_MAX_EXITED),
    quiet: f.quiet,
  };
}

/**
 * Builds the `--under` matchers: a number names a live pid (pinned to that process), a
 * path names an executable, anything else a comm or executable name.
 */
export function underMatchers(values: string[], tree: ProcessTree): ((n: ProcNode) => boolean)[] {
  return values.map((v) => {
    if (/^\d+$/.test(v)) {
      const node = tree.get(Number(v));
      if (!node?.alive) throw new CliError(`--under ${v}: no process with pid ${v}`, 1);
      return byNode(node);
    }
    if (isProcessId(v)) {
      const node = tree.byId(v);
      if (!node) throw new CliError(`--under ${v}: no process with that id is held`, 1);
      return byNode(node);
    }
    return byName(v);
  });
}

/** The process selection of a config, resolved against the live tree and user table. */
export function processFilter(c: WatchConfig, tree: ProcessTree, users: Users): ProcessFilter {
  const filter: ProcessFilter = {};
  if (c.under.length) filter.under = underMatchers(c.under, tree);
  if (c.users.length) {
    filter.uids = new Set(c.users.map((u) => {
      if (/^\d+$/.test(u)) return Number(u);
      const uid = users.uidOf(u);
      if (uid === null) throw new CliError(`--user ${u}: no such user`, 1);
      return uid;
    }));
  }
  if (c.comms.length) filter.comms = new Set(c.comms);
  return filter;
}

/** The listening line: what was seeded, and the receive buffer as the kernel granted it. */
export function listeningLine(s: Session): string {
  return `proctree: listening (${s.seeded} processes seeded, ${rcvbufNote(s)}` +
    `${s.connector.kernelFilter ? ", kernel event filter" : ""}, ${execFactsNote(s)}, ` +
    `${execNamesNote(s)}` +
    `${filesNote(s)}${netNote(s)})`;
}

/**
 * The current parent of `node` (pid `ppid`): its creator while that is still its parent,
 * else the live process on `ppid` (a live parent's pid cannot have been reused).
 */
export function parentOf(
  tree: ProcessTree,
  node: ProcNode | null,
  ppid: number | null | undefined,
): ProcNode | null {
  if (!node || !ppid) return null;
  if (node.parent?.pid === ppid) return node.parent;
  const p = tree.get(ppid);
  return p?.alive ? p : null;
}

/** Runs `proctree watch`; resolves to the exit status. */
export async function watch(args: string[]): Promise<number> {
  const c = parseWatchConfig(args);
  if (c.help) {
    console.log(WATCH_HELP);
    return 0;
  }
  return await runWatch(c);
}

/** Runs a parsed `watch` config until a signal, a hang-up or a closed output. */
export async function runWatch(c: WatchConfig): Promise<number> {
  // The output first: a file that cannot be written fails before anything is subscribed.
  const log = c.output
    ? new LogFile(c.output, { truncate: c.truncate, rotateBytes: c.rotateBytes, complain: say })
    : null;
  // Signals are held from before the audit rule or marks exist until they are gone again.
  let stop = false;
  let reopen = false;
  let wake = () => {};
  const onSignal = () => {
    stop = true;
    wake();
  };
  // SIGHUP: reopen the log file (logrotate); without one it is a hang-up, and ends.
  const onHup = () => {
    if (log) reopen = true;
    else stop = true;
    wake();
  };
  const release = holdSignals([["SIGINT", onSignal], ["SIGTERM", onSignal], ["SIGHUP", onHup]]);
  let session: Session;
  try {
    session = openSession({
      ...sourceOptions(c),
      eventMask: eventMask(c.events, TREE_EVENTS),
      graceMs: c.graceMs,
      maxExited: c.maxExited,
    });
  } catch (e) {
    log?.close();
    release();
    throw e;
  }
  const { tree, clock } = session;
  wake = () => session.poller.wake();
  try {
    const filter = processFilter(c, tree, session.users);
    if (log?.opened.modeWas !== undefined) {
      say(`proctree: ${c.output} had mode ${log.opened.modeWas.toString(8)}; it is now 0600`);
    }
    const text = c.format === "text" ? new TextFormatter(tree, filter.under) : null;
    // Every line, stats and output-drop reports included, in the one chosen format.
    const host = c.format === "ecs" ? hostFacts() : null;
    const format = text
      ? (rec: WatchRecord, node: ProcNode | null) => text.format(rec, node)
      : host
      ? (rec: WatchRecord, node: ProcNode | null) =>
        JSON.stringify(toEcs(rec, node, host, parentOf(tree, node, rec.ppid)))
      : (rec: WatchRecord) => toJsonLine(rec);
    const { out, finish } = lineOutput(log, (rec) => format(rec, null), clock, c.outputBufferBytes);
    if (log?.opened.appending) {
      out.push(format(restartRecord(clock.iso(monotonicNs()), log.opened.repairedTornLine), null));
    }
    const processor = session.processor({
      events: c.events,
      threads: c.threads,
      filter,
      chains: c.chains,
      sink: (rec, node) => out.push(format(rec, node)),
    });

    if (c.realtime) {
      const err = session.realtime();
      if (err) {
        say(`proctree: --realtime: cannot raise priority (${err}); reading at normal priority`);
      }
    }
    if (!log) session.poller.watchHangup(1);
    const stats = new StatsClock(c.statsMs);
    if (!c.quiet) say(listeningLine(session));
    try {
      // The session sweeps before this tick: a stats line shows the tree within its bounds,
      // not a batch's exits still waiting for the sweep.
      await session.loop(processor, {
        tick: (idle, now) => {
          if (stats.due(now)) {
            out.push(format(
              stats.record(now, clock, processor.counters, tree.stats, session.connector.stats),
              null,
            ));
          }
          if (idle || reopen) out.flush();
          else out.flushIfDue();
          if (reopen && log) log.reopen();
          reopen = false;
          if (out.closed) stop = true;
        },
        stopped: () => stop,
        hangup: () => {
          out.closed = true;
          stop = true;
        },
      }, c.statsMs ? STATS_TICK_MS : undefined).run();
    } finally {
      // From here a signal only asks for what is already under way: the end.
      stop = true;
    }
    const left = finish();
    if (left) say(left);
    log?.close();
    if (out.droppedAtOutput > 0) {
      say(`proctree: ${out.droppedAtOutput} lines dropped: the output did not keep up`);
    }
    return 0;
  } finally {
    try {
      await session.close();
    } finally {
      release();
    }
  }
}
