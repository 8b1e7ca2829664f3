import { assertEquals } from "@std/assert";
import { changeText, PathHistory, touches } from "../lib/report/path_history.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const line = (r: Partial<WatchRecord>) =>
  JSON.stringify({ event: "file", time: "2026-12-04T10:00:00.000000Z", pid: 7, ...r });

Deno.test("path history: a path and what is under it, a rename by either side", () => {
  const f = (path: string, to?: string) => ({ event: "file", path, to }) as WatchRecord;
  assertEquals(touches(f("/etc/ssh/sshd_config"), "/etc/ssh"), true);
  assertEquals(touches(f("/etc/ssh"), "/etc/ssh"), true);
  assertEquals(touches(f("/etc/sshd"), "/etc/ssh"), false); // a sibling with the same start
  assertEquals(touches(f("/tmp/x", "/etc/ssh/x"), "/etc/ssh"), true);
  assertEquals(touches(f("/anything"), "/"), true);
  assertEquals(touches({ event: "exec", path: "/etc/ssh" } as WatchRecord, "/etc/ssh"), false);
});

Deno.test("path history: changes and gaps in the window, as text or the log's lines", () => {
  const log = [
    line({
      action: "create",
      path: "/w/a",
      comm: "touch",
      exe: "/usr/bin/touch",
      chain: "7|touch|root",
    }),
    line({ action: "create", path: "/other/b", comm: "touch" }),
    JSON.stringify({
      event: "lost",
      time: "2026-12-04T10:00:01.000000Z",
      count: null,
      reason: "files_overflow",
    }),
    "not json",
    line({
      time: "2026-12-04T10:00:02.000000Z",
      action: "rename",
      path: "/w/a",
      to: "/w/b",
      comm: null,
    }),
    line({ time: "2026-12-04T11:00:00.000000Z", action: "delete", path: "/w/b", comm: "rm" }),
  ];
  const out: string[] = [];
  const h = new PathHistory(
    { path: "/w", untilUs: Date.parse("2026-12-04T10:30:00Z") * 1000 },
    false,
    (l) => out.push(l),
  );
  for (const l of log) h.line(l);
  assertEquals(out, [
    "2026-12-04T10:00:00.000000Z  create  /w/a  by 7 touch /usr/bin/touch  7|touch|root",
    "2026-12-04T10:00:01.000000Z  (some events lost: files_overflow; changes may be missing)",
    "2026-12-04T10:00:02.000000Z  rename  /w/a → /w/b  by 7 (process not known)",
  ]);
  assertEquals(h.counts, { lines: 6, changes: 2, gaps: 1, malformed: 1 });
  const json: string[] = [];
  const j = new PathHistory({ path: "/w/b" }, true, (l) => json.push(l));
  for (const l of log) j.line(l);
  assertEquals(json, [log[2], log[4], log[5]]);
});

Deno.test("path history: a directory's line says so", () => {
  const rec = JSON.parse(line({ action: "delete", path: "/w/d", dir: true, comm: "rm" }));
  assertEquals(changeText(rec), "2026-12-04T10:00:00.000000Z  delete (dir)  /w/d  by 7 rm");
});
