import { assertEquals } from "@std/assert";
import { type ExecHeader, parseExecHeader } from "../lib/source/exec_names/header.ts";
import { ExecNames } from "../lib/source/exec_names/names.ts";
import { ExecNamesStage } from "../lib/source/exec_names/stage.ts";
import {
  decodeFanEvents,
  FAN_EVENT,
  FAN_METADATA,
  type FanEvent,
} from "../lib/source/fanotify_wire.ts";
import { parseMountinfo } from "../lib/source/mountinfo.ts";
import { ev, type FakeProc, harness } from "./fixtures.ts";

const enc = new TextEncoder();
const noMore = () => null;

/** A minimal 64-bit little-endian ELF whose only program header is `PT_INTERP` → `interp`. */
function elf64(interp: string | null, phoff = 64): Uint8Array {
  const path = interp === null ? new Uint8Array(0) : enc.encode(interp + "\0");
  const b = new Uint8Array(phoff + 56 + 16 + path.length);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setBigUint64(0x20, BigInt(phoff), true);
  v.setUint16(0x36, 56, true);
  v.setUint16(0x38, 1, true);
  v.setUint32(phoff, interp === null ? 1 : 3, true); // PT_LOAD or PT_INTERP
  v.setBigUint64(phoff + 8, BigInt(phoff + 56 + 16), true);
  v.setBigUint64(phoff + 32, BigInt(path.length), true);
  b.set(path, phoff + 56 + 16);
  return b;
}

Deno.test("exec header: #! lines as binfmt_script reads them", () => {
  const h = (s: string) => parseExecHeader(enc.encode(s), noMore);
  assertEquals(h("#!/bin/sh\necho"), { kind: "script", interp: "/bin/sh" });
  assertEquals(h("#! \t/usr/bin/env python3\n"), { kind: "script", interp: "/usr/bin/env" });
  assertEquals(h("#!\n"), { kind: "other" }); // ENOEXEC
  assertEquals(h("echo hi\n"), { kind: "other" });
  assertEquals(h(""), { kind: "other" });
});

Deno.test("exec header: ELF PT_INTERP, static, and tables beyond the first read", () => {
  assertEquals(parseExecHeader(elf64("/lib64/ld.so"), noMore), {
    kind: "elf",
    interp: "/lib64/ld.so",
  });
  assertEquals(parseExecHeader(elf64(null), noMore), { kind: "elf", interp: null });
  // Program headers past what was read: fetched through readAt.
  const far = elf64("/lib/ld.so", 5000);
  assertEquals(
    parseExecHeader(far.subarray(0, 4096), (off, len) => far.subarray(off, off + len)),
    { kind: "elf", interp: "/lib/ld.so" },
  );
  assertEquals(parseExecHeader(far.subarray(0, 4096), noMore), { kind: "other" });
});

Deno.test("exec header: the system's /bin/true names its loader", async () => {
  const bytes = await Deno.readFile("/bin/true");
  const h = parseExecHeader(bytes.subarray(0, 4096), (o, l) => bytes.subarray(o, o + l));
  assertEquals(h.kind, "elf");
  assertEquals((h as { interp: string }).interp.includes("ld-linux"), true);
});

const LD = "/lib64/ld-linux-x86-64.so.2";
const LD_REAL = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
const links: Record<string, string> = { [LD]: LD_REAL, "/bin/sh": "/usr/bin/dash" };
const DYN: ExecHeader = { kind: "elf", interp: LD };
const STATIC: ExecHeader = { kind: "elf", interp: null };

function names(binfmtMisc = false): ExecNames {
  return new ExecNames((p) => links[p] ?? p, binfmtMisc);
}

/** Feeds opens as the source does: the header only when asked for. */
function open(n: ExecNames, pid: number, path: string, header: ExecHeader | null): void {
  n.open(pid, path, n.needsHeader(pid, path) ? header : null, 0);
}

Deno.test("exec names: static, dynamic (loader not the exe) and #! script", () => {
  const n = names();
  open(n, 10, "/opt/tinybin", STATIC);
  open(n, 11, "/usr/bin/true", DYN);
  assertEquals(n.needsHeader(11, LD_REAL), false); // the loader it waits for
  open(n, 11, LD_REAL, null);
  open(n, 12, "/tmp/s.sh", { kind: "script", interp: "/bin/sh" });
  open(n, 12, "/usr/bin/dash", DYN);
  open(n, 12, LD_REAL, null);
  const got = n.resolve([ev.exec(10, 1), ev.exec(11, 2), ev.exec(12, 3)], 0);
  assertEquals(got.get(0), { exe: "/opt/tinybin", script: null });
  assertEquals(got.get(1), { exe: "/usr/bin/true", script: null });
  assertEquals(got.get(2), { exe: "/usr/bin/dash", script: "/tmp/s.sh" });
  assertEquals(n.pending, 0);
});

Deno.test("exec names: a failed exec (ENOEXEC, missing interpreter) names nothing", () => {
  const n = names();
  open(n, 20, "/tmp/garbage", { kind: "other" }); // ENOEXEC
  open(n, 20, "/tmp/broken.sh", { kind: "script", interp: "/nonexistent" }); // ENOENT
  open(n, 20, "/usr/bin/true", DYN);
  open(n, 20, LD_REAL, null);
  const got = n.resolve([ev.exec(20, 1)], 0);
  assertEquals(got.get(0), { exe: "/usr/bin/true", script: null });
  assertEquals(n.stats.failed, 2);
});

Deno.test("exec names: several execs of one pid, each its own image", () => {
  const n = names();
  open(n, 30, "/usr/bin/env", DYN);
  open(n, 30, LD_REAL, null);
  open(n, 30, "/opt/tinybin", STATIC);
  const got = n.resolve([ev.exec(30, 1), ev.exec(30, 2)], 0);
  assertEquals([got.get(0)?.exe, got.get(1)?.exe], ["/usr/bin/env", "/opt/tinybin"]);
});

Deno.test("exec names: a count that does not match names nothing", () => {
  // A static file opened by an exec that then failed (E2BIG), then one that ran.
  const a = names();
  open(a, 40, "/usr/bin/decoy", STATIC);
  open(a, 40, "/opt/real", STATIC);
  assertEquals(a.resolve([ev.exec(40, 1)], 0).size, 0);
  assertEquals(a.pending, 0, "nothing left to pair with a later exec");
  // An exec fanotify cannot see (memfd) after a failed one: nothing is lent to it.
  const b = names();
  open(b, 41, "/usr/bin/decoy", STATIC);
  assertEquals(b.resolve([ev.exec(41, 1), ev.exec(41, 2)], 0).size, 0);
  // binfmt_misc handlers exist: a file of no known kind might have run.
  const c = names(true);
  open(c, 42, "/tmp/app.jar", { kind: "other" });
  open(c, 42, "/usr/bin/java", STATIC);
  assertEquals(c.resolve([ev.exec(42, 1)], 0).size, 0);
});

Deno.test("exec names: a later exec still opening waits for its event", () => {
  const n = names();
  open(n, 50, "/opt/tinybin", STATIC);
  open(n, 50, "/usr/bin/true", DYN); // its loader not opened yet, its event not read
  assertEquals(n.resolve([ev.exec(50, 1)], 0).get(0)?.exe, "/opt/tinybin");
  open(n, 50, LD_REAL, null);
  assertEquals(n.resolve([ev.exec(50, 2)], 0).get(0)?.exe, "/usr/bin/true");
});

Deno.test("exec names: overflow and exits clear what can no longer be paired", () => {
  const n = names();
  open(n, 60, "/opt/tinybin", STATIC);
  n.overflow(0);
  open(n, 61, "/opt/tinybin", STATIC);
  assertEquals(n.resolve([ev.exec(61, 1)], 1000).size, 0, "opens before it may be missing");
  open(n, 64, "/opt/tinybin", STATIC);
  assertEquals(n.resolve([ev.exec(64, 1)], 1e6).size, 1, "named again later");
  open(n, 62, "/usr/bin/decoy", STATIC); // a failed exec, then the process ended
  n.resolve([ev.exit(62, 0, 1, 2)], 0);
  assertEquals(n.pending, 0);
  open(n, 63, "/opt/x", STATIC);
  n.sweep(1e9);
  assertEquals(n.pending, 0, "unclaimed opens are swept");
});

Deno.test("fanotify wire: records decoded, a bad version stops", () => {
  const b = new Uint8Array(FAN_METADATA.size * 3);
  const v = new DataView(b.buffer);
  const put = (i: number, mask: number, fd: number, pid: number, vers = 3) => {
    const at = i * FAN_METADATA.size;
    v.setUint32(at, FAN_METADATA.size, true);
    v.setUint8(at + 4, vers);
    v.setUint16(at + 6, FAN_METADATA.size, true);
    v.setBigUint64(at + 8, BigInt(mask), true);
    v.setInt32(at + 16, fd, true);
    v.setInt32(at + 20, pid, true);
  };
  put(0, FAN_EVENT.OPEN_EXEC, 7, 1234);
  put(1, FAN_EVENT.Q_OVERFLOW, -1, 0);
  put(2, FAN_EVENT.OPEN_EXEC, 8, 99, 2);
  const out: FanEvent[] = [];
  assertEquals(decodeFanEvents(v, b.length, out), 2 * FAN_METADATA.size);
  assertEquals(out, [
    { mask: FAN_EVENT.OPEN_EXEC, fd: 7, pid: 1234 },
    { mask: FAN_EVENT.Q_OVERFLOW, fd: -1, pid: 0 },
  ]);
});

Deno.test("mountinfo: fields, escapes, optional fields", () => {
  const text = "36 35 98:0 / / rw,noatime shared:1 - ext4 /dev/root rw\n" +
    "40 36 0:45 / /mnt/with\\040space rw master:2 shared:3 - tmpfs tmpfs rw\n" +
    "41 36 0:46 / /proc rw - proc proc rw\n" +
    "garbage\n";
  assertEquals(parseMountinfo(text), [
    { mountId: 36, device: "98:0", mountPoint: "/", fsType: "ext4" },
    { mountId: 40, device: "0:45", mountPoint: "/mnt/with space", fsType: "tmpfs" },
    { mountId: 41, device: "0:46", mountPoint: "/proc", fsType: "proc" },
  ]);
});

Deno.test("processor: fanotify names what /proc could not read; a disagreement is null", () => {
  const procs = new Map<number, FakeProc>([[1, { comm: "init", ppid: 0, startTicks: 1 }]]);
  const n = names();
  const h = harness(procs, { stages: [new ExecNamesStage(n)] });
  // 70 is gone before /proc could be read; fanotify saw its open.
  open(n, 70, "/opt/tinybin", STATIC);
  // 71 is readable and agrees; 72 is readable and does not (one of the two is wrong).
  procs.set(71, { comm: "true", ppid: 1, startTicks: 5, argv: ["true"], exe: "/usr/bin/true" });
  open(n, 71, "/usr/bin/true", DYN);
  open(n, 71, LD_REAL, null);
  procs.set(72, { comm: "x", ppid: 1, startTicks: 6, argv: ["x"], exe: "/memfd:x (deleted)" });
  open(n, 72, "/usr/bin/decoy", STATIC);
  h.run([
    ev.fork(70, 1, 1000),
    ev.exec(70, 1000.1),
    ev.fork(71, 1, 1001),
    ev.exec(71, 1001.1),
    ev.fork(72, 1, 1002),
    ev.exec(72, 1002.1),
  ]);
  const execs = h.records.filter((r) => r.event === "exec");
  assertEquals(execs.map((r) => [r.exe, r.argv]), [
    ["/opt/tinybin", null],
    ["/usr/bin/true", ["true"]],
    [null, null],
  ]);
  assertEquals(h.processor.counters.stages?.execs_named_by_fanotify, 1);
  assertEquals(h.processor.counters.stages?.exec_name_conflicts, 1);
});

Deno.test("processor: a fanotify overflow is a lost line with its own reason, before the next batch", () => {
  const stage = new ExecNamesStage(names());
  const h = harness(new Map([[1, { comm: "init", ppid: 0, startTicks: 1 }]]), { stages: [stage] });
  h.run([ev.fork(80, 1, 1000)]);
  stage.overflowed();
  h.run([ev.fork(81, 1, 1001)]);
  const [lost, fork] = h.records.slice(-2);
  assertEquals([lost.event, lost.count, lost.reason], ["lost", null, "fanotify_overflow"]);
  assertEquals([fork.event, fork.pid], ["fork", 81]);
});
