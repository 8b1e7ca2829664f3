import { assert, assertEquals } from "@std/assert";
import type { SubtreeEntry } from "../lib/report/subtree.ts";
import { escapeHtml, outcomeOf, pageRows, renderHtml } from "../lib/report/html.ts";
import { isoToUs } from "../lib/time.ts";
import { traceOf } from "../lib/report/trace.ts";
import { LogSubtrees } from "../lib/report/log_subtree.ts";
import { parseReportConfig } from "../cli/report.ts";
import { CliError } from "../cli/errors.ts";
import { HOSTILE } from "./fixtures.ts";

function entry(
  pid: number,
  argv: string[] | null,
  startMs: number,
  endMs: number | null,
  exit: number | null,
  children: SubtreeEntry[] = [],
): SubtreeEntry {
  const iso = (ms: number) =>
    new Date(Date.UTC(2026, 10, 29, 12) + ms).toISOString().replace("Z", "000Z");
  return {
    pid,
    ppid: null,
    comm: argv?.[0] ?? null,
    argv,
    exe: argv ? `/usr/bin/${argv[0]}` : null,
    user: "root",
    start: iso(startMs),
    end: endMs === null ? null : iso(endMs),
    exit_code: exit,
    signal: null,
    children,
  };
}

/** A tree: make → (cc ok, cc failed, <hostile> killed, unknown). */
export function sampleTree(): SubtreeEntry {
  const killed = entry(13, [HOSTILE], 30, 40, null);
  killed.signal = "SIGKILL";
  return entry(10, ["make", "-j2"], 0, 100, 2, [
    entry(11, ["cc", "a.c"], 5, 50, 0),
    entry(12, ["cc", "b.c"], 6, 60, 1),
    killed,
    entry(14, null, 70, 71, 0),
  ]);
}

Deno.test("report: times, outcomes and lineage order", () => {
  assertEquals(
    isoToUs("2026-11-29T12:00:00.000250Z") - isoToUs("2026-11-29T12:00:00.000000Z"),
    250,
  );
  const rows = pageRows([sampleTree()]);
  assertEquals(rows.map((r) => [r.pid, r.depth, r.parent]), [[10, 0, -1], [11, 1, 0], [12, 1, 0], [
    13,
    1,
    0,
  ], [14, 1, 0]]);
  assertEquals(rows.map((r) => r.outcome), ["nonzero", "ok", "nonzero", "killed", "unknown-name"]);
  assertEquals([rows[1].start, rows[1].end], [5000, 50000]);
  assertEquals(outcomeOf(entry(1, ["x"], 0, null, null)), "unknown-end");
});

Deno.test("report: the page has one data-pid row per process, escapes names, and loads nothing", () => {
  const html = renderHtml({
    title: `make ${HOSTILE}`,
    exitStatus: 2,
    totals: { processes: 5, failed: 2, killed: 1, lost_events: 0 },
    roots: [sampleTree()],
  }, "n0nce");
  assertEquals(html.match(/ data-pid="/g)?.length, 5);
  assert(!html.includes(HOSTILE), "the name never appears as markup");
  assert(html.includes(escapeHtml(HOSTILE)));
  assert(html.includes("\\u003cimg src=x"), "and is escaped inside the JSON data");
  assert(html.includes(`content="default-src 'none'; script-src 'nonce-n0nce'`));
  assert(!/\b(src|href)=["']?(https?:|\/\/)/i.test(html), "no outside resource");
  assertEquals(html.match(/<script nonce="n0nce">/g)?.length, 1);
});

Deno.test("trace: one complete event per process, with lineage flows", () => {
  const doc = traceOf([sampleTree()]);
  const complete = doc.traceEvents.filter((e) => e.ph === "X");
  assertEquals(complete.length, 5);
  for (const e of complete) {
    assert(typeof e.name === "string" && e.ts! >= 0 && e.dur! >= 0 && e.pid > 0 && e.tid > 0);
  }
  assertEquals(complete.map((e) => e.args!.pid), [10, 11, 12, 13, 14]);
  assertEquals(doc.traceEvents.filter((e) => e.ph === "s").length, 4);
  assertEquals(JSON.parse(JSON.stringify(doc)).displayTimeUnit, "ms");
});

function logLines(): string[] {
  const rec = (o: Record<string, unknown>) => JSON.stringify({ user: "root", ...o });
  return [
    rec({
      event: "fork",
      time: "2026-11-29T12:00:00.000000Z",
      pid: 10,
      ppid: 1,
      comm: "bash",
      id: "b.1.a",
      parent_id: "b.0.1",
      start_time: "2026-11-29T12:00:00.000000Z",
    }),
    rec({
      event: "exec",
      time: "2026-11-29T12:00:00.001000Z",
      pid: 10,
      ppid: 1,
      comm: "sshd",
      argv: ["sshd"],
      exe: "/usr/sbin/sshd",
      id: "b.1.a",
      parent_id: "b.0.1",
      start_time: "2026-11-29T12:00:00.000000Z",
    }),
    rec({
      event: "fork",
      time: "2026-11-29T12:00:01.000000Z",
      pid: 11,
      ppid: 10,
      comm: "sshd",
      id: "b.2.b",
      parent_id: "b.1.a",
      start_time: "2026-11-29T12:00:01.000000Z",
    }),
    "not json",
    rec({
      event: "exec",
      time: "2026-11-29T12:00:01.100000Z",
      pid: 11,
      ppid: 10,
      comm: "ls",
      argv: ["ls", HOSTILE],
      exe: "/usr/bin/ls",
      id: "b.2.b",
      parent_id: "b.1.a",
      start_time: "2026-11-29T12:00:01.000000Z",
    }),
    rec({
      event: "exit",
      time: "2026-11-29T12:00:01.200000Z",
      pid: 11,
      ppid: 10,
      comm: "ls",
      exit_code: 2,
      signal: null,
      id: "b.2.b",
      parent_id: "b.1.a",
      start_time: "2026-11-29T12:00:01.000000Z",
    }),
    rec({ event: "lost", time: "2026-11-29T12:00:02.000000Z", count: 3, reason: "overrun" }),
    // pid 11 again, a new process: joined by id, not by pid.
    rec({
      event: "fork",
      time: "2026-11-29T12:00:03.000000Z",
      pid: 11,
      ppid: 1,
      comm: "cron",
      id: "b.3.b",
      parent_id: "b.0.1",
      start_time: "2026-11-29T12:00:03.000000Z",
    }),
    rec({ event: "exec", time: "2026-11-29T12:00:03.000000Z", pid: 12, comm: "old" }), // no id
  ];
}

Deno.test("report from a log: joined by id, windowed, under a name, bounded", () => {
  const all = new LogSubtrees();
  for (const l of logLines()) all.line(l);
  const r = all.finish();
  assertEquals(r.roots.map((e) => e.pid), [10, 11]);
  assertEquals(r.roots[0].children.map((e) => [e.pid, e.argv, e.exit_code]), [[
    11,
    ["ls", HOSTILE],
    2,
  ]]);
  assertEquals(r.totals, { processes: 3, failed: 1, killed: 0, lost_events: 3 });
  assertEquals([r.malformed, r.withoutId], [1, 1]);

  const under = new LogSubtrees({ under: ["sshd"] });
  for (const l of logLines()) under.line(l);
  assertEquals(under.finish().totals.processes, 2);

  const window = new LogSubtrees({ sinceUs: isoToUs("2026-11-29T12:00:02.500000Z") });
  for (const l of logLines()) window.line(l);
  assertEquals(window.finish().roots.map((e) => e.comm), ["cron"]);

  const bounded = new LogSubtrees({ maxProcesses: 2 });
  for (const l of logLines()) bounded.line(l);
  const b = bounded.finish();
  assertEquals([b.totals.processes, b.leftOut], [2, 1]);
});

Deno.test("report config: the log, at least one output, times checked", () => {
  const c = parseReportConfig([
    "log.jsonl",
    "--html",
    "p.html",
    "--since",
    "2026-11-29T09:00:00Z",
    "--under",
    "sshd",
  ]);
  assertEquals([c.log, c.html, c.under, c.sinceUs], [
    "log.jsonl",
    "p.html",
    ["sshd"],
    Date.parse("2026-11-29T09:00:00Z") * 1000,
  ]);
  const p = parseReportConfig(["log.jsonl", "--path", "/etc/ssh/", "--json"]);
  assertEquals([p.path, p.json, p.html], ["/etc/ssh", true, undefined]);
  for (
    const [args, message] of [
      [["--html", "p.html"], "expects one log file"],
      [["log.jsonl"], "give --html FILE, --trace FILE or --path PATH"],
      [["log.jsonl", "--path", "/etc", "--html", "p"], "does not go with --html"],
      [["log.jsonl", "--html", "p", "--json"], "--json goes with --path"],
      [
        ["log.jsonl", "--html", "p", "--since", "yesterday-ish"],
        "--since expects an ISO 8601 time",
      ],
    ] as const
  ) {
    try {
      parseReportConfig([...args]);
      throw new Error(`accepted ${args.join(" ")}`);
    } catch (e) {
      assert(e instanceof CliError && e.message.includes(message) && e.status === 2, String(e));
    }
  }
});

Deno.test("report from a log: a parent_id loop is cut and said, no process lost", () => {
  const a = new LogSubtrees();
  const fork = (pid: number, id: string, parent: string) =>
    JSON.stringify({
      event: "fork",
      time: "2026-11-29T12:00:00.000000Z",
      pid,
      ppid: 1,
      comm: "p" + pid,
      id,
      parent_id: parent,
    });
  // 1 is a root with child 2; 3 and 4 are each other's parent; 5 hangs below the loop.
  for (const l of [fork(1, "x.1", "x.0"), fork(2, "x.2", "x.1")]) a.line(l);
  for (const l of [fork(3, "x.3", "x.4"), fork(4, "x.4", "x.3"), fork(5, "x.5", "x.4")]) a.line(l);
  const r = a.finish();
  assertEquals(r.cycles, 2);
  assertEquals(r.totals.processes, 5);
  assertEquals(r.roots.map((e) => [e.pid, e.parent_cycle ?? false]), [[1, false], [3, true]]);
  assertEquals(pageRows(r.roots).map((row) => row.name), [
    "[p1]",
    "[p2]",
    "↻ [p3]",
    "[p4]",
    "[p5]",
  ]);
});
