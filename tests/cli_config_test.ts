import { assertEquals, assertThrows } from "@std/assert";
import { CliError } from "../cli/errors.ts";
import { parseWatchConfig, type WatchConfig } from "../cli/watch.ts";
import { MIN_BACKLOG_BYTES, MIN_RCVBUF_BYTES } from "../cli/sources.ts";
import { DEFAULT_BACKLOG_BYTES } from "../ffi/source/connector_reader.ts";
import { parseRunConfig } from "../cli/run.ts";
import { formatBytes } from "../cli/flags.ts";
import { DEFAULT_RCVBUF_BYTES } from "../ffi/source/connector.ts";
import { MAX_PENDING_BYTES } from "../lib/sink/line_writer.ts";
import { DEFAULT_GRACE_MS, DEFAULT_MAX_EXITED } from "../lib/tree/tree.ts";

const DEFAULTS: WatchConfig = {
  help: false,
  events: undefined,
  under: [],
  users: [],
  comms: [],
  threads: false,
  format: "json",
  chains: true,
  output: undefined,
  truncate: false,
  rotateBytes: 0,
  outputBufferBytes: MAX_PENDING_BYTES,
  statsMs: 0,
  rcvbufBytes: DEFAULT_RCVBUF_BYTES,
  backlogBytes: DEFAULT_BACKLOG_BYTES,
  realtime: false,
  execNames: "auto",
  execFacts: "auto",
  btfPath: undefined,
  argv: "proc",
  files: [],
  net: false,
  graceMs: DEFAULT_GRACE_MS,
  maxExited: DEFAULT_MAX_EXITED,
  quiet: false,
};

Deno.test("watch config: defaults", () => {
  assertEquals(parseWatchConfig([]), DEFAULTS);
});

Deno.test("watch config: every flag", () => {
  const c = parseWatchConfig([
    "--events=exec,exit",
    "--under",
    "sshd",
    "--under=/usr/bin/npm",
    "--under",
    "42",
    "--user",
    "root",
    "--user=1000",
    "--comm",
    "sh",
    "--threads",
    "--format",
    "text",
    "--no-chain",
    "-o",
    "/tmp/x.jsonl",
    "--truncate",
    "--rotate-bytes",
    "100M",
    "--output-buffer",
    "8M",
    "--stats",
    "60",
    "--rcvbuf",
    "32M",
    "--backlog",
    "0",
    "--realtime",
    "--exec-names",
    "proc",
    "--exec-facts",
    "proc",
    "--btf",
    "/tmp/vmlinux",
    "--argv",
    "audit",
    "--files",
    "/home",
    "--files",
    "/etc",
    "--net",
    "--grace",
    "5",
    "--max-exited",
    "7",
    "-q",
  ]);
  assertEquals(c, {
    help: false,
    events: new Set(["exec", "exit"] as const),
    under: ["sshd", "/usr/bin/npm", "42"],
    users: ["root", "1000"],
    comms: ["sh"],
    threads: true,
    format: "text",
    chains: false,
    output: "/tmp/x.jsonl",
    truncate: true,
    rotateBytes: 100 * 2 ** 20,
    outputBufferBytes: 8 * 2 ** 20,
    statsMs: 60_000,
    rcvbufBytes: 32 * 2 ** 20,
    backlogBytes: 0,
    realtime: true,
    execNames: "proc",
    execFacts: "proc",
    btfPath: "/tmp/vmlinux",
    argv: "audit",
    files: ["/home", "/etc"],
    net: true,
    graceMs: 5000,
    maxExited: 7,
    quiet: true,
  });
  assertEquals(parseWatchConfig(["-h"]).help, true);
});

const usage: [string[], string][] = [
  [["--events"], "--events expects a value"],
  [["--events", ""], "--events expects a value"],
  [["--events", ","], "no event named"],
  [["--events", "exec,bogus"], 'unknown event "bogus"'],
  [["--under"], "--under expects a value"],
  [["--under", ""], "--under expects a value"],
  [["--user"], "--user expects a value"],
  [["--comm", "a-name-of-sixteen"], "at most 15 bytes"],
  [["-o", ""], "--output expects a value"],
  [["--format", "xml"], "--format expects json, ecs or text"],
  [["--exec-names", "magic"], "--exec-names expects auto, fanotify, proc"],
  [["--exec-facts", "magic"], "--exec-facts expects auto, bpf, proc"],
  [["--argv", "kernel"], "--argv expects proc or audit"],
  [["--truncate"], "go with --output"],
  [["--rotate-bytes", "1M"], "go with --output"],
  [["--rcvbuf", "0"], `at least ${formatBytes(MIN_RCVBUF_BYTES)}`],
  [["--rcvbuf", "lots"], "expects a size"],
  [["--backlog", "1k"], `0 or at least ${formatBytes(MIN_BACKLOG_BYTES)}`],
  [["--backlog", "lots"], "--backlog expects a size"],
  [["--stats", "0"], "--stats expects a whole number ≥ 1"],
  [["--grace", "-1"], "--grace expects a whole number"],
  [["--max-exited", "0"], "--max-exited expects a whole number ≥ 1"],
  [["--nope"], "unknown option --nope"],
  [["extra"], "unexpected argument extra"],
];
for (const [args, message] of usage) {
  Deno.test(`watch config: ${JSON.stringify(args)} is a usage error`, () => {
    const e = assertThrows(() => parseWatchConfig(args), CliError, message);
    assertEquals(e.status, 2);
  });
}

Deno.test("run config: defaults and every flag", () => {
  assertEquals(parseRunConfig(["--", "sh", "-c", "exit 3"]), {
    help: false,
    command: ["sh", "-c", "exit 3"],
    json: false,
    output: undefined,
    summary: undefined,
    html: undefined,
    trace: undefined,
    waitOrphans: true,
    tree: true,
    realtime: true,
    rcvbufBytes: DEFAULT_RCVBUF_BYTES,
    backlogBytes: DEFAULT_BACKLOG_BYTES,
    execNames: "auto",
    execFacts: "auto",
    btfPath: undefined,
    argv: "proc",
    files: [],
    net: false,
    quiet: false,
  });
  assertEquals(
    parseRunConfig([
      "--json",
      "-o",
      "/tmp/o",
      "--summary",
      "/tmp/s.json",
      "--html",
      "/tmp/p.html",
      "--trace=/tmp/t.json",
      "--no-wait-orphans",
      "--no-tree",
      "--no-realtime",
      "--rcvbuf",
      "1M",
      "--backlog=8M",
      "--exec-names=fanotify",
      "--exec-facts=bpf",
      "--argv=audit",
      "--files",
      "src",
      "--net",
      "-q",
      "--",
      "make",
    ]),
    {
      help: false,
      command: ["make"],
      json: true,
      output: "/tmp/o",
      summary: "/tmp/s.json",
      html: "/tmp/p.html",
      trace: "/tmp/t.json",
      waitOrphans: false,
      tree: false,
      realtime: false,
      rcvbufBytes: 2 ** 20,
      backlogBytes: 8 * 2 ** 20,
      execNames: "fanotify",
      execFacts: "bpf",
      btfPath: undefined,
      argv: "audit",
      files: ["src"],
      net: true,
      quiet: true,
    },
  );
  assertEquals(parseRunConfig(["--help"]).help, true);
});

for (
  const [args, message] of [
    [[], "expects a command after --"],
    [["--summary"], "--summary expects a value"],
    [["--rcvbuf", "0", "--", "true"], "at least"],
    [["--bogus", "--", "true"], "unknown option --bogus"],
  ] as [string[], string][]
) {
  Deno.test(`run config: ${JSON.stringify(args)} is a usage error`, () => {
    const e = assertThrows(() => parseRunConfig(args), CliError, message);
    assertEquals(e.status, 2);
  });
}

Deno.test("listening line: the buffer asked for, or what the kernel granted when less", async () => {
  const { rcvbufNote } = await import("../cli/sources.ts");
  const { count } = await import("../lib/sink/text_view.ts");
  const note = (
    asked: number,
    granted: number,
    reader: { backlogBytes: number; nice: number } | null = null,
    readerNote: string | null = null,
  ) =>
    rcvbufNote({
      connector: { askedRcvbufBytes: asked, rcvbufBytes: granted, reader, readerNote },
    });
  assertEquals(note(16 * 2 ** 20, 32 * 2 ** 20), "rcvbuf 16M");
  assertEquals(
    note(16 * 2 ** 20, 425984),
    "rcvbuf 208k, less than the 16M asked: net.core.rmem_max caps it without CAP_NET_ADMIN",
  );
  assertEquals(
    note(2 ** 27, 2 ** 28, { backlogBytes: 2 ** 25, nice: -10 }),
    "rcvbuf 128M, reader thread (backlog 32M, nice -10)",
  );
  assertEquals(
    note(2 ** 27, 2 ** 28, { backlogBytes: 2 ** 25, nice: 0 }),
    "rcvbuf 128M, reader thread (backlog 32M)",
  );
  assertEquals(
    note(2 ** 27, 2 ** 28, null, "eventfd: EMFILE"),
    "rcvbuf 128M, no reader thread (eventfd: EMFILE)",
  );
  assertEquals([count(1, "process"), count(4, "process")], ["1 process", "4 processes"]);
});
