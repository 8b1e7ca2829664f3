/**
 * `proctree watch`: every process event as one JSON line (or a readable text line).
 *
 * @module
 */

import { StatsClock } from "./stats.ts";
import { byName, byNode } from "../lib/lineage.ts";
import {
  bytesFlag,
  CliError,
  intFlag,
  LineWriter,
  listen,
  LogFile,
  parseFlags,
  say,
  wallOffsetNs,
} from "./common.ts";
import { EventProcessor, type ProcessFilter } from "../lib/processor.ts";
import { runLoop } from "../lib/loop.ts";
import { EVENT_BITS, eventMask, TREE_EVENTS } from "../lib/wire.ts";
import { Users } from "../lib/users.ts";
import { procfs } from "../ffi/procfs.ts";
import { toJsonLine, type WatchRecord } from "../lib/record.ts";
import { TextFormatter } from "../lib/text_view.ts";
import type { PidTree, ProcNode } from "../lib/tree.ts";
import { Clock, clockNs } from "../ffi/libc.ts";
import { DEFAULT_RCVBUF_BYTES } from "../ffi/connector.ts";
import { realtime } from "../ffi/sched.ts";
import { FdWriter } from "../ffi/fd_writer.ts";

export const WATCH_HELP = `proctree watch — stream process events as JSON lines

Usage: proctree watch [options]

Options:
  --events LIST        only these events (comma-separated): fork,exec,exit,uid,gid,sid,
                       ptrace,comm,coredump. lost, resync, malformed and unknown always print
  --under NAME|PID     only processes that are, or descend from, a process with this comm
                       (or executable name) or this pid; repeatable
  --user NAME|UID      only processes of this user; repeatable
  --comm NAME          only processes with this comm; repeatable
  --threads            also report thread creation and exit (tid differs from pid)
  --format json|text   JSON lines (default) or a readable, indented view
  --no-chain           leave out the ancestor chain
  -o, --output FILE    append the lines to FILE (created with mode 0600) instead of stdout;
                       SIGHUP reopens it (for logrotate)
  --truncate           with --output: start FILE empty instead of appending
  --rotate-bytes SIZE  with --output: move FILE to FILE.1 when it reaches SIZE (e.g. 100M)
  --output-buffer SIZE output held while the reader is slow (default 64M); beyond it lines
                       are dropped and reported as {"event":"lost","reason":"output",…}
  --stats SECONDS      every SECONDS, a {"event":"stats",…} line: events/s, lost, tree size,
                       exited processes held, RSS
  --rcvbuf SIZE        socket receive buffer (default ${DEFAULT_RCVBUF_BYTES / 1024 / 1024}M)
  --realtime           read at real-time priority (SCHED_FIFO 1, root): far fewer execs whose
                       process exits before /proc can be read; children are not affected
  --grace SECONDS      keep exited processes this long for chains (default 60)
  --max-exited N       keep at most N exited processes (default 10000)
  -q, --quiet          no "proctree: listening" line on stderr
  -h, --help           this help

Example:
  proctree watch --events exec --under sshd | jq -r .chain`;

/** Builds the `--under` matchers; a number names a live pid, pinned to that process. */
export function underMatchers(values: string[], tree: PidTree): ((n: ProcNode) => boolean)[] {
  return values.map((v) => {
    if (/^\d+$/.test(v)) {
      const node = tree.get(Number(v));
      if (!node?.alive) throw new CliError(`--under ${v}: no process with pid ${v}`, 1);
      return byNode(node);
    }
    return byName(v);
  });
}

function parseEvents(list: string): Set<string> {
  const names = list.split(",").map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(n in EVENT_BITS)) {
      throw new CliError(
        `--events: unknown event "${n}" (known: ${Object.keys(EVENT_BITS).join(",")})`,
        2,
      );
    }
  }
  return new Set(names);
}

/** Runs `proctree watch`; resolves to the exit status. */
export async function watch(args: string[]): Promise<number> {
  const f = parseFlags(args, {
    boolean: ["threads", "quiet", "help", "chain", "realtime", "truncate"],
    string: [
      "events",
      "format",
      "rcvbuf",
      "grace",
      "max-exited",
      "output",
      "rotate-bytes",
      "stats",
      "output-buffer",
    ],
    collect: ["under", "user", "comm"],
    negatable: ["chain"],
    alias: { q: "quiet", h: "help", o: "output" },
    default: { format: "json", chain: true },
  }, "watch");
  if (f.help) {
    console.log(WATCH_HELP);
    return 0;
  }
  if (f._.length) throw new CliError(`watch: unexpected argument ${String(f._[0])}`, 2);
  if (f.format !== "json" && f.format !== "text") {
    throw new CliError(`--format expects json or text, got ${JSON.stringify(f.format)}`, 2);
  }
  const events = f.events !== undefined ? parseEvents(f.events) : undefined;
  if ((f.truncate || f["rotate-bytes"] !== undefined) && !f.output) {
    throw new CliError("--truncate and --rotate-bytes go with --output", 2);
  }
  const rotateBytes = f["rotate-bytes"] !== undefined
    ? bytesFlag(f["rotate-bytes"], "rotate-bytes")
    : 0;
  const statsMs = f.stats !== undefined ? intFlag(f.stats, "stats", 1) * 1000 : 0;
  const mask = eventMask(events, TREE_EVENTS);
  const users = new Users();
  const uids = (f.user as string[]).map((u) => {
    if (/^\d+$/.test(u)) return Number(u);
    const uid = users.uidOf(u);
    if (uid === null) throw new CliError(`--user ${u}: no such user`, 1);
    return uid;
  });

  const l = listen({
    rcvbufBytes: f.rcvbuf !== undefined ? bytesFlag(f.rcvbuf, "rcvbuf") : undefined,
    eventMask: mask,
    graceMs: f.grace !== undefined ? intFlag(f.grace, "grace") * 1000 : undefined,
    maxExited: f["max-exited"] !== undefined
      ? intFlag(f["max-exited"], "max-exited", 1)
      : undefined,
  });
  const { connector, tree, clock } = l;
  try {
    const filter: ProcessFilter = {};
    if (f.under.length) filter.under = underMatchers(f.under, tree);
    if (uids.length) filter.uids = new Set(uids);
    if (f.comm.length) filter.comms = new Set(f.comm as string[]);

    const log = f.output ? new LogFile(f.output, { truncate: f.truncate, rotateBytes }) : null;
    const text = f.format === "text" ? new TextFormatter(tree, filter.under) : null;
    const stdout = new FdWriter(1);
    // Every line, stats and output-drop reports included, in the one chosen format.
    const format = text
      ? (rec: WatchRecord, node: ProcNode | null) => text.format(rec, node)
      : (rec: WatchRecord) => toJsonLine(rec);
    const dropLine = (count: number) =>
      format(
        { event: "lost", time: clock.iso(clockNs(Clock.MONOTONIC)), count, reason: "output" },
        null,
      );
    const out = new LineWriter(
      log ?? stdout,
      dropLine,
      f["output-buffer"] !== undefined ? bytesFlag(f["output-buffer"], "output-buffer") : undefined,
    );
    const processor = new EventProcessor({
      tree,
      reader: procfs,
      users,
      clock,
      events,
      threads: f.threads,
      filter,
      chains: f.chain,
      kernelFilter: connector.kernelFilter,
      now: () => clockNs(Clock.MONOTONIC),
      sink: (rec, node) => out.push(format(rec, node)),
    });

    if (f.realtime) {
      const err = realtime();
      if (err) {
        say(`proctree: --realtime: cannot raise priority (${err}); reading at normal priority`);
      }
    }
    if (!log) connector.watchHangup(1);
    let stop = false;
    let reopen = false;
    const onSignal = () => {
      stop = true;
      connector.wake();
    };
    // SIGHUP: reopen the log file (logrotate); without one it is a hang-up, and ends.
    const onHup = () => {
      if (log) reopen = true;
      else stop = true;
      connector.wake();
    };
    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, onSignal);
    Deno.addSignalListener("SIGHUP", onHup);
    const stats = new StatsClock(statsMs);
    if (!f.quiet) {
      say(
        `proctree: listening (${l.seeded} processes seeded, rcvbuf ${connector.rcvbufBytes} bytes` +
          `${connector.kernelFilter ? ", kernel event filter" : ""})`,
      );
    }
    let lastClockNs = clockNs(Clock.MONOTONIC);
    try {
      await runLoop(connector, {
        ...processor.loopHandlers(),
        tick: (idle) => {
          const now = clockNs(Clock.MONOTONIC);
          if (stats.due(now)) {
            out.push(format(stats.record(now, clock, processor, tree, connector.stats), null));
          }
          if (idle || reopen) out.flush();
          else out.flushIfDue();
          if (reopen && log) log.reopen();
          reopen = false;
          if (out.closed) stop = true;
          tree.sweep(now);
          if (now - lastClockNs > 1e9) {
            lastClockNs = now;
            clock.offsetNs = wallOffsetNs();
          }
        },
        stopped: () => stop,
        hangup: () => {
          out.closed = true;
          stop = true;
        },
      });
    } finally {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
      Deno.removeSignalListener("SIGHUP", onHup);
    }
    out.drain(2000, (ms) => stdout.writable(ms));
    log?.close();
    if (out.droppedAtOutput > 0) {
      say(`proctree: ${out.droppedAtOutput} lines dropped: the output did not keep up`);
    }
    return 0;
  } finally {
    await connector.close();
  }
}
