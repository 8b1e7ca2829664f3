import { assertEquals } from "@std/assert";
import { replayFiles } from "../lib/source/files/replay.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const f = (action: string, path: string, to?: string): WatchRecord =>
  ({ event: "file", time: "t", action, path, to }) as WatchRecord;

Deno.test("file replay: creates, renames of trees, deletes; moved in and out", () => {
  const r = replayFiles([
    f("create", "/w/a"),
    f("create", "/w/a/b"),
    f("write", "/w/a/b"),
    f("rename", "/w/a", "/w/z"), // a tree moves whole
    f("create", "/w/t"),
    f("rename", "/w/t", "/w/z/b"), // an atomic replace
    f("rename", "/elsewhere/d", "/w/d"), // moved in
    f("rename", "/w/z", "/elsewhere/z"), // moved out
    f("create", "/w/x"),
    f("delete", "/w/x"),
  ], "/w");
  assertEquals([...r.paths].sort(), ["/w/d"]);
  assertEquals(r.impossible, 0);
});

Deno.test("file replay: what cannot have happened is counted", () => {
  const lines = [
    f("create", "/w/a"),
    f("create", "/w/a"), // twice
    f("delete", "/w/nothing"),
    f("rename", "/w/gone", "/w/y"),
  ];
  const r = replayFiles(lines, "/w");
  assertEquals(r.impossible, 3);
  assertEquals(r.examples, lines.slice(1));
});

Deno.test("file replay: a directory moved in with what its walk found; changes it had seen are raced", () => {
  const r = replayFiles([
    { ...f("rename", "/elsewhere/m", "/w/m"), found: 3 },
    f("found", "/w/m/x"),
    f("found", "/w/m/x/h"), // the walk ran after h was made…
    f("found", "/w/m/y"), // …and after y moved up
    f("create", "/w/m/x/h"), // raced: already found
    f("delete", "/w/m/x/f"), // raced: made and removed before the walk
    f("rename", "/w/m/x/y", "/w/m/y"), // raced: the walk found it moved
    f("create", "/w/m/y/g"),
    { ...f("rename", "/elsewhere/n", "/w/n"), found: 1, found_cut: true },
    f("create", "/w/other"),
    f("create", "/w/other"), // impossible: not below a moved-in directory
  ], "/w");
  assertEquals([...r.paths].sort(), [
    "/w/m",
    "/w/m/x",
    "/w/m/x/h",
    "/w/m/y",
    "/w/m/y/g",
    "/w/n",
    "/w/other",
  ]);
  assertEquals([r.raced, r.impossible, r.cut], [3, 1, 1]);
});
