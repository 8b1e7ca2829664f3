/**
 * `proctree run -- CMD`: subscribe, start CMD, record every process of its subtree by
 * lineage from kernel events, and report the tree when CMD and its descendants are done.
 *
 * @module
 */

import { bytesFlag, CliError, LineWriter, listen, LogFile, parseFlags, say } from "./common.ts";
import { FdWriter } from "../ffi/fd_writer.ts";
import { EventProcessor } from "../lib/processor.ts";
import { runLoop } from "../lib/loop.ts";
import { Users } from "../lib/users.ts";
import { procfs } from "../ffi/procfs.ts";
import { toJsonLine } from "../lib/record.ts";
import { Audit } from "../lib/audit.ts";
import type { ProcNode } from "../lib/tree.ts";
import { SIGNAL_NAMES } from "../lib/wait_status.ts";
import { Clock, clockNs } from "../ffi/libc.ts";
import { realtime } from "../ffi/sched.ts";

export const RUN_HELP = `proctree run — run a command and record every process it starts

Usage: proctree run [options] -- CMD [ARGS…]

Records every process in CMD's subtree (by lineage from kernel events) until CMD and all
its descendants have exited, then prints the tree on stderr. CMD's stdin, stdout and
stderr pass through; SIGINT and SIGTERM are forwarded to it; proctree exits with CMD's
status (128+N when CMD was killed by signal N).

Options:
  --json               also print the subtree's events as JSON lines (on stdout, or -o)
  -o, --output FILE    write the JSON lines to FILE (mode 0600) instead of stdout
  --summary FILE       write a JSON document: the tree with argv, exe, user, times,
                       exit statuses, and totals (processes, failed, killed, lost events)
  --no-wait-orphans    stop when CMD exits, even if descendants still run
  --no-tree            do not print the tree on stderr
  --no-realtime        read at normal priority (default: SCHED_FIFO 1 for proctree's own
                       threads when permitted, so short-lived processes are read in time;
                       CMD and its children keep normal priority)
  --rcvbuf SIZE        socket receive buffer (default 16M)
  -q, --quiet          no "proctree: listening" line
  -h, --help           this help

Example:
  proctree run --summary audit.json -- sh -c 'npm install'`;

function signalNumber(name: string): number {
  const n = SIGNAL_NAMES.indexOf(name);
  return n > 0 ? n : 0;
}

/** Runs `proctree run`; resolves to the exit status. */
export async function run(args: string[]): Promise<number> {
  const f = parseFlags(args, {
    boolean: ["json", "help", "quiet", "wait-orphans", "tree", "realtime"],
    string: ["summary", "output", "rcvbuf"],
    negatable: ["wait-orphans", "tree", "realtime"],
    alias: { h: "help", q: "quiet", o: "output" },
    default: { "wait-orphans": true, tree: true, realtime: true },
    "--": true,
  }, "run");
  if (f.help) {
    console.log(RUN_HELP);
    return 0;
  }
  const cmd = [...f._.map(String), ...(f["--"] ?? [])];
  if (cmd.length === 0) {
    throw new CliError("run: expects a command after -- (see proctree run --help)", 2);
  }

  const l = listen({
    rcvbufBytes: f.rcvbuf !== undefined ? bytesFlag(f.rcvbuf, "rcvbuf") : undefined,
  });
  const { connector, tree, clock } = l;
  try {
    const outFile = f.output ? new LogFile(f.output) : null;
    const stdout = new FdWriter(1);
    const dropLine = (count: number) =>
      toJsonLine({
        event: "lost",
        time: clock.iso(clockNs(Clock.MONOTONIC)),
        count,
        reason: "output",
      });
    const out = outFile
      ? new LineWriter(outFile, dropLine)
      : f.json
      ? new LineWriter(stdout, dropLine)
      : null;

    const audit = new Audit();
    const self = Deno.pid;
    let rootPid = 0;
    let root: ProcNode | null = null;
    const isRoot = (n: ProcNode) => {
      if (!root && rootPid && n.pid === rootPid && n.ppid === self) root = n;
      return n === root;
    };
    const users = new Users();
    const processor = new EventProcessor({
      tree,
      reader: procfs,
      users,
      clock,
      kernelFilter: connector.kernelFilter,
      now: () => clockNs(Clock.MONOTONIC),
      filter: { under: [isRoot] },
      sink: (rec, node) => {
        audit.add(rec, node);
        out?.push(toJsonLine(rec));
      },
    });
    if (!f.quiet) {
      say(`proctree: listening (rcvbuf ${connector.rcvbufBytes} bytes); running ${cmd.join(" ")}`);
    }

    if (f.realtime) realtime(); // best effort: without CAP_SYS_NICE it stays normal
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd[0], {
        args: cmd.slice(1),
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      })
        .spawn();
    } catch (e) {
      throw new CliError(`run: cannot start ${cmd[0]}: ${(e as Error).message}`, 127);
    }
    rootPid = child.pid;
    let status: Deno.CommandStatus | null = null;
    child.status.then((s) => {
      status = s;
      connector.wake();
    });
    const forward = (sig: Deno.Signal) => () => {
      try {
        child.kill(sig);
      } catch { /* already gone */ }
    };
    const handlers: [Deno.Signal, () => void][] = [["SIGINT", forward("SIGINT")], [
      "SIGTERM",
      forward("SIGTERM"),
    ]];
    for (const [s, h] of handlers) Deno.addSignalListener(s, h);

    let lastCheckNs = 0;
    const done = (): boolean => {
      if (status === null) return false;
      if (!f["wait-orphans"]) return true;
      if (audit.open.size === 0) return true;
      // Descendants still open after CMD ended: confirm each against /proc at most every
      // 200 ms, so a lost exit event cannot keep the run waiting forever.
      const now = clockNs(Clock.MONOTONIC);
      if (now - lastCheckNs < 2e8) return false;
      lastCheckNs = now;
      for (const node of [...audit.open.keys()]) {
        // Gone, or the pid now belongs to another process. (A zombie has exited: its exit
        // event, if lost, is not coming back, but its reaping soon makes it gone.)
        const st = procfs.stat(node.pid);
        if (!st || !tree.sameStart(node, st.startTicks)) audit.markGone(node, clock.iso(now));
      }
      return audit.open.size === 0;
    };
    try {
      await runLoop(connector, {
        ...processor.loopHandlers(),
        tick: (idle) => {
          if (idle) out?.flush();
          else out?.flushIfDue();
          tree.sweep(clockNs(Clock.MONOTONIC));
        },
        stopped: done,
      }, 100);
    } finally {
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    }
    out?.drain(2000, (ms) => stdout.writable(ms));
    outFile?.close();
    const st = status as Deno.CommandStatus | null;
    const exitStatus = st === null ? 1 : st.signal ? 128 + signalNumber(st.signal) : st.code;
    const lost = processor.counters.lost + processor.counters.overrunsUncounted;
    const totals = audit.totals(lost);
    if (f.tree) {
      say(
        `proctree: ${totals.processes} processes, ${totals.failed} failed, ${totals.killed} killed` +
          (lost ? `; INCOMPLETE: ${lost} events lost` : ""),
      );
      const text = audit.format();
      if (text) say(text);
    }
    if (f.summary) {
      const doc = {
        command: cmd,
        exit_status: exitStatus,
        complete: lost === 0,
        totals,
        tree: audit.root,
      };
      Deno.writeTextFileSync(f.summary, JSON.stringify(doc, null, 2) + "\n", { mode: 0o600 });
    }
    return exitStatus;
  } finally {
    await connector.close();
  }
}
