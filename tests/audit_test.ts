// The audit stream, without root: rule bytes, record text, argv decoding, event assembly and
// the pairing with exec events (lib/source/audit/wire.ts, records.ts, join.ts).
import { assert, assertEquals } from "@std/assert";
import {
  AUDIT_MSG,
  AUDIT_RULE,
  decodeExecve,
  decodeStatus,
  encodeRule,
  formatKey,
  parseFields,
  parseHeader,
  parseKey,
  ruleKey,
  untrustedBytes,
} from "../lib/source/audit/wire.ts";
import {
  AuditAssembler,
  type AuditExec,
  INCOMPLETE_AFTER_MS,
} from "../lib/source/audit/records.ts";
import { AUDIT_BLIND_MS, AUDIT_TICK_MS, AuditJoin } from "../lib/source/audit/join.ts";

const hex = (s: string) =>
  Array.from(new TextEncoder().encode(s), (b) => b.toString(16).padStart(2, "0").toUpperCase())
    .join("");
const fields = (text: string) => parseFields(text, parseHeader(text)!.bodyAt);

Deno.test("audit rule: exit list, always, arch, success, key; the key reads back", () => {
  const key = formatKey({ pid: 42, startTicks: 777, enabled: true });
  assertEquals(key, "proctree:42:777:e");
  const b = encodeRule({ arch: 0xc000003e, syscalls: [59, 322], key });
  const v = new DataView(b.buffer);
  assertEquals(b.length, AUDIT_RULE.size + key.length);
  assertEquals(v.getUint32(AUDIT_RULE.flags, true), 0x04);
  assertEquals(v.getUint32(AUDIT_RULE.action, true), 2);
  assertEquals(v.getUint32(AUDIT_RULE.fieldCount, true), 3);
  assertEquals(v.getUint32(AUDIT_RULE.mask + 4, true), 1 << (59 - 32)); // word 1, bit 27
  assertEquals(v.getUint32(AUDIT_RULE.mask + 10 * 4, true), 1 << (322 - 320)); // word 10, bit 2
  assertEquals(v.getUint32(AUDIT_RULE.values, true), 0xc000003e);
  assertEquals(v.getUint32(AUDIT_RULE.buflen, true), key.length);
  assertEquals(ruleKey(v, 0, b.length), key);
  assertEquals(parseKey(key), { pid: 42, startTicks: 777, enabled: true });
  assertEquals(parseKey("proctree:42:777"), { pid: 42, startTicks: 777, enabled: false });
  assertEquals(parseKey("someone-else"), null);
  // A session-confined rule has one more field; a truncated listing has no key.
  const s = encodeRule({ arch: 1, syscalls: [59], sessionId: 9, key: "k" });
  assertEquals(new DataView(s.buffer).getUint32(AUDIT_RULE.fieldCount, true), 4);
  assertEquals(ruleKey(new DataView(s.buffer), 0, s.length), "k");
  assertEquals(ruleKey(new DataView(s.buffer), 0, s.length - 1), null);
});

Deno.test("audit status decodes enabled, daemon pid, lost and backlog", () => {
  const b = new Uint8Array(44);
  const v = new DataView(b.buffer);
  [0, 1, 1, 321, 0, 64, 7, 3].forEach((x, i) => v.setUint32(i * 4, x, true));
  assertEquals(decodeStatus(v, 0), { enabled: 1, pid: 321, lost: 7, backlog: 3, backlogLimit: 64 });
});

Deno.test("record header and untrusted strings", () => {
  assertEquals(parseHeader("audit(1764450000.123:456): argc=1"), {
    timeMs: 1764450000123,
    serial: 456,
    bodyAt: 27,
  });
  assertEquals(parseHeader("garbage"), null);
  assertEquals(untrustedBytes('"plain"'), new TextEncoder().encode("plain"));
  assertEquals(untrustedBytes("61FF0A"), new Uint8Array([0x61, 0xff, 0x0a]));
  assertEquals(untrustedBytes("(null)"), null);
  assertEquals(untrustedBytes("ABC"), null);
});

Deno.test("argv: quoted, hex (newline, quotes, non-UTF-8), and chunked over records", () => {
  const t = `audit(1.000:1): argc=4 a0="prog" a1=${hex("a b\n")} a2=${hex('"q"')} a3=FF`;
  assertEquals(decodeExecve([fields(t)]), ["prog", "a b\n", '"q"', "\udcff"]);
  // A long argument: its length counts hex digits when encoded, bytes when quoted.
  const long = "x".repeat(10);
  const r1 = fields(`audit(1.000:2): argc=3 a0="p" a1_len=20 a1[0]=${hex(long.slice(0, 6))}`);
  const r2 = fields(`audit(1.000:2):  a1[1]=${hex(long.slice(6))} a2_len=5 a2[0]="ab" a2[1]="cde"`);
  assertEquals(decodeExecve([r1, r2]), ["p", long, "abcde"]);
  // Anything missing or unreadable: null, never a partial argv.
  assertEquals(decodeExecve([r1]), null);
  assertEquals(decodeExecve([fields(`audit(1.000:3): argc=2 a0="p" a1=(null)`)]), null);
  assertEquals(decodeExecve([fields(`audit(1.000:3): argc=2 a0="p"`)]), null);
  assertEquals(decodeExecve([fields(`audit(1.000:3): argc=0`)]), []);
  assertEquals(decodeExecve([]), null);
});

const SYSCALL = (serial: number, pid: number, extra = "") =>
  `audit(100.005:${serial}): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=${pid} ` +
  `uid=0 euid=6 comm="true" exe="/usr/bin/true"${extra} key="proctree:1:2"`;

Deno.test("assembler: records gathered by serial, complete at EOE, failures ignored", () => {
  const a = new AuditAssembler([59, 322]);
  assertEquals(a.record(AUDIT_MSG.SYSCALL, SYSCALL(10, 500), 0), null);
  // Another event's records in between, including a failed exec and a syscall not followed.
  a.record(AUDIT_MSG.SYSCALL, SYSCALL(11, 501).replace("success=yes", "success=no"), 0);
  a.record(AUDIT_MSG.SYSCALL, SYSCALL(12, 502).replace("syscall=59", "syscall=2"), 0);
  a.record(AUDIT_MSG.EXECVE, `audit(100.005:11): argc=1 a0="nope"`, 0);
  assertEquals(a.record(AUDIT_MSG.EOE, "audit(100.005:11): ", 0), null);
  a.record(AUDIT_MSG.EXECVE, `audit(100.005:10): argc=2 a0="true" a1="x"`, 0);
  a.record(AUDIT_MSG.CWD, `audit(100.005:10): cwd=${hex("/tmp/a dir")}`, 0);
  a.record(AUDIT_MSG.PROCTITLE, `audit(100.005:10): proctitle=74727565`, 0);
  const rec = a.record(AUDIT_MSG.EOE, "audit(100.005:10): ", 0);
  assertEquals(rec, {
    pid: 500,
    serial: 10,
    timeMs: 100005,
    argv: ["true", "x"],
    exe: "/usr/bin/true",
    comm: "true",
    euid: 6,
    cwd: "/tmp/a dir",
  });
  a.record(AUDIT_MSG.SYSCALL, "not a record", 0);
  assertEquals(a.stats.malformed, 1);
  // An event whose EOE never comes is dropped.
  a.record(AUDIT_MSG.SYSCALL, SYSCALL(13, 503), 0);
  a.sweep(INCOMPLETE_AFTER_MS + 1);
  assertEquals(a.stats.incomplete, 1);
  assertEquals(a.record(AUDIT_MSG.EOE, "audit(100.005:13): ", 0), null);
});

const rec = (pid: number, timeMs: number, arg: string): AuditExec => ({
  pid,
  serial: 0,
  timeMs,
  argv: [arg],
  exe: null,
  comm: null,
  euid: null,
  cwd: null,
});

Deno.test("join: an exec waits for its record, then takes its pid's oldest, in order", () => {
  const j = new AuditJoin();
  assertEquals(j.match(7, 1000, 900, 0, false), undefined); // not yet: wait
  j.add(rec(7, 999, "first"), 1);
  j.add(rec(7, 1001, "second"), 1);
  assertEquals(j.match(7, 1000, 900, 2, false)?.argv, ["first"]);
  assertEquals(j.match(7, 1002, 900, 2, false)?.argv, ["second"]);
  assertEquals(j.match(7, 1003, 900, 3, true), null); // waited out: none
  assertEquals(j.stats, { paired: 2, unpaired: 1, blind: 0, unclaimed: 0 });
});

Deno.test("join: a record of a later call, or of an earlier process on the pid, is not taken", () => {
  const j = new AuditJoin();
  // A process with no audit context execs at 1000; the next record on the pid began at 1500.
  j.add(rec(8, 1500, "later"), 0);
  assertEquals(j.match(8, 1000, 900, 0, false), null);
  assertEquals(j.match(8, 1500, 900, 0, false)?.argv, ["later"]);
  // A record left by the pid's previous process (before this one was created) is dropped.
  j.add(rec(9, 100, "old process"), 0);
  j.add(rec(9, 2000, "this one"), 0);
  assertEquals(j.match(9, 2000, 100 + AUDIT_TICK_MS + 1, 0, false)?.argv, ["this one"]);
  assertEquals(j.stats.unclaimed, 1);
});

Deno.test("join: after a loss nothing is paired for a while, and held records are dropped", () => {
  const j = new AuditJoin();
  j.add(rec(5, 10, "held"), 0);
  j.lost(100);
  assert(j.blind(100 + AUDIT_BLIND_MS - 1));
  assertEquals(j.match(5, 20, 0, 150, false), null);
  assertEquals(j.stats.blind, 1);
  assertEquals(j.stats.unclaimed, 1);
  assertEquals(j.match(5, 20, 0, 100 + AUDIT_BLIND_MS, false), undefined); // waits again
});
