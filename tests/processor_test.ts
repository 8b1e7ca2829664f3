import { assert, assertEquals, assertMatch } from "@std/assert";
import { ev, FakeProc, harness } from "./fixtures.ts";
import type { ProcReader } from "../lib/tree/proc_parse.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import type { FileChange } from "../lib/source/files/events.ts";
import { FileStage } from "../lib/source/files/stage.ts";
import { byName } from "../lib/tree/lineage.ts";

function world(): Map<number, FakeProc> {
  return new Map<number, FakeProc>([
    [1, { comm: "systemd", ppid: 0, startTicks: 1 }],
    [100, { comm: "agent", ppid: 1, startTicks: 50 }],
  ]);
}

Deno.test("processor: fork/exec/exit lines with ppid from the event and a chain", () => {
  const procs = world();
  const h = harness(procs);
  procs.set(101, {
    comm: "sh",
    ppid: 100,
    startTicks: 100,
    argv: ["sh", "-c", "exit 3"],
    exe: "/bin/dash",
  });
  h.run([ev.fork(101, 100, 1000), ev.exec(101, 1000.5), ev.exit(101, 3 << 8, 100, 1001)]);
  const [f, e, x] = h.records;
  assertEquals(f.event, "fork");
  assertEquals(f.ppid, 100);
  assertEquals(e.argv, ["sh", "-c", "exit 3"]);
  assertEquals(e.comm, "sh");
  assertEquals(e.chain, "101|sh|root;100|agent|root;1|systemd|root");
  assertEquals([x.exit_code, x.signal], [3, null]);
});

Deno.test("processor: an exec superseded in the same batch is not read (no stale name)", () => {
  const procs = world();
  const h = harness(procs);
  procs.set(101, { comm: "second", ppid: 100, startTicks: 100, argv: ["second"] });
  h.run([ev.fork(101, 100, 1000), ev.exec(101, 1000), ev.exec(101, 1000.1)]);
  assertEquals(h.records[1].comm, null);
  assertEquals(h.records[1].argv, null);
  assertEquals(h.records[2].comm, "second");
});

Deno.test("processor: an exec read as a zombie keeps its name and uid; nothing else is read", () => {
  const procs = world();
  const fake = FakeProc.reader(procs);
  const calls: string[] = [];
  const reader: ProcReader = {
    ...fake,
    cmdline: (pid) => (calls.push("cmdline"), fake.cmdline(pid)),
    exe: (pid) => (calls.push("exe"), fake.exe(pid)),
    cwd: (pid) => (calls.push("cwd"), fake.cwd(pid)),
    loginUid: (pid) => (calls.push("loginuid"), fake.loginUid(pid)),
    cgroup: (pid) => (calls.push("cgroup"), fake.cgroup(pid)),
  };
  const h = harness(procs, { reader });
  procs.set(101, {
    comm: "tiny",
    ppid: 100,
    startTicks: 100,
    argv: ["tiny"],
    exe: "/tiny",
    cwd: "/",
    loginUid: 1000,
    zombie: true,
  });
  h.run([ev.fork(101, 100, 1000), ev.exec(101, 1000.5)]);
  const e = h.records[1];
  assertEquals([e.comm, e.user, e.argv, e.exe, e.cwd, e.login_uid], [
    "tiny",
    "root",
    null,
    null,
    null,
    null,
  ]);
  assertEquals(calls, []);
});

/**
 * The exec line of a shell read `readMs` after its exec at 1 000 ms; `storm`: the loop
 * paces a storm.
 */
function shellReadAt(readMs: number, storm = false): WatchRecord {
  const procs = world();
  const h = harness(procs, { now: () => readMs * 1e6 });
  procs.set(101, {
    comm: "sh",
    ppid: 100,
    startTicks: 100,
    argv: ["sh", "-c", "cd /tmp; sleep 1"],
    exe: "/bin/dash",
    cwd: "/tmp",
    loginUid: 1000,
  });
  const batch = [ev.fork(101, 100, 1000), ev.exec(101, 1000)];
  const loop = h.processor.loopHandlers();
  loop.decoded!(batch, 0, storm);
  loop.batch(batch, true);
  return h.records[1];
}

Deno.test("processor: a late read keeps only what events guard: name, uid, executable", () => {
  // 6 ms after the exec in a storm's paced drain, 51 ms after it otherwise (a stalled host),
  // the shell may have done its `cd` already.
  for (const late of [shellReadAt(1006, true), shellReadAt(1051)]) {
    assertEquals([late.comm, late.user, late.exe], ["sh", "root", "/bin/dash"]);
    assertEquals([late.argv, late.cwd, late.login_uid], [null, null, null]);
  }
  // Within STORM_FRESH_READ_NS (5 ms) in a storm, FRESH_READ_NS (50 ms) outside one, all
  // of it is kept: outside a storm only the host delays a read.
  for (const fresh of [shellReadAt(1004, true), shellReadAt(1006), shellReadAt(1049)]) {
    assertEquals([fresh.argv?.length, fresh.cwd, fresh.login_uid], [3, "/tmp", 1000]);
  }
});

Deno.test("processor: a pid reused before the read is not read", () => {
  const procs = world();
  const h = harness(procs);
  procs.set(101, { comm: "intruder", ppid: 1, startTicks: 99999 });
  h.run([
    ev.fork(101, 100, 1000),
    ev.exec(101, 1000),
    ev.exit(101, 0, 100, 1001),
    ev.fork(101, 1, 1002),
  ]);
  assertEquals(h.records[1].comm, null);
  assertEquals(h.processor.counters.execsUnreadable, 1);
});

Deno.test("processor: a read not covered by the drained events is dropped", () => {
  const procs = world();
  const h = harness(procs, { now: () => 5e9 }); // read at 5 s, events end at 1 s
  procs.set(101, { comm: "sh", ppid: 100, startTicks: 100 });
  const batch = [ev.fork(101, 100, 1000), ev.exec(101, 1000)];
  const loop = h.processor.loopHandlers();
  loop.decoded!(batch, 0, false);
  loop.batch(batch, false); // cut at the batch cap: later events unseen
  assertEquals(h.records[1].comm, null);
  const ok = harness(procs, { now: () => 5e9 });
  const again = [ev.fork(102, 100, 1000), ev.exec(102, 1000)];
  procs.set(102, { comm: "sh", ppid: 100, startTicks: 100 });
  const okLoop = ok.processor.loopHandlers();
  okLoop.decoded!(again, 0, false);
  okLoop.batch(again, true); // the socket was emptied after the read
  assertEquals(ok.records[1].comm, "sh");
});

Deno.test("processor: threads are not processes unless asked", () => {
  const procs = world();
  const h = harness(procs);
  h.run([ev.thread(150, 100, 1000), ev.fork(151, 100, 1000, 150)]);
  assertEquals(h.records.length, 1);
  assertEquals(h.records[0].pid, 151);
  assertEquals(h.records[0].ppid, 100, "a fork from a thread belongs to its process");
  const t = harness(world(), { threads: true });
  t.run([ev.thread(150, 100, 1000)]);
  assertEquals([t.records[0].pid, t.records[0].tid], [100, 150]);
});

Deno.test("processor: a seq gap is a lost line with the exact count, then a resync", () => {
  const procs = world();
  const h = harness(procs);
  h.run([ev.fork(101, 100, 1000)]);
  ev.skip(5);
  procs.set(102, { comm: "missed", ppid: 100, startTicks: 120 });
  h.run([ev.fork(103, 100, 1200)]);
  const kinds = h.records.map((r) => r.event);
  assertEquals(kinds, ["fork", "lost", "fork", "resync"]);
  assertEquals(h.records[1].count, 5);
  assertEquals(h.records[1].reason, "seq_gap");
  assertEquals(h.records[3].added, 1);
  assertEquals(h.tree.get(102)!.comm, "missed");
  assertEquals(h.processor.counters.lost, 5);
});

Deno.test("processor: --under follows lineage, including forks made before the name matched", () => {
  const procs = world();
  const h = harness(procs, { filter: { under: [byName("openclaw")] }, chains: false });
  procs.set(101, { comm: "openclaw", ppid: 100, startTicks: 100 });
  h.run([
    ev.fork(101, 100, 1000),
    ev.fork(102, 101, 1000), // forked while 101 was still "agent"
    ev.fork(103, 1, 1000), // unrelated
  ]);
  assertEquals(h.records.length, 0);
  h.run([ev.exec(101, 1001), ev.exit(102, 0, 101, 1002), ev.exit(103, 0, 1, 1002)]);
  assertEquals(h.records.map((r) => [r.event, r.pid]), [["exec", 101], ["exit", 102]]);
});

Deno.test("processor: --events keeps lost lines", () => {
  const h = harness(world(), { events: new Set(["exec"]) });
  h.run([ev.fork(101, 100, 1000)]);
  ev.skip(1);
  h.run([ev.fork(102, 100, 1000)]);
  assert(h.records.every((r) => r.event === "lost" || r.event === "resync"));
  assertEquals(h.records.length, 2);
});

Deno.test("processor: malformed and unknown messages are counted lines", () => {
  const h = harness(world());
  h.run([{ what: "error", reason: "bad_cn_len", offset: 0 }, {
    what: "unknown",
    code: 8,
    seq: 0,
    cpu: 9,
    timestampNs: 1,
  }]);
  assertEquals(h.records.map((r) => r.event), ["malformed", "unknown"]);
  assertEquals(h.processor.counters.malformed, 1);
});

Deno.test("processor: a line of proctree's own before any event is dated now, not at boot", () => {
  const h = harness(world(), { now: () => 7e9 });
  h.run([{ what: "error", reason: "bad_cn_len", offset: 0 }]);
  // WallClock(0): CLOCK_MONOTONIC's zero is the epoch; 7 s after it, not the zero itself.
  assertEquals(h.records.map((r) => r.time), ["1970-01-01T00:00:07.000000Z"]);
});

Deno.test("processor: --user and --comm filters", () => {
  const procs = world();
  procs.set(200, { comm: "alice-sh", ppid: 1, startTicks: 5, euid: 1000 });
  const byUser = harness(procs, { filter: { uids: new Set([1000]) }, chains: false });
  byUser.run([ev.fork(201, 200, 1000), ev.fork(202, 100, 1000)]);
  assertEquals(byUser.records.map((r) => r.pid), [201], "a fork inherits its creator's uid");
  const byComm = harness(procs, { filter: { comms: new Set(["agent"]) }, chains: false });
  byComm.run([ev.fork(203, 100, 1000), ev.fork(204, 200, 1000)]);
  assertEquals(byComm.records.map((r) => r.pid), [203]);
});

Deno.test("processor: a child whose creator exited never names it as ppid", () => {
  const procs = world();
  const h = harness(procs);
  // 101 forks 102 and exits; the kernel moves 102 to init, which no event says.
  procs.set(102, { comm: "daemon", ppid: 1, startTicks: 100, argv: ["daemon"] });
  h.run([
    ev.fork(101, 100, 1000),
    ev.fork(102, 101, 1000),
    ev.exit(101, 0, 100, 1000.2),
    ev.exec(102, 1000.3),
  ]);
  const exec = h.records.find((r) => r.event === "exec")!;
  assertEquals(exec.ppid, 1, "the current parent, read with the exec");
  assertEquals(exec.chain, "102|daemon|root;101|agent|root;100|agent|root;1|systemd|root");
  // Without a usable exec read (superseded by a second exec) the parent is read from
  // /proc before the line is printed.
  const p2 = world();
  const g = harness(p2);
  p2.set(104, { comm: "x", ppid: 1, startTicks: 100 });
  g.run([
    ev.fork(103, 100, 1000),
    ev.fork(104, 103, 1000),
    ev.exit(103, 0, 100, 1000.1),
    ev.exec(104, 1000.2),
    ev.exec(104, 1000.3),
  ]);
  const first = g.records.filter((r) => r.event === "exec")[0];
  assertEquals([first.argv, first.ppid], [null, 1]);
});

Deno.test("processor: execs not printed are not counted unreadable", () => {
  const h = harness(world(), { events: new Set(["exit"]) });
  h.run([ev.fork(101, 100, 1000), ev.exec(101, 1000.1)]);
  assertEquals(h.processor.counters.execsUnreadable, 0);
  const all = harness(world());
  all.run([ev.fork(101, 100, 1000), ev.exec(101, 1000.1)]);
  assertEquals(all.processor.counters.execsUnreadable, 1);
});

Deno.test("processor: a process ends with its last thread, not its main one", () => {
  const h = harness(world());
  h.run([
    ev.fork(101, 100, 1000),
    ev.thread(150, 101, 1000.1),
    ev.exit(101, 0, 100, 1000.2), // pthread_exit in main: the process runs on
    ev.thread(151, 101, 1000.3), // a thread made after the main one ended
    { ...ev.exit(150, 5 << 8, 100, 1000.4), tgid: 101 },
  ]);
  assertEquals(h.records.map((r) => r.event), ["fork"], "no exit while threads run");
  assertEquals(h.tree.get(101)?.alive, true);
  h.run([{ ...ev.exit(151, 5 << 8, 100, 1000.5), tgid: 101 }]);
  const exit = h.records.at(-1)!;
  assertEquals([exit.event, exit.pid, exit.tid, exit.exit_code], ["exit", 101, undefined, 5]);
  assertEquals(h.tree.get(101)?.alive, false);
});

Deno.test("processor: execve from a non-main thread is no exit; the pin holds", () => {
  const procs = world();
  const h = harness(procs, { threads: true });
  h.run([ev.fork(101, 100, 1000), ev.thread(150, 101, 1000.1), ev.thread(151, 101, 1000.1)]);
  const node = h.tree.get(101)!;
  procs.set(101, { comm: "next", ppid: 100, startTicks: 100, argv: ["next"] });
  // Thread 151 execs: the kernel ends 150 and the main thread, and 151 becomes 101.
  h.run([
    { ...ev.exit(150, 9, 100, 1000.2), tgid: 101 },
    ev.exit(101, 9, 100, 1000.3),
    ev.exec(101, 1000.4),
  ]);
  assertEquals(h.tree.get(101), node, "the same process, not a new one");
  assertEquals(node.alive, true);
  const exits = h.records.filter((r) => r.event === "exit");
  assert(exits.every((r) => r.tid !== undefined), "only thread exits were printed");
  assertEquals(h.records.at(-1)!.argv, ["next"]);
  // After the exec it has one thread: its next exit ends it.
  h.run([ev.exit(101, 0, 100, 1000.5)]);
  assertEquals(node.alive, false);
});

Deno.test("processor: resyncs are at least a second apart; a due one runs after a drain", () => {
  let nowNs = 1e12;
  const h = harness(world(), { now: () => nowNs });
  const handlers = h.processor.loopHandlers();
  h.run([ev.fork(101, 100, 1000)]);
  ev.skip(5);
  h.run([ev.fork(103, 100, 1000)]);
  ev.skip(5);
  h.run([ev.fork(102, 100, 1000.1)]);
  assertEquals(h.records.filter((r) => r.event === "resync").length, 1, "the second waits");
  nowNs += 1.5e9;
  handlers.drained!();
  assertEquals(h.records.filter((r) => r.event === "resync").length, 2);
  handlers.drained!();
  assertEquals(h.records.filter((r) => r.event === "resync").length, 2, "nothing new lost");
});

Deno.test("processor: a huge argv is printed whole but not held", () => {
  const procs = world();
  const h = harness(procs);
  const big = ["prog", "x".repeat(100_000)];
  procs.set(101, { comm: "prog", ppid: 100, startTicks: 100, argv: big });
  h.run([ev.fork(101, 100, 1000), ev.exec(101, 1000.1)]);
  assertEquals(h.records[1].argv, big);
  assertEquals(h.tree.get(101)?.argv, null);
});

Deno.test("processor: the exit of a process whose fork was lost is still printed", () => {
  const h = harness(world());
  h.run([ev.exit(4242, 0, 1, 1000)]);
  assertEquals(h.records.map((r) => [r.event, r.pid, r.tid]), [["exit", 4242, undefined]]);
});

/** A processor with a file-change stage; `read` hands it changes as the source would. */
function fileHarness(procs: Map<number, FakeProc>) {
  let queued: FileChange[] = [];
  const h = harness(procs, {
    lineStages: [
      new FileStage({
        take: () => queued.splice(0),
        unnamed: () => 0,
        holding: () => false,
        walksCut: 0,
      }),
    ],
  });
  return { h, loop: h.processor.loopHandlers(), read: (c: FileChange[]) => (queued = c) };
}

Deno.test("processor: a file change whose process is not in the tree yet waits one drain for its fork", () => {
  const procs = world();
  const { h, loop, read } = fileHarness(procs);
  // Drain 1: rm's change was read, its fork (made after the connector was emptied) was not.
  const ms = 1e6;
  read([{
    action: "delete",
    path: "/w/a",
    dir: false,
    pid: 101,
    afterNs: 900 * ms,
    beforeNs: 1050 * ms,
  }]);
  loop.batch([], true);
  loop.drained!();
  assertEquals(h.records.length, 0);
  assertEquals(loop.dueInMs!(), 0, "the loop turns again at once");
  // Drain 2 brings the fork: the change is printed after it, with its process.
  procs.set(101, { comm: "rm", ppid: 100, startTicks: 100 });
  loop.batch([ev.fork(101, 100, 1000)], true);
  loop.drained!();
  assertEquals(h.records.map((r) => [r.event, r.pid, r.comm]), [
    ["fork", 101, "agent"],
    ["file", 101, "agent"],
  ]);
  assertMatch(String(h.records[1].chain), /^101\|agent\|root;100\|agent/);
  // A change whose process never shows up is printed one drain later without one.
  read([{
    action: "create",
    path: "/w/b",
    dir: false,
    pid: 999,
    afterNs: 2000 * ms,
    beforeNs: 2100 * ms,
  }]);
  loop.batch([], true);
  loop.drained!();
  loop.batch([], true);
  loop.drained!();
  assertEquals(h.records.at(-1)?.pid, 999);
  assertEquals(h.records.at(-1)?.comm, null);
  assertEquals(loop.dueInMs!(), null);
});

Deno.test("processor: a file change names the process that held its pid then, or none", () => {
  const procs = world();
  const { h, loop, read } = fileHarness(procs);
  const ms = 1e6;
  const change = (path: string, afterMs: number, beforeMs: number): FileChange => ({
    action: "create",
    path,
    dir: false,
    pid: 101,
    afterNs: afterMs * ms,
    beforeNs: beforeMs * ms,
  });
  // Pid 101: A from 1000 to 1001 ms, then B from 1002 ms; all applied before the changes.
  loop.batch([ev.fork(101, 100, 1000), ev.exit(101, 0, 100, 1001), ev.fork(101, 1, 1002)], true);
  read([
    change("/w/a", 999, 1000.5), // while A held it (B came after the read)
    change("/w/either", 999, 1003), // A or B: the pid changed hands in the window
    change("/w/b", 1001.5, 1003), // after A had ended: B
  ]);
  loop.batch([], true);
  loop.drained!();
  loop.drained!(); // the last two were read after the newest event: one drain more
  const files = h.records.filter((r) => r.event === "file");
  assertEquals(files.map((r) => [r.path, r.id === undefined ? null : r.chain?.split(";")[1]]), [
    ["/w/a", "100|agent|root"],
    ["/w/either", null],
    ["/w/b", "1|systemd|root"],
  ]);
  assertEquals(files[1].comm, null);
});

Deno.test("processor: file changes keep their order when one waits for its process's events", () => {
  const procs = world();
  const { h, loop, read } = fileHarness(procs);
  const ms = 1e6;
  const change = (path: string, pid: number, beforeMs: number): FileChange => ({
    action: "create",
    path,
    dir: false,
    pid,
    afterNs: 0,
    beforeNs: beforeMs * ms,
  });
  loop.batch([ev.fork(101, 100, 1000)], true);
  read([change("/w/1", 101, 2000)]); // read after the newest event applied: waits
  loop.batch([], true);
  read([change("/w/2", 101, 500)]); // due by its time, but after /w/1
  loop.batch([], true);
  assertEquals(h.records.filter((r) => r.event === "file").length, 0);
  loop.drained!();
  loop.batch([ev.fork(102, 100, 2500)], true);
  assertEquals(h.records.filter((r) => r.event === "file").map((r) => r.path), ["/w/1", "/w/2"]);
});
