import { assertEquals } from "@std/assert";
import { parseCmdline, parseStat, parseStatus } from "../lib/tree/proc_parse.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("procfs: stat with spaces and parentheses in the name", () => {
  const line =
    "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10";
  assertEquals(parseStat(enc(line)), {
    pid: 4242,
    comm: "a) b (c)",
    state: "S",
    ppid: 17,
    startTicks: 987654,
    threads: 3,
    flags: 4194560,
  });
});

Deno.test("procfs: stat garbage is null", () => {
  assertEquals(parseStat(enc("nonsense")), null);
  assertEquals(parseStat(enc("1 (x) S")), null);
});

Deno.test("procfs: cmdline splitting", () => {
  assertEquals(parseCmdline(enc("sh\0-c\0exit 3\0")), ["sh", "-c", "exit 3"]);
  assertEquals(parseCmdline(enc("")), null);
  assertEquals(parseCmdline(enc("\0")), [""]);
  assertEquals(parseCmdline(enc("rewritten title")), ["rewritten title"]);
  assertEquals(parseCmdline(enc("a\0\0b\0")), ["a", "", "b"]);
});

Deno.test("procfs: cmdline split from a range, each list its own", () => {
  const bytes = enc("xx\0one\0two\0yy");
  assertEquals(parseCmdline(bytes, undefined, 3, 11), ["one", "two"]);
  assertEquals(parseCmdline(bytes, undefined, 3, 3), null, "an empty range");
  // The split list is reused: a long one, then a short one, then the long one kept as it was.
  const long = parseCmdline(enc("a\0b\0c\0d\0"));
  const short = parseCmdline(enc("e\0"));
  assertEquals(long, ["a", "b", "c", "d"]);
  assertEquals(short, ["e"]);
});

Deno.test("procfs: name, parent and effective uid from status", () => {
  const status =
    "Name:\ta\\nb\nUmask:\t0022\nPPid:\t7\nTracerPid:\t42\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
  assertEquals(parseStatus(enc(status)), {
    comm: "a\nb",
    ppid: 7,
    euid: 0,
    tracerPid: 42,
    exited: false,
  });
  assertEquals(parseStatus(enc("Name:\tx\n")), null);
});

Deno.test("procfs: a zombie's status says it has exited (its cmdline, exe, cwd are gone)", () => {
  const status = (state: string) =>
    `Name:\tx\nUmask:\t0022\nState:\t${state}\nTgid:\t9\nPPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n`;
  assertEquals(parseStatus(enc(status("Z (zombie)")))?.exited, true);
  assertEquals(parseStatus(enc(status("X (dead)")))?.exited, true);
  assertEquals(parseStatus(enc(status("R (running)")))?.exited, false);
  assertEquals(parseStatus(enc(status("S (sleeping)")))?.ppid, 1);
});
