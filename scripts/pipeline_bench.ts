/**
 * The storm's path through proctree without the kernel: CPU per event of everything after
 * the socket, on a synthetic copy of `../shared/storm`'s 50k vfork+exec storm.
 *
 *   deno run -A --v8-flags=--max-semi-space-size=8 scripts/pipeline_bench.ts \
 *     [--processes 50000] [--rounds 5] [--batch 512]
 *
 * Datagrams are encoded and decoded as the connector's are; each exec has a record as the
 * BPF program writes it (`lib/source/bpf_exec/record.ts`), paired by the real stage; the
 * processor applies the events to a tree seeded with the storm's ancestry (systemd, a
 * shell, the storm and its 8 workers) and every line is formatted and written to a sink
 * that discards it. Kernel-side costs (reads, `/proc`, fanotify) are not in it: this is
 * the part a change to `lib/` moves, with less noise than a real storm (still ±10 % from
 * one invocation to the next on this shared machine: interleave A and B). Prints µs of CPU per event
 * (this process's user + system time, GC threads included) for each round, then the median.
 *
 * @module
 */

import { parseArgs } from "@std/cli";
import { type Decoded, decodeDatagram, type ProcEvent } from "../lib/event/wire.ts";
import { DATAGRAM_BYTES, encodeEventInto } from "../lib/event/encode.ts";
import { PidTree } from "../lib/tree/tree.ts";
import { Users } from "../lib/tree/users.ts";
import { WallClock } from "../lib/time.ts";
import { EventProcessor } from "../lib/pipeline/processor.ts";
import { toJsonLine } from "../lib/record/record.ts";
import { LineWriter } from "../lib/sink/line_writer.ts";
import { BpfExecStage } from "../lib/source/bpf_exec/stage.ts";
import { ARGV_CAP_BYTES, PathWalk, Rec } from "../lib/source/bpf_exec/program.ts";
import { GONE_PROC } from "../lib/tree/proc_parse.ts";

const f = parseArgs(Deno.args, { string: ["processes", "rounds", "batch"] });
const PROCESSES = Number(f.processes ?? 50_000);
const ROUNDS = Number(f.rounds ?? 5);
const BATCH = Number(f.batch ?? 512);
const WORKERS = 8;
const PROGRAM = "/tmp/storm/zzstorm_true";

const text = new TextEncoder();

/** The record the BPF program writes for an exec of {@linkcode PROGRAM}. */
function bpfRecord(ns: number, tgid: number, ppid: number): Uint8Array {
  const argv = text.encode(PROGRAM + "\0");
  const names = text.encode("zzstorm_true\0storm\0tmp\0");
  const cwd = text.encode("tmp\0");
  const r = new Uint8Array(Rec.header + argv.length + names.length + cwd.length);
  const v = new DataView(r.buffer);
  v.setBigUint64(Rec.ktimeNs, BigInt(ns), true);
  v.setUint32(Rec.tgid, tgid, true);
  v.setUint32(Rec.tid, tgid, true);
  v.setUint32(Rec.ppid, ppid, true);
  v.setUint32(Rec.loginUid, 0xffffffff, true);
  v.setBigUint64(Rec.startBoottimeNs, BigInt(ns), true);
  r.set(text.encode("zzstorm_true"), Rec.comm);
  r.set(text.encode(PROGRAM), Rec.filename);
  r.set(text.encode(PROGRAM), Rec.interp);
  v.setBigUint64(Rec.exeIno, 4242n, true);
  v.setUint32(Rec.exeDev, (8 << 20) | 1, true);
  v.setBigUint64(Rec.argvBytes, BigInt(argv.length), true);
  r.set(argv.subarray(0, ARGV_CAP_BYTES), Rec.header);
  v.setUint32(Rec.pathBytes, names.length, true);
  v.setUint32(Rec.pathWalk, PathWalk.ROOT, true);
  r.set(names, Rec.header + argv.length);
  v.setBigUint64(Rec.cwdIno, 4343n, true);
  v.setUint32(Rec.cwdDev, (8 << 20) | 1, true);
  v.setUint32(Rec.cwdBytes, cwd.length, true);
  v.setUint32(Rec.cwdWalk, PathWalk.ROOT, true);
  r.set(cwd, Rec.header + argv.length + names.length);
  return r;
}

/** The storm's events in the order the connector delivers them, and the exec records. */
function storm(): { events: ProcEvent[]; records: Map<number, Uint8Array> } {
  const events: ProcEvent[] = [];
  const records = new Map<number, Uint8Array>();
  let seq = 0;
  let ns = 1e12;
  // One CPU: the kernel numbers each CPU's events on its own (a gap is a loss).
  const base = () => ({ seq: seq++, ack: 0, cpu: 0, timestampNs: ns += 20_000 });
  for (let i = 0; i < PROCESSES; i++) {
    const pid = 1000 + i;
    const worker = 400 + (i % WORKERS);
    events.push({ ...base(), what: "fork", pid, tgid: pid, parentPid: worker, parentTgid: worker });
    const exec: ProcEvent = { ...base(), what: "exec", pid, tgid: pid };
    records.set(events.length, bpfRecord(exec.timestampNs - 1000, pid, worker));
    events.push(exec);
    events.push({
      ...base(),
      what: "exit",
      pid,
      tgid: pid,
      exitCode: 0,
      exitSignal: 17,
      parentPid: worker,
      parentTgid: worker,
    });
  }
  return { events, records };
}

/** This process's CPU time so far, in µs (every thread). */
function cpuUs(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 1e4; // utime, stime: clock ticks of 10 ms
}

function round(events: ProcEvent[], view: DataView, records: Map<number, Uint8Array>): number {
  const tree = new PidTree({ bootTag: "bench" });
  tree.seed([
    { pid: 1, ppid: 0, comm: "systemd", euid: 0, startTicks: 1 },
    { pid: 200, ppid: 1, comm: "bash", euid: 0, startTicks: 2 },
    { pid: 300, ppid: 200, comm: "stormgen", euid: 0, startTicks: 3 },
    ...Array.from({ length: WORKERS }, (_, i) => ({
      pid: 400 + i,
      ppid: 300,
      comm: "stormgen",
      euid: 0,
      startTicks: 4,
    })),
  ]);
  let queued: Uint8Array[] = [];
  const stage = new BpfExecStage(
    {
      drain: (take) => {
        for (const r of queued) take(r);
        queued = [];
      },
      drops: () => 0,
    },
    (path) => path,
    () => true,
  );
  let nowNs = 0;
  let lines = 0;
  const out = new LineWriter({ writeNow: (b) => b.length });
  const processor = new EventProcessor({
    tree,
    reader: GONE_PROC,
    users: new Users(() => "root:x:0:0::/root:/bin/sh\n"),
    clock: new WallClock(1.7e18),
    sink: (rec) => {
      lines++;
      out.push(toJsonLine(rec));
    },
    now: () => nowNs,
    stages: [stage],
  });
  const batch: Decoded[] = [];
  const startUs = cpuUs();
  for (let at = 0; at < events.length; at += BATCH) {
    const n = Math.min(BATCH, events.length - at);
    batch.length = 0;
    for (let i = at; i < at + n; i++) {
      const r = records.get(i);
      if (r) queued.push(r);
      decodeDatagram(view, i * DATAGRAM_BYTES, DATAGRAM_BYTES, batch);
    }
    nowNs = events[at + n - 1].timestampNs + 1;
    processor.processBatch(batch);
    out.flush();
  }
  const perEventUs = (cpuUs() - startUs) / events.length;
  // A faster pipeline that drops lines measures nothing: every event is a line, every exec
  // paired with its record.
  const paired = stage.counters().execs_facts_from_bpf;
  if (lines !== events.length || paired !== events.length / 3) {
    throw new Error(`${lines} lines for ${events.length} events, ${paired} execs paired`);
  }
  return perEventUs;
}

const { events, records } = storm();
// Encoded once: the datagrams as the socket hands them over.
const view = new DataView(new ArrayBuffer(events.length * DATAGRAM_BYTES));
events.forEach((ev, i) => encodeEventInto(view, i * DATAGRAM_BYTES, ev));
const perEvent: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  perEvent.push(round(events, view, records));
  console.log(`round ${r + 1}: ${perEvent[r].toFixed(2)} µs/event`);
}
perEvent.sort((a, b) => a - b);
console.log(
  `median ${perEvent[Math.floor(ROUNDS / 2)].toFixed(2)} µs/event ` +
    `(${events.length} events, batches of ${BATCH})`,
);
