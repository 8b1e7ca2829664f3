/**
 * Synthetic event sequences and a fake `/proc` for tests that need no root.
 *
 * @module
 */

import type { ProcReader, StatInfo } from "../lib/tree/proc_parse.ts";
import type { Decoded, ExecEvent, ExitEvent, ForkEvent } from "../lib/event/wire.ts";
import { EventProcessor, type ProcessorOptions } from "../lib/pipeline/processor.ts";
import { PidTree } from "../lib/tree/tree.ts";
import { Users } from "../lib/tree/users.ts";
import { WallClock } from "../lib/time.ts";
import { containerOf } from "../lib/tree/container.ts";
import type { WatchRecord } from "../lib/record/record.ts";

/** A process in the fake /proc. */
export interface FakeProc {
  comm: string;
  ppid: number;
  startTicks: number;
  argv?: string[];
  exe?: string;
  euid?: number;
  cwd?: string;
  loginUid?: number | null;
  cgroup?: string;
  /** Exited, not yet reaped: status still reads, cmdline is empty, exe and cwd fail. */
  zombie?: boolean;
}

/** A `/proc` held in a map. */
export class FakeProc {
  static reader(procs: Map<number, FakeProc>): ProcReader {
    const stat = (pid: number): StatInfo | null => {
      const p = procs.get(pid);
      return p
        ? {
          pid,
          comm: p.comm,
          state: "S",
          ppid: p.ppid,
          startTicks: p.startTicks,
          threads: 1,
          flags: 0,
        }
        : null;
    };
    return {
      stat,
      status: (pid) => {
        const p = procs.get(pid);
        return p
          ? { comm: p.comm, ppid: p.ppid, euid: p.euid ?? 0, tracerPid: 0, exited: !!p.zombie }
          : null;
      },
      cmdline: (pid) => procs.get(pid)?.zombie ? null : procs.get(pid)?.argv ?? null,
      exe: (pid) => procs.get(pid)?.zombie ? null : procs.get(pid)?.exe ?? null,
      cwd: (pid) => procs.get(pid)?.zombie ? null : procs.get(pid)?.cwd ?? null,
      loginUid: (pid) => procs.has(pid) ? procs.get(pid)!.loginUid ?? null : undefined,
      cgroup: (pid) => procs.has(pid) ? procs.get(pid)!.cgroup ?? "0::/\n" : null,
      tasks: (pid) => procs.has(pid) ? [pid] : [],
      pids: () => [...procs.keys()],
    };
  }
}

let seq = 0;
/** Event builders with increasing seq on CPU 0 and timestamps in ms steps. */
export const ev = {
  fork: (pid: number, parent: number, ms: number, parentThread = parent): ForkEvent => ({
    what: "fork",
    seq: seq++,
    ack: 0,
    cpu: 0,
    timestampNs: ms * 1e6,
    pid,
    tgid: pid,
    parentPid: parentThread,
    parentTgid: parent,
  }),
  thread: (tid: number, tgid: number, ms: number): ForkEvent => ({
    what: "fork",
    seq: seq++,
    ack: 0,
    cpu: 0,
    timestampNs: ms * 1e6,
    pid: tid,
    tgid,
    parentPid: 1,
    parentTgid: 1,
  }),
  exec: (pid: number, ms: number): ExecEvent => ({
    what: "exec",
    seq: seq++,
    ack: 0,
    cpu: 0,
    timestampNs: ms * 1e6,
    pid,
    tgid: pid,
  }),
  exit: (pid: number, status: number, parent: number, ms: number): ExitEvent => ({
    what: "exit",
    seq: seq++,
    ack: 0,
    cpu: 0,
    timestampNs: ms * 1e6,
    pid,
    tgid: pid,
    exitCode: status,
    exitSignal: 17,
    parentPid: parent,
    parentTgid: parent,
  }),
  skip: (n: number) => {
    seq += n;
  },
};

/** A processor over a fake /proc that collects its records. */
export function harness(
  procs: Map<number, FakeProc>,
  extra: Partial<ProcessorOptions> = {},
): {
  tree: PidTree;
  records: WatchRecord[];
  processor: EventProcessor;
  run: (b: Decoded[]) => void;
} {
  const tree = new PidTree({ graceMs: 1000, maxExited: 100 });
  const reader = FakeProc.reader(procs);
  tree.seed(
    [...procs].map(([pid, p]) => ({
      pid,
      ppid: p.ppid,
      comm: p.comm,
      euid: p.euid ?? 0,
      startTicks: p.startTicks,
      container: containerOf(reader.cgroup(pid)),
    })),
  );
  const records: WatchRecord[] = [];
  let nowNs = 0;
  const processor = new EventProcessor({
    tree,
    reader,
    users: new Users(() => "root:x:0:0::/root:/bin/sh\n"),
    clock: new WallClock(0),
    sink: (r) => records.push(r),
    // Reads are dated just after every event of their batch (fresh: within
    // FRESH_READ_NS of each exec): anything later in it conflicts.
    now: () => nowNs,
    ...extra,
  });
  const run = (b: Decoded[]) => {
    for (const e of b) if ("timestampNs" in e) nowNs = Math.max(nowNs, e.timestampNs + 1);
    processor.processBatch(b);
  };
  return { tree, records, processor, run };
}

/** A process name that is markup: pages must show it as text and never run it. */
export const HOSTILE = "<img src=x onerror=alert(1)>";
