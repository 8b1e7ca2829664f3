// The BPF machinery without the kernel: the instruction encoder against known encodings, the
// BTF reader against a hand-made blob (and the running kernel's, when there is one), the
// record decoder and the pairing of records with exec events.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { Alu, Asm, countOne, Helper, insn, Jmp } from "../lib/bpf/insn.ts";
import { Btf, BtfError, BtfKind } from "../lib/bpf/btf.ts";
import { startTicksAt, u64 } from "../lib/bpf/fields.ts";
import { NS_PER_TICK } from "../lib/tree/proc_parse.ts";
import {
  ARGV_CAP_BYTES,
  cgroupMoveProgram,
  execProgram,
  MEMBERS,
  type Offsets,
  offsetsFrom,
  PathWalk,
  Rec,
  WALK_MEMBERS,
  type WalkOffsets,
} from "../lib/source/bpf_exec/program.ts";
import { decodeBpfExec } from "../lib/source/bpf_exec/record.ts";
import {
  argvByteLength,
  BpfExecStage,
  type BpfRecords,
  MAX_PENDING_BYTES,
  MAX_PENDING_RECORDS,
  STALE_RECORD_NS,
} from "../lib/source/bpf_exec/stage.ts";
import { NULL_INFO } from "../lib/pipeline/exec_reads.ts";
import { parseCpuList } from "../ffi/bpf.ts";
import { readFileBytes } from "../ffi/procfs.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

Deno.test("insn: encodings as llvm-objdump prints them", () => {
  const cases: [Asm, string][] = [
    [new Asm().mov(6, 1), "bf 16 00 00 00 00 00 00"],
    [new Asm().movImm(0, 0), "b7 00 00 00 00 00 00 00"],
    [new Asm().aluImm(Alu.RSH, 0, 32), "77 00 00 00 20 00 00 00"],
    [new Asm().aluImm(Alu.ADD, 2, -4), "07 02 00 00 fc ff ff ff"],
    [new Asm().alu(Alu.SUB, 8, 3), "1f 38 00 00 00 00 00 00"],
    [new Asm().store(4, 10, -4, 0), "63 0a fc ff 00 00 00 00"],
    [new Asm().store(8, 7, 0, 0), "7b 07 00 00 00 00 00 00"],
    [new Asm().storeImm(4, 10, -4, 0), "62 0a fc ff 00 00 00 00"],
    [new Asm().load(8, 9, 6, 16), "79 69 10 00 00 00 00 00"],
    [new Asm().call(Helper.get_current_pid_tgid), "85 00 00 00 0e 00 00 00"],
    [new Asm().exit(), "95 00 00 00 00 00 00 00"],
    [new Asm().atomicAdd64(0, 0, 1), "db 10 00 00 00 00 00 00"],
    [
      new Asm().loadMap(1, 5),
      "18 11 00 00 05 00 00 00 00 00 00 00 00 00 00 00",
    ],
  ];
  for (const [a, want] of cases) assertEquals(hex(a.bytes()), want);
  assertEquals(hex(insn(0xbf, 1, 6, 0, 0)), "bf 61 00 00 00 00 00 00");
});

Deno.test("insn: countOne adds one to key 0 of a counter map, skipping to the label without it", () => {
  const a = new Asm();
  countOne(a, 5, -4, "out");
  a.label("out").exit();
  assertEquals(
    hex(a.bytes()),
    [
      "62 0a fc ff 00 00 00 00", // *(u32 *)(r10 - 4) = 0
      "18 11 00 00 05 00 00 00 00 00 00 00 00 00 00 00", // r1 = map 5
      "bf a2 00 00 00 00 00 00", // r2 = r10
      "07 02 00 00 fc ff ff ff", // r2 += -4
      "85 00 00 00 01 00 00 00", // map_lookup_elem
      "15 00 02 00 00 00 00 00", // if r0 == 0 goto out
      "b7 01 00 00 01 00 00 00", // r1 = 1
      "db 10 00 00 00 00 00 00", // lock *(u64 *)(r0 + 0) += r1
      "95 00 00 00 00 00 00 00", // out: exit
    ].join(" "),
  );
});

Deno.test("insn: jumps resolve to labels, forward and back; unknown labels throw", () => {
  const a = new Asm().label("top").jumpImm(Jmp.JEQ, 0, 0, "end").movImm(0, 1).jump("top")
    .label("end").exit();
  const b = a.bytes();
  assertEquals(hex(b.subarray(0, 8)), "15 00 02 00 00 00 00 00"); // +2: over mov and ja
  assertEquals(hex(b.subarray(16, 24)), "05 00 fd ff 00 00 00 00"); // -3: back to the top
  assertThrows(() => new Asm().jump("nowhere").bytes(), Error, "nowhere");
  assertThrows(() => new Asm().label("x").label("x"), Error, "twice");
});

/** A BTF blob from types given as words, with a string table. */
function btfBlob(types: number[], strings: string): Uint8Array {
  const str = new TextEncoder().encode(strings);
  const hdr = 24;
  const out = new Uint8Array(hdr + types.length * 4 + str.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, 0xeb9f, true);
  v.setUint8(2, 1);
  v.setUint32(4, hdr, true);
  v.setUint32(8, 0, true);
  v.setUint32(12, types.length * 4, true);
  v.setUint32(16, types.length * 4, true);
  v.setUint32(20, str.length, true);
  types.forEach((w, i) => v.setUint32(hdr + 4 * i, w >>> 0, true));
  out.set(str, hdr + types.length * 4);
  return out;
}

const info = (kind: number, vlen: number, kflag = 0) => (kflag << 31) | (kind << 24) | vlen;
// Strings: 0 "", 1 "int", 5 "inner", 11 "a", 13 "b", 15 "outer", 21 "x", 23 "flags"
const STRS = "\0int\0inner\0a\0b\0outer\0x\0flags\0";
const FIXTURE = btfBlob([
  // 1: int, 4 bytes
  1,
  info(BtfKind.INT, 0),
  4,
  32,
  // 2: pointer to 1
  0,
  info(BtfKind.PTR, 0),
  1,
  // 3: struct inner { int a; int *b @ bit 64 }, 16 bytes
  5,
  info(BtfKind.STRUCT, 2),
  16,
  11,
  1,
  0,
  13,
  2,
  64,
  // 4: struct outer { int x; <anonymous inner> @ bit 128; bit field flags:3 @ bit 32 }
  15,
  info(BtfKind.STRUCT, 3, 1),
  32,
  21,
  1,
  0,
  0,
  3,
  128,
  23,
  1,
  (3 << 24) | 32,
], STRS);

Deno.test("btf: members found by name, inside anonymous members, with sizes", () => {
  const b = new Btf(FIXTURE);
  assertEquals(b.count, 4);
  assertEquals(b.structId("outer"), 4);
  assertEquals(b.member("inner", "b"), { offsetBytes: 8, sizeBytes: 8 });
  assertEquals(b.member("outer", "x"), { offsetBytes: 0, sizeBytes: 4 });
  assertEquals(b.member("outer", "b"), { offsetBytes: 24, sizeBytes: 8 }, "16 + 8");
  assertEquals(b.member("outer", "flags"), null, "a bit field has no byte place");
  assertEquals(b.member("outer", "nope"), null);
  assertEquals(b.member("nostruct", "x"), null);
});

Deno.test("btf: malformed blobs are refused with a reason, never read past their end", () => {
  assertThrows(() => new Btf(new Uint8Array(10)), BtfError, "magic");
  const cut = FIXTURE.slice();
  new DataView(cut.buffer).setUint32(12, 10_000, true); // type section past the end
  assertThrows(() => new Btf(cut), BtfError, "past the end");
  const odd = btfBlob([1, info(31, 0), 4], STRS);
  assertThrows(() => new Btf(odd), BtfError, "unknown BTF kind 31");
  const short = btfBlob([5, info(BtfKind.STRUCT, 2), 16, 11], STRS); // members cut off
  assertThrows(() => new Btf(short), BtfError, "past its section");
});

// Deno reads /sys only with --allow-all: through libc, as proctree does.
const vmlinux = readFileBytes("/sys/kernel/btf/vmlinux");

Deno.test({
  name: "btf: the running kernel's types give every offset the program reads",
  ignore: vmlinux === null,
  fn() {
    const off = offsetsFrom(new Btf(vmlinux!));
    assert(typeof off !== "string", String(off));
    for (const k of Object.keys(MEMBERS)) assert(off[k as keyof typeof MEMBERS] >= 0, k);
    // mm_struct's argument area: two adjacent longs, in an anonymous struct on 6.x.
    assertEquals(off.mmArgEnd - off.mmArgStart, 8);
    assert(off.walk, "the path walk's members");
    for (const k of Object.keys(WALK_MEMBERS)) assert(off.walk[k as keyof WalkOffsets] >= 0, k);
  },
});

Deno.test("btf: a kernel without a member the program needs is named", () => {
  assertEquals(offsetsFrom(new Btf(FIXTURE)), "no task_struct.mm in the kernel's BTF");
});

Deno.test("btf: a kernel without a member the path walk reads gets the program without it", () => {
  // Types with every member the program needs and none of the walk's (no `struct mount`).
  const places = new Map(
    Object.values(MEMBERS).map((
      [s, m, bytes],
      i,
    ) => [`${s}.${m}`, { offsetBytes: 8 * i, sizeBytes: bytes }]),
  );
  const btf = {
    member: (s: string, m: string) => places.get(`${s}.${m}`) ?? null,
  } as unknown as Btf;
  const off = offsetsFrom(btf);
  assert(typeof off !== "string", String(off));
  assertEquals([off.taskMm, off.walk, off.cgroups], [0, null, null]);
});

Deno.test("program: assembles for any offsets, with the walk and without; the map fds are in its 64-bit loads", () => {
  const base = Object.fromEntries(Object.keys(MEMBERS).map((k, i) => [k, 8 * i]));
  const walk = Object.fromEntries(
    Object.keys(WALK_MEMBERS).map((k, i) => [k, 8 * i]),
  ) as WalkOffsets;
  const cgroups = { taskCgroups: 800 };
  const lengths: number[] = [];
  const maps = { scratchFd: 7, ringFd: 8, dropsFd: 9, movesFd: 10 };
  for (
    const off of [
      { ...base, walk, cgroups },
      { ...base, walk: null, cgroups },
      { ...base, walk: null, cgroups: null },
    ] as Offsets[]
  ) {
    const prog = execProgram(off, maps);
    assertEquals(prog.length % 8, 0);
    assertEquals(mapFds(prog), off.cgroups ? [7, 10, 8, 9] : [7, 8, 9]);
    assertEquals(prog[prog.length - 8], 0x95, "ends with exit");
    lengths.push(prog.length);
  }
  assert(lengths[0] > lengths[1], "the walk is in the first only");
  assert(lengths[1] > lengths[2], "the cgroup facts are not in the last");
});

Deno.test("program: the cgroup move counters add to their map, the fork's after a comparison", () => {
  const any = cgroupMoveProgram(10, null), fork = cgroupMoveProgram(10, { taskCgroups: 800 });
  assertEquals([mapFds(any), mapFds(fork)], [[10], [10]]);
  assert(fork.length > any.length);
  // `lock *(u64 *)(r0 + 0) += r1` (BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD) in each.
  for (const p of [any, fork]) {
    const at = p.findIndex((b, i) => i % 8 === 0 && b === 0xdb);
    assert(at >= 0 && p[at + 1] === 0x10, "an atomic add of r1 into r0's u64");
  }
});

/** The map fds of `prog`'s 64-bit immediate loads, in order. */
function mapFds(prog: Uint8Array): number[] {
  const fds: number[] = [];
  const v = new DataView(prog.buffer);
  for (let i = 0; i < prog.length; i += 8) {
    if (prog[i] === 0x18) fds.push(v.getInt32(i + 4, true)), i += 8;
  }
  return fds;
}

/** A record as the program writes it. */
function record(o: {
  ns: number;
  tgid: number;
  argv?: string;
  argvBytes?: number;
  readErr?: number;
  comm?: string;
  login?: number;
  /** The walked path's names, last first, each with its NUL; with `walk` how it ended. */
  names?: string;
  walk?: number;
  interp?: string;
  /** The working directory's names, as `names`; with `cwdWalk` how that walk ended. */
  cwd?: string;
  cwdWalk?: number;
  /** Cgroup moves counted at the exec (default: none counted), and its parent's cgroups. */
  moves?: number;
  sameCgroups?: boolean;
}): Uint8Array {
  const argv = new TextEncoder().encode(o.argv ?? "prog\0");
  const trueLen = o.argvBytes ?? argv.length;
  const names = Uint8Array.from(o.names ?? "", (c) => c.charCodeAt(0));
  const cwd = Uint8Array.from(o.cwd ?? "", (c) => c.charCodeAt(0));
  const carried = Math.min(argv.length, ARGV_CAP_BYTES);
  const r = new Uint8Array(Rec.header + carried + names.length + cwd.length);
  const v = new DataView(r.buffer);
  v.setBigUint64(Rec.ktimeNs, BigInt(o.ns), true);
  v.setUint32(Rec.tgid, o.tgid, true);
  v.setUint32(Rec.tid, o.tgid, true);
  v.setUint32(Rec.ppid, 1, true);
  v.setUint32(Rec.euid, 1000, true);
  v.setUint32(Rec.loginUid, o.login ?? 0xffffffff, true);
  v.setInt32(Rec.argvRead, o.readErr ?? 0, true);
  v.setBigUint64(Rec.startBoottimeNs, 12_345_678_901n, true);
  r.set(new TextEncoder().encode(o.comm ?? "prog"), Rec.comm);
  r.set(new TextEncoder().encode("/usr/bin/prog"), Rec.filename);
  r.set(new TextEncoder().encode(o.interp ?? "/usr/bin/prog"), Rec.interp);
  v.setBigUint64(Rec.exeIno, 77n, true);
  v.setUint32(Rec.exeDev, (8 << 20) | 1, true);
  v.setBigUint64(Rec.argvBytes, BigInt(trueLen), true);
  r.set(argv.subarray(0, ARGV_CAP_BYTES), Rec.header);
  v.setUint32(Rec.pathBytes, names.length, true);
  v.setUint32(Rec.pathWalk, o.walk ?? (names.length ? PathWalk.ROOT : PathWalk.NONE), true);
  r.set(names, Rec.header + carried);
  v.setBigUint64(Rec.cwdIno, 78n, true);
  v.setUint32(Rec.cwdDev, (8 << 20) | 1, true);
  v.setUint32(Rec.cwdBytes, cwd.length, true);
  v.setUint32(
    Rec.cwdWalk,
    o.cwdWalk ?? (o.cwd !== undefined ? PathWalk.ROOT : PathWalk.NONE),
    true,
  );
  r.set(cwd, Rec.header + carried + names.length);
  v.setBigInt64(Rec.cgroupMoves, BigInt(o.moves ?? -1), true);
  v.setUint32(Rec.sameCgroups, o.sameCgroups ? 1 : 0, true);
  return r;
}

Deno.test("record: the walked path is its names in the kernel's order, reversed, exact bytes", () => {
  const path = (names: string, walk?: number) =>
    decodeBpfExec(record({ ns: 1, tgid: 1, names, walk }))!.exePath;
  assertEquals(path("prog\0bin\0usr\0"), "/usr/bin/prog");
  assertEquals(path("x\n\xff\0tmp\0"), "/tmp/x\n\udcff", "bytes as text.ts keeps them");
  assertEquals(path("prog\0bin\0", PathWalk.CUT), null, "not up to the root: no path");
  assertEquals(path("prog\0bin\0", PathWalk.DETACHED), null);
  assertEquals(path("prog\0\0usr\0"), null, "an empty name: not a dentry's");
  assertEquals(path("a/b\0usr\0"), null, "a name with a slash: not a dentry's");
  assertEquals(path("prog\0bin"), null, "no NUL at the end");
  assertEquals(path(""), null);
  const r = decodeBpfExec(record({ ns: 1, tgid: 1, argv: "a\0b\0", names: "p\0" }))!;
  assertEquals([r.argv, r.exePath], [["a", "b"], "/p"], "argv ends where the path begins");
  const long = record({ ns: 1, tgid: 1, names: "p\0" });
  new DataView(long.buffer).setUint32(Rec.pathBytes, 5000, true);
  assertEquals(decodeBpfExec(long), null, "a length the record does not have");
});

Deno.test("record: the working directory's walked path follows the program's", () => {
  const cwd = (o: { cwd?: string; cwdWalk?: number; names?: string }) =>
    decodeBpfExec(record({ ns: 1, tgid: 1, argv: "a\0", ...o }));
  const r = cwd({ names: "prog\0bin\0", cwd: "x y\n\xff\0tmp\0" })!;
  assertEquals([r.exePath, r.cwdPath, r.cwdId], ["/bin/prog", "/tmp/x y\n\udcff", "8:1:78"]);
  assertEquals(cwd({ cwd: "" })!.cwdPath, "/", "no names: the root itself");
  assertEquals(cwd({ cwd: "tmp\0", cwdWalk: PathWalk.CUT })!.cwdPath, null);
  assertEquals(cwd({ cwd: "tmp\0", cwdWalk: PathWalk.DETACHED })!.cwdPath, null);
  assertEquals(cwd({ cwd: "", cwdWalk: PathWalk.DELETED })!.cwdPath, null, "removed: no path");
  assertEquals(cwd({})!.cwdPath, null, "not walked");
  const long = record({ ns: 1, tgid: 1, cwd: "tmp\0" });
  new DataView(long.buffer).setUint32(Rec.cwdBytes, 5, true);
  assertEquals(decodeBpfExec(long), null, "a length the record does not have");
});

Deno.test("stage: the walked path names the exec when it reaches the file that ran", () => {
  const src = new FakeRecords();
  const resolved: string[] = [];
  const reached: string[] = [];
  const st = new BpfExecStage(src, (path) => {
    resolved.push(path);
    return "/resolved";
  }, (id, path) => {
    reached.push(path);
    return id === "8:1:77" && path === "/opt/prog";
  });
  src.queue.push(record({ ns: 1, tgid: 3, names: "prog\0opt\0" }));
  src.queue.push(record({ ns: 1, tgid: 4, names: "prog\0elsewhere\0" }));
  st.poll();
  assertEquals(st.exec(3, 2, NULL_INFO).exe, "/opt/prog");
  assertEquals(resolved, [], "no realpath for a walked path that reaches the file");
  assertEquals(st.exec(4, 2, NULL_INFO).exe, "/resolved", "else the path as given, resolved");
  assertEquals(reached, ["/opt/prog", "/elsewhere/prog"]);
});

Deno.test("stage: the walked working directory is the exec's when it reaches that directory", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src, () => null, (id, path) => id === "8:1:78" && path === "/srv");
  src.queue.push(record({ ns: 1, tgid: 3, cwd: "srv\0" }));
  src.queue.push(record({ ns: 1, tgid: 4, cwd: "app\0" })); // another namespace's name
  src.queue.push(record({ ns: 1, tgid: 5, cwd: "srv\0", cwdWalk: PathWalk.CUT }));
  st.poll();
  const proc = { ...NULL_INFO, cwd: "/from-proc" };
  assertEquals(st.exec(3, 2, proc).cwd, "/srv", "over a read made after the exec");
  assertEquals(st.exec(4, 2, proc).cwd, "/from-proc", "a path that does not reach it: /proc's");
  assertEquals(st.exec(5, 2, NULL_INFO).cwd, null, "a walk cut short, nothing read: unknown");
  assertEquals(st.counters().execs_cwd_unverified, 2);
});

Deno.test("stage: says it names an exec exactly only for a program run as given, with its path", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src, () => null, (_id, path) => path === "/opt/prog");
  src.queue.push(record({ ns: 1, tgid: 3, names: "prog\0opt\0" }));
  src.queue.push(record({ ns: 1, tgid: 4, names: "prog\0opt\0", interp: "/bin/sh" }));
  src.queue.push(record({ ns: 1, tgid: 5, names: "prog\0other\0" }));
  src.queue.push(record({ ns: 1, tgid: 6, names: "prog\0opt\0", walk: PathWalk.CUT }));
  assertEquals(st.namesExactly(3), true, "new records are taken first");
  assertEquals(st.namesExactly(4), false, "a #! script: fanotify names the script");
  assertEquals(st.namesExactly(5), false, "a path that does not reach the file");
  assertEquals(st.namesExactly(6), false, "a walk that did not reach the root");
  assertEquals(st.namesExactly(7), false, "no record");
  src.queue.push(record({ ns: 2, tgid: 3, names: "prog\0opt\0", interp: "/bin/sh" }));
  assertEquals(st.namesExactly(3), false, "the newest record of the pid decides");
});

Deno.test("record: fields, exact argv bytes, truncation and refusals", () => {
  const r = decodeBpfExec(record({ ns: 5, tgid: 42, argv: "a b\0x\ny\0\xff\0", login: 1000 }))!;
  assertEquals(r.argv, ["a b", "x\ny", "\u00ff"]);
  assertEquals([r.tgid, r.ppid, r.euid, r.loginUid, r.comm], [42, 1, 1000, 1000, "prog"]);
  assertEquals([r.filename, r.startTicks, r.argvTruncated], ["/usr/bin/prog", 1234, false]);
  const raw = record({ ns: 5, tgid: 42, argv: "ab\0" });
  raw.set([0x66, 0xff, 0], Rec.header); // a byte that is not UTF-8
  assertEquals(decodeBpfExec(raw)!.argv, ["f\udcff"]);
  assertEquals(decodeBpfExec(record({ ns: 1, tgid: 1 }))!.loginUid, null, "unset");
  assertEquals(decodeBpfExec(record({ ns: 1, tgid: 1, readErr: -14 }))!.argv, null);
  const big = decodeBpfExec(record({ ns: 1, tgid: 1, argv: "y".repeat(40000) }))!;
  assertEquals([big.argvTruncated, big.argvBytes, big.argv![0].length], [true, 40000, 32768]);
  assertEquals(decodeBpfExec(new Uint8Array(100)), null, "shorter than the fixed part");
  assertEquals(decodeBpfExec(record({ ns: 1, tgid: 1 }).subarray(0, Rec.header + 2)), null);
});

/** Records handed to a stage, and a drop count. */
class FakeRecords implements BpfRecords {
  queue: Uint8Array[] = [];
  dropCount = 0;
  drain(take: (r: Uint8Array) => void) {
    for (const r of this.queue.splice(0)) take(r);
  }
  drops() {
    return this.dropCount;
  }
}

Deno.test("stage: an exec is in its creator's cgroups only with no move since the baseline, after it, in its parent's", () => {
  const src = Object.assign(new FakeRecords(), { cgroupBaseline: { moves: 5, ns: 10 } });
  const st = new BpfExecStage(src);
  src.queue.push(record({ ns: 20, tgid: 1, moves: 5, sameCgroups: true }));
  src.queue.push(record({ ns: 20, tgid: 2, moves: 6, sameCgroups: true })); // a move since
  src.queue.push(record({ ns: 20, tgid: 3, moves: 5, sameCgroups: false })); // not its parent's
  src.queue.push(record({ ns: 5, tgid: 4, moves: 5, sameCgroups: true })); // before the baseline
  src.queue.push(record({ ns: 20, tgid: 5, sameCgroups: true })); // moves not counted
  st.poll();
  assertEquals([1, 2, 3, 4, 5].map((pid) => st.inCreatorsCgroups(pid, 30)), [
    true,
    false,
    false,
    false,
    false,
  ]);
  assertEquals(new BpfExecStage(new FakeRecords()).inCreatorsCgroups(1, 30), false, "no baseline");
  assertEquals(decodeBpfExec(record({ ns: 1, tgid: 1 }))!.cgroupMoves, null, "all ones: unread");
});

Deno.test("stage: each exec gets the newest record of its pid no later than itself", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  src.queue.push(record({ ns: 100, tgid: 7, argv: "one\0" }));
  src.queue.push(record({ ns: 200, tgid: 7, argv: "two\0" }));
  src.queue.push(record({ ns: 150, tgid: 8, argv: "other\0" }));
  st.poll();
  assertEquals(st.exec(7, 120, NULL_INFO).argv, ["one"]);
  assertEquals(st.exec(7, 90, NULL_INFO).argv, null, "no record before it: /proc facts stay");
  assertEquals(st.exec(7, 250, NULL_INFO).argv, ["two"]);
  assertEquals(st.exec(8, 300, NULL_INFO).argv, ["other"]);
  assertEquals(st.counters().execs_facts_from_bpf, 3);
  assertEquals(st.counters().execs_without_bpf_record, 1);
});

Deno.test("stage: a record whose event was lost goes to no later exec", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  src.queue.push(record({ ns: 100, tgid: 7, argv: "lost\0" }));
  src.queue.push(record({ ns: 200, tgid: 7, argv: "mine\0" }));
  st.poll();
  assertEquals(st.exec(7, 210, NULL_INFO).argv, ["mine"]);
  assertEquals(st.counters().bpf_records_unpaired, 1);
});

Deno.test("stage: after a ring-buffer drop, a record older than a connector loss is not used", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  src.queue.push(record({ ns: 100, tgid: 7, argv: "old\0" }));
  st.poll();
  st.lost(); // the event of the record at 100 may be among the lost
  src.dropCount = 1; // and this exec's own record was dropped
  assertEquals(st.losses(), [{ reason: "bpf_ringbuf_full", count: 1 }]);
  assertEquals(st.losses(), [], "said once");
  assertEquals(st.exec(7, 300, { ...NULL_INFO, argv: ["from proc"] }).argv, ["from proc"]);
  src.queue.push(record({ ns: 400, tgid: 7, argv: "new\0" }));
  st.poll();
  assertEquals(st.exec(7, 410, NULL_INFO).argv, ["new"], "records after the loss are used");
});

Deno.test("stage: stale and excess records are dropped and counted", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  src.queue.push(record({ ns: 1, tgid: 3 }));
  st.poll();
  st.sweep(1 + STALE_RECORD_NS + 1);
  assertEquals(st.exec(3, 2, NULL_INFO).argv, null);
  assertEquals(st.counters().bpf_records_unpaired, 1);
  for (let i = 0; i < MAX_PENDING_RECORDS + 5; i++) src.queue.push(record({ ns: 10, tgid: i }));
  st.poll();
  assertEquals(st.counters().bpf_records_unpaired, 6);
  assertEquals(st.exec(0, 20, NULL_INFO).argv, null, "the oldest went first");
  assertEquals(st.exec(MAX_PENDING_RECORDS + 4, 20, NULL_INFO).argv, ["prog"]);
  const c = st.counters();
  assertEquals(c.bpf_records_held, MAX_PENDING_RECORDS - 1, "one paired since");
  assertEquals(c.bpf_records_held_peak, MAX_PENDING_RECORDS, "the bound, never past it");
  assert(c.bpf_records_held_peak_bytes <= MAX_PENDING_BYTES);
});

Deno.test("stage: records older than the subscription are used, but not owed an event", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src, undefined, undefined, 1000);
  src.queue.push(record({ ns: 900, tgid: 5, argv: "before\0" })); // its event never sent
  src.queue.push(record({ ns: 990, tgid: 6, argv: "straddles\0" })); // its event after 1000
  src.queue.push(record({ ns: 995, tgid: 7, argv: "old\0" }));
  src.queue.push(record({ ns: 1100, tgid: 7, argv: "new\0" }));
  src.queue.push(record({ ns: 1200, tgid: 8, argv: "lost\0" })); // its event was lost
  st.poll();
  assertEquals(st.exec(6, 1001, NULL_INFO).argv, ["straddles"]);
  assertEquals(st.exec(7, 1101, NULL_INFO).argv, ["new"]);
  assertEquals(st.counters().bpf_records_unpaired, 0, "the one before it skipped, uncounted");
  st.sweep(1200 + STALE_RECORD_NS + 1);
  assertEquals(st.counters().bpf_records_unpaired, 1, "only the one owed an event");
  assertEquals(st.counters().bpf_records_held, 0);
});

Deno.test("stage: records held are bounded in bytes too (long argv)", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  const big = "q".repeat(ARGV_CAP_BYTES - 1) + "\0";
  const fit = Math.floor(MAX_PENDING_BYTES / (Rec.header + ARGV_CAP_BYTES));
  for (let i = 0; i < fit + 3; i++) src.queue.push(record({ ns: 10, tgid: i, argv: big }));
  st.poll();
  assertEquals(st.counters().bpf_records_unpaired, 3);
  assertEquals(st.exec(2, 20, NULL_INFO).argv, null, "the oldest went first");
  assertEquals(st.exec(3, 20, NULL_INFO).argv![0].length, ARGV_CAP_BYTES - 1);
});

Deno.test("stage: a truncated argv carries its true length", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  src.queue.push(record({ ns: 1, tgid: 3, argv: "z".repeat(ARGV_CAP_BYTES + 10) }));
  st.poll();
  const f = st.exec(3, 2, NULL_INFO);
  assertEquals([f.argvTrueBytes, f.argv![0].length], [ARGV_CAP_BYTES + 10, ARGV_CAP_BYTES]);
});

Deno.test("stage: a cut argv that a validated /proc read has whole is taken whole", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  const long = "z".repeat(ARGV_CAP_BYTES + 10);
  src.queue.push(record({ ns: 1, tgid: 3, argv: `${long}\0tail\0` }));
  src.queue.push(record({ ns: 5, tgid: 3, argv: `${long}\0tail\0` }));
  st.poll();
  const f = st.exec(3, 2, { ...NULL_INFO, argv: [long, "tail"] });
  assertEquals([f.argvTrueBytes, f.argv], [undefined, [long, "tail"]]);
  const other = st.exec(3, 6, { ...NULL_INFO, argv: ["y" + long, "tail"] });
  assertEquals(other.argvTrueBytes, ARGV_CAP_BYTES + 16, "another argv: the cut one");
  src.queue.push(record({ ns: 7, tgid: 3, argv: `${long}\0tail\0` }));
  st.poll();
  const short = st.exec(3, 8, { ...NULL_INFO, argv: [long.slice(0, -1)] });
  assertEquals(short.argvTrueBytes, ARGV_CAP_BYTES + 16, "a /proc read cut short is not whole");
  assertEquals(st.counters().argv_truncated, 2);
});

Deno.test("argv bytes: as the kernel holds them, escapes and all", () => {
  assertEquals(argvByteLength(["ls", "-l"]), 6);
  assertEquals(argvByteLength(["é", "€", "😀"]), 3 + 4 + 5);
  assertEquals(argvByteLength(["f\udcff"]), 3, "an escaped byte is one byte");
  assertEquals(argvByteLength([""]), 1);
});

Deno.test("stage: names an unnamed exec only by the identity of the file that ran", () => {
  const src = new FakeRecords();
  const asked: string[] = [];
  const st = new BpfExecStage(src, (path, id) => {
    asked.push(`${path} ${id}`);
    return path === "/usr/bin/prog" && id === "8:1:77" ? "/opt/prog" : null;
  });
  for (const ns of [1, 3, 5]) src.queue.push(record({ ns, tgid: 3 }));
  st.poll();
  assertEquals(st.exec(3, 2, NULL_INFO).exe, "/opt/prog");
  assertEquals(asked, ["/usr/bin/prog 8:1:77"]);
  assertEquals(st.exec(3, 4, { ...NULL_INFO, exe: "/usr/bin/x" }).exe, "/usr/bin/x");
  assertEquals(st.exec(3, 6, { ...NULL_INFO, exeNotHere: true }).exe, null);
  assertEquals(asked.length, 1, "a named exec, or one not here, is not asked about");
  assertEquals(st.counters().execs_named_by_bpf, 1);
  const none = new BpfExecStage(src, () => null);
  src.queue.push(record({ ns: 1, tgid: 4 }));
  none.poll();
  assertEquals(none.exec(4, 2, NULL_INFO).exe, null, "another file now: null");
});

Deno.test("stage: a path that does not reach the file that ran is marked, so no later source names it", () => {
  // As a private bind mount of another file over /usr/bin/ls: the record's path names, from
  // here, a file other than the one that ran; audit's exe= would give that same path.
  const src = new FakeRecords();
  const st = new BpfExecStage(src, () => null);
  src.queue.push(record({ ns: 1, tgid: 4 }));
  st.poll();
  const facts = st.exec(4, 2, NULL_INFO);
  assertEquals([facts.exe, facts.exeNotHere], [null, true]);
  assertEquals(st.counters().execs_exe_unverified, 1);
});

Deno.test("stage: vouches for an exec only with a whole, readable argv in hand", () => {
  const src = new FakeRecords();
  const st = new BpfExecStage(src);
  src.queue.push(record({ ns: 10, tgid: 3 }));
  src.queue.push(record({ ns: 10, tgid: 4, argv: "z".repeat(ARGV_CAP_BYTES + 1) }));
  src.queue.push(record({ ns: 10, tgid: 5, readErr: -14 }));
  st.poll();
  assertEquals([st.vouches(3, 9), st.vouches(3, 11)], [false, true], "no record before it");
  assertEquals(st.vouches(4, 11), false, "cut: /proc may have it whole");
  assertEquals(st.vouches(5, 11), false, "unreadable argv");
  assertEquals(st.exec(3, 11, NULL_INFO).argv, ["prog"], "asking took nothing");
});

Deno.test("cpu list: the count of possible CPUs", () => {
  assertEquals(parseCpuList("0-1\n"), 2);
  assertEquals(parseCpuList("0,2-5,7"), 8);
  assertEquals(parseCpuList("0"), 1);
});

Deno.test("stage: a name from fanotify or /proc that is not the file that ran is dropped", () => {
  // fanotify's opens are matched to exec events by pid: read while the connector lags behind
  // a storm, a later process's open on the same pid could name an earlier exec.
  const src = new FakeRecords();
  const files: Record<string, string> = { "/usr/bin/prog": "8:1:77", "/tmp/storm": "8:1:99" };
  const st = new BpfExecStage(
    src,
    (path, id) => files[path] === id ? path : null,
    (id, path) => files[path] === id,
  );
  for (const ns of [1, 3]) src.queue.push(record({ ns, tgid: 3 }));
  st.poll();
  const right = st.exec(3, 2, { ...NULL_INFO, exe: "/usr/bin/prog" });
  assertEquals(right.exe, "/usr/bin/prog");
  const wrong = st.exec(3, 4, { ...NULL_INFO, exe: "/tmp/storm", script: "/tmp/s" });
  assertEquals([wrong.exe, wrong.script], ["/usr/bin/prog", null], "named from the record");
  assertEquals(st.counters().execs_exe_corrected, 1);
});

Deno.test("record: 64-bit fields read whole (an inode past 2^53, a ktime past 2^32)", () => {
  const r = record({ ns: 2 ** 40 + 7, tgid: 9 });
  const v = new DataView(r.buffer);
  assertEquals(decodeBpfExec(r)!.ktimeNs, 2 ** 40 + 7);
  assertEquals(decodeBpfExec(r)!.exeId, "8:1:77");
  v.setBigUint64(Rec.exeIno, 2n ** 60n + 1n, true);
  assertEquals(decodeBpfExec(r)!.exeId, `8:1:${2n ** 60n + 1n}`);
  v.setBigUint64(Rec.exeIno, 2n ** 32n + 5n, true);
  assertEquals(decodeBpfExec(r)!.exeId, `8:1:${2 ** 32 + 5}`);
  v.setBigUint64(Rec.exeIno, 0n, true);
  assertEquals(decodeBpfExec(r)!.exeId, null, "no inode read");
});

Deno.test("fields: a u64 read as a number is what Number() of the BigInt gives, start times in ticks", () => {
  const v = new DataView(new ArrayBuffer(8));
  for (
    const x of [0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 64n - 1n]
  ) {
    v.setBigUint64(0, x, true);
    assertEquals(u64(v, 0), Number(x), String(x));
  }
  v.setBigUint64(0, BigInt(NS_PER_TICK) * 123n + 5n, true);
  assertEquals(startTicksAt(v, 0), 123);
});
