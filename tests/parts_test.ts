// The processor's parts, each on its own (the processor tests cover them composed).
import { assert, assertEquals } from "@std/assert";
import { LossAccounting } from "../lib/event/loss.ts";
import { ExecReads, NULL_INFO, READ_MARGIN_NS } from "../lib/pipeline/exec_reads.ts";
import { RecordFilter } from "../lib/pipeline/filter.ts";
import { resyncTree } from "../lib/tree/resync.ts";
import { processRecord } from "../lib/record/record.ts";
import { PidTree } from "../lib/tree/tree.ts";
import { Users } from "../lib/tree/users.ts";
import { ISO_MEMO_SLOTS, WallClock } from "../lib/time.ts";
import { byName, nameMatches } from "../lib/tree/lineage.ts";
import {
  EVENT_BITS,
  EVENT_KINDS,
  eventsHelp,
  KINDS,
  PROCESS_WIDE,
  TREE_EVENTS,
  WHAT,
  WHAT_ALL,
} from "../lib/event/kinds.ts";
import { ev, FakeProc } from "./fixtures.ts";

Deno.test("event kinds: lists, bits and help derive from the one table", () => {
  assertEquals<readonly string[]>(EVENT_KINDS, Object.keys(KINDS).filter((k) => k !== "ack"));
  assertEquals(EVENT_BITS.exec, WHAT.EXEC);
  assertEquals(TREE_EVENTS, (WHAT.FORK | WHAT.EXEC | WHAT.EXIT | WHAT.COMM | WHAT.UID) >>> 0);
  assertEquals([...PROCESS_WIDE].sort(), ["coredump", "exec", "ptrace"]);
  assertEquals(WHAT_ALL, 0xe00003c7);
  const help = eventsHelp("  ").split("\n");
  assertEquals(help.length, EVENT_KINDS.length);
  assert(help.every((l, i) => l.trimStart().startsWith(EVENT_KINDS[i])), help.join("\n"));
});

Deno.test("clock: a time's text is kept and used again, never for another µs or offset", () => {
  const clock = new WallClock(1_764_000_000_000_000_000); // 2025-11-24T16:00:00Z
  const viaDate = (ns: number) => {
    const us = Math.floor((ns + clock.offsetNs) / 1000);
    return new Date(Math.floor(us / 1000)).toISOString().slice(0, 20) +
      String(us % 1_000_000).padStart(6, "0") + "Z";
  };
  const t = 5_123_456_000;
  assertEquals(clock.iso(t), "2025-11-24T16:00:05.123456Z");
  assertEquals(clock.iso(t + 500), clock.iso(t), "the same µs");
  // Same slot, other µs: seconds apart, and one slot's worth of µs apart.
  for (const ns of [t + ISO_MEMO_SLOTS * 1000, t + ISO_MEMO_SLOTS * 1e9, t, t - 1e9]) {
    assertEquals(clock.iso(ns), viaDate(ns));
  }
  clock.offsetNs += 2_000_000_000; // NTP stepped the clock
  assertEquals(clock.iso(t), "2025-11-24T16:00:07.123456Z");
});

Deno.test("loss: gaps counted per CPU, an unseen overrun reported uncounted once", () => {
  const l = new LossAccounting(false);
  assertEquals(l.observe(0, 10), 0);
  assertEquals(l.observe(0, 13), 2);
  assertEquals(l.reason, "seq_gap");
  assertEquals(l.endBatch(), false);
  assertEquals(l.overrun(), false);
  assertEquals(l.endBatch(), true, "no gap showed the overrun");
  assertEquals([l.lost, l.uncounted, l.needResync], [2, 1, true]);
  l.resynced();
  assertEquals(l.needResync, false);
  const filtered = new LossAccounting(true);
  assertEquals(filtered.observe(0, 1), 0);
  assertEquals(filtered.observe(0, 9), 0, "with the kernel filter gaps are not losses");
  assertEquals(filtered.overrun(), true, "an overrun is reported at once, uncounted");
});

Deno.test("exec reads: kept only when the batch proves them", () => {
  const procs = new Map([[5, { comm: "ls", ppid: 1, startTicks: 1, argv: ["ls"] }]]);
  let nowNs = 2e6;
  const reads = new ExecReads(FakeProc.reader(procs), () => nowNs);
  const batch = [ev.exec(5, 1)];
  reads.readNew(batch, 0);
  reads.begin(batch, true);
  assertEquals(reads.take(0, 5, 1e6).argv, ["ls"]);
  reads.end();
  // Cut at the batch cap, with the read later than anything drained: not proven.
  nowNs = 1e6 + READ_MARGIN_NS + 1;
  reads.readNew(batch, 0);
  reads.begin(batch, false);
  assertEquals(reads.take(0, 5, 1e6), NULL_INFO);
  reads.end();
  // Never read (not decoded through readNew): nothing vouches for it.
  reads.begin(batch, true);
  assertEquals(reads.take(0, 5, 1e6), NULL_INFO);
});

Deno.test("filter: kinds, users, comms and lineage", () => {
  const tree = new PidTree();
  tree.seed([
    { pid: 1, ppid: 0, comm: "init", euid: 0, startTicks: 1 },
    { pid: 10, ppid: 1, comm: "sshd", euid: 0, startTicks: 2 },
    { pid: 11, ppid: 10, comm: "sh", euid: 1000, startTicks: 3 },
  ]);
  const sh = tree.get(11)!;
  assertEquals(new RecordFilter(tree).wanted("exec", null), true);
  assertEquals(new RecordFilter(tree, new Set(["fork"])).wanted("exec", sh), false);
  assertEquals(
    new RecordFilter(tree, undefined, { uids: new Set([1000]) }).wanted("exec", sh),
    true,
  );
  assertEquals(
    new RecordFilter(tree, undefined, { comms: new Set(["bash"]) }).wanted("exec", sh),
    false,
  );
  const under = new RecordFilter(tree, undefined, { under: [byName("sshd")] });
  assertEquals(under.wanted("exec", sh), true);
  assertEquals(under.wanted("exec", tree.get(1)!), false);
  assertEquals(under.wanted("exec", null), false, "a selection never keeps unknown processes");
});

Deno.test("resync: the tree takes what /proc has and drops what it lacks", () => {
  const tree = new PidTree();
  tree.seed([{ pid: 1, ppid: 0, comm: "init", euid: 0, startTicks: 1 }, {
    pid: 5,
    ppid: 1,
    comm: "gone",
    euid: 0,
    startTicks: 2,
  }]);
  const procs = new Map([[1, { comm: "init", ppid: 0, startTicks: 1 }], [
    6,
    { comm: "new", ppid: 1, startTicks: 3 },
  ]]);
  assertEquals(resyncTree(tree, FakeProc.reader(procs), 1e9), { added: 1, removed: 1 });
  assertEquals(tree.get(5)?.alive, false);
  assertEquals(tree.get(6)?.comm, "new");
});

Deno.test("record: built from the event and the node alone", () => {
  const tree = new PidTree();
  tree.seed([{ pid: 1, ppid: 0, comm: "init", euid: 0, startTicks: 1 }]);
  const node = tree.fork(7, 1, 5e6);
  const ctx = {
    clock: new WallClock(0),
    users: new Users(() => "root:x:0:0::/:/bin/sh\n"),
    chains: tree,
  };
  assertEquals(processRecord(ev.fork(7, 1, 5), node, ctx), {
    event: "fork",
    time: "1970-01-01T00:00:00.005000Z",
    pid: 7,
    ppid: 1,
    comm: "init",
    user: "root",
    chain: "7|init|root;1|init|root",
  });
  const exit = processRecord(ev.exit(7, 9, 1, 6), node, { ...ctx, chains: null });
  assertEquals([exit.exit_code, exit.signal, exit.chain], [null, "SIGKILL", undefined]);
});

Deno.test("lineage: --under with a path matches the executable, not the name", async () => {
  const t = new PidTree();
  t.seed([{ pid: 1, ppid: 0, comm: "init", euid: 0, startTicks: 1 }]);
  const npm = t.exec(1, {
    comm: "npm",
    argv: ["npm"],
    exe: "/usr/bin/npm",
    uid: 0,
    ppid: 0,
    startTicks: 1,
    cwd: null,
    loginUid: null,
  });
  assertEquals(byName("/usr/bin/npm")(npm), true);
  assertEquals(byName("/usr/local/bin/npm")(npm), false);
  assertEquals(byName("npm")(npm), true);
  // A #! script runs as its interpreter: --under names the script by its path or name.
  const deploy = t.exec(1, {
    comm: "deploy.sh",
    argv: ["/bin/sh", "/opt/deploy.sh"],
    exe: "/usr/bin/dash",
    script: "/opt/deploy.sh",
    uid: 0,
    ppid: 0,
    startTicks: 1,
    cwd: null,
    loginUid: null,
  });
  assertEquals(byName("/opt/deploy.sh")(deploy), true);
  assertEquals(byName("deploy.sh")(deploy), true);
  assertEquals(byName("/usr/bin/dash")(deploy), true);
  assertEquals(byName("/opt/other.sh")(deploy), false);
  const { readLink } = await import("../ffi/procfs.ts");
  // An exe path that is not UTF-8 keeps its bytes (surrogate escapes), not U+FFFD.
  const link = await Deno.makeTempDir();
  const made = await new Deno.Command("sh", {
    args: ["-c", `ln -s "$(printf '/tmp/\\377x')" "${link}/l"`],
  }).output();
  assert(made.success);
  assertEquals(readLink(`${link}/l`), "/tmp/\udcffx");
  await Deno.remove(link, { recursive: true });
});

Deno.test("loss: a gap after an uncounted report is that loss, not a second one", () => {
  const l = new LossAccounting(false);
  l.observe(0, 1);
  l.overrun();
  assertEquals(l.endBatch(), true);
  assertEquals(l.uncounted, 1);
  l.resynced();
  assertEquals(l.observe(0, 5), 3);
  assertEquals([l.lost, l.uncounted], [3, 0], "run adds lost + uncounted: 3, not 3 + 1");
});

Deno.test("exec reads: a rename or a uid change before the read voids what it changed", () => {
  const procs = new Map([[5, {
    comm: "renamed",
    ppid: 1,
    startTicks: 1,
    argv: ["renamed"],
    euid: 6,
  }]]);
  const reads = new ExecReads(FakeProc.reader(procs), () => 3e6);
  const comm = (ms: number, pid = 5) => ({
    what: "comm" as const,
    seq: 0,
    ack: 0,
    cpu: 0,
    timestampNs: ms * 1e6,
    pid,
    tgid: 5,
    comm: new TextEncoder().encode("renamed"),
  });
  const uid = (ms: number) => ({
    what: "uid" as const,
    seq: 0,
    ack: 0,
    cpu: 0,
    timestampNs: ms * 1e6,
    pid: 5,
    tgid: 5,
    real: 6,
    effective: 6,
  });
  const check = (batch: Parameters<ExecReads["readNew"]>[0]) => {
    reads.readNew(batch, 0);
    reads.begin(batch, true);
    const info = reads.take(0, 5, 1e6);
    reads.end();
    return info;
  };
  const renamed = check([ev.exec(5, 1), comm(2)]);
  assertEquals([renamed.comm, renamed.argv, renamed.uid], [null, null, 6]);
  const dropped = check([ev.exec(5, 1), uid(2)]);
  assertEquals([dropped.comm, dropped.uid], ["renamed", null]);
  const thread = check([ev.exec(5, 1), comm(2, 77)]);
  assertEquals(thread.comm, "renamed", "another thread's rename does not change what was read");
});

Deno.test("exec reads: what another source vouches for is not read from /proc", () => {
  const procs = new Map([[5, { comm: "ls", ppid: 1, startTicks: 1, argv: ["ls"], exe: "/x" }]]);
  const reader = FakeProc.reader(procs);
  const asked: string[] = [];
  const spy = new Proxy(reader, {
    get: (t, k) => (...a: unknown[]) => {
      asked.push(String(k));
      return (t[k as keyof typeof t] as (...a: unknown[]) => unknown)(...a);
    },
  });
  const batch = [ev.exec(5, 1)];
  // Fresh, the program named elsewhere (fanotify): only the directory and the cgroup.
  const named = new ExecReads(spy, () => 2e6, () => true, true);
  named.readNew(batch, 0);
  named.begin(batch, true);
  const info = named.take(0, 5, 1e6);
  assertEquals([info.argv, info.comm, info.exe], [null, null, null]);
  assertEquals(asked.sort(), ["cgroup", "cwd"]);
  // Late (a paced storm), named elsewhere: no read at all.
  asked.length = 0;
  const late = new ExecReads(spy, () => 1e9, () => true, true);
  late.readNew(batch, 0);
  assertEquals(asked, []);
  // Nothing names the program: its link is read.
  const unnamed = new ExecReads(spy, () => 1e9, () => true, false);
  unnamed.readNew(batch, 0);
  assertEquals(asked, ["exe"]);
  // Reaped (no cgroup file): its directory is not asked for.
  asked.length = 0;
  const gone = new ExecReads(spy, () => 2e6, () => true, true);
  gone.readNew([ev.exec(6, 1)], 0);
  assertEquals(asked, ["cgroup"]);
  // In its creator's cgroups: no cgroup read, and the container is left to the creator's;
  // the directory only when no source says it.
  const yes = () => true, no = () => false;
  for (const [knowsCwd, reads] of [[yes, []], [no, ["cwd"]]] as const) {
    asked.length = 0;
    const placed = new ExecReads(spy, () => 2e6, yes, true, { inCreatorsCgroups: yes, knowsCwd });
    placed.readNew(batch, 0);
    placed.begin(batch, true);
    assertEquals(asked, [...reads]);
    assertEquals(placed.take(0, 5, 1e6).container, undefined);
  }
});

Deno.test("lineage: --under means one thing live and in a log: comm cut to 15, program, script, argv[0]", () => {
  const live = {
    comm: "very-long-name-".slice(0, 15),
    exe: "/usr/bin/python3.11",
    script: null,
    argv: ["/opt/tools/very-long-name-tool", "x"],
  };
  // The same facts as a tree node and as a watch line's fields.
  for (const p of [live, { ...live, argv: [...live.argv] }]) {
    assertEquals(nameMatches("very-long-name-tool", p), true); // argv[0]'s basename
    assertEquals(nameMatches("very-long-name-", p), true); // the comm
    assertEquals(nameMatches("very-long-name-xyz", p), true); // cut to 15 like the kernel
    assertEquals(nameMatches("python3.11", p), true);
    assertEquals(nameMatches("/usr/bin/python3.11", p), true);
    assertEquals(nameMatches("/opt/tools/very-long-name-tool", p), false); // a path is the program's
    assertEquals(nameMatches("python3", p), false);
  }
});
