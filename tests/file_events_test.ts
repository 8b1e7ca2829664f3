// File changes without root (lib/source/fanotify_wire.ts FID records, lib/source/files/events.ts): byte
// fixtures for the info records, synthetic events for the directory cache.
import { assertEquals } from "@std/assert";
import {
  decodeFidEvents,
  FAN_EVENT,
  FAN_INFO,
  type FanHandle,
  type FidEvent,
} from "../lib/source/fanotify_wire.ts";
import { type FileChange, FileEvents, PATH_TOO_LONG } from "../lib/source/files/events.ts";
import { toEcs } from "../lib/sink/ecs.ts";
import type { WatchRecord } from "../lib/record/record.ts";

const enc = new TextEncoder();

/** One info record: header, fsid, file_handle (type 1, `handle`), then `name` and NUL. */
function info(type: number, handle: number[], name?: string): number[] {
  const nameBytes = name === undefined ? [] : [...enc.encode(name), 0];
  const body = [
    ...[1, 0, 0, 0, 2, 0, 0, 0], // fsid
    ...[handle.length, 0, 0, 0, 1, 0, 0, 0], // handle_bytes, handle_type
    ...handle,
    ...nameBytes,
  ];
  let len = 4 + body.length;
  const pad = (4 - (len % 4)) % 4;
  len += pad;
  return [type, 0, len & 0xff, len >> 8, ...body, ...new Array(pad).fill(0)];
}

function event(mask: number, pid: number, infos: number[][]): number[] {
  const rest = infos.flat();
  const len = 24 + rest.length;
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint32(0, len, true);
  v.setUint8(4, 3);
  v.setUint16(6, 24, true);
  v.setUint32(8, mask, true);
  v.setInt32(16, -1, true);
  v.setInt32(20, pid, true);
  return [...b, ...rest];
}

Deno.test("FID events: directory + name, a rename's two sides, the object's own handle", () => {
  const bytes = new Uint8Array([
    ...event(FAN_EVENT.CREATE, 7, [
      info(FAN_INFO.DFID_NAME, [1, 2, 3, 4], "a b"),
      info(FAN_INFO.FID, [9, 9, 9, 9]),
    ]),
    ...event(FAN_EVENT.RENAME | FAN_EVENT.ONDIR, 8, [
      info(FAN_INFO.OLD_DFID_NAME, [1, 2, 3, 4], "old"),
      info(FAN_INFO.NEW_DFID_NAME, [5, 6, 7, 8], "new"),
    ]),
  ]);
  const out: FidEvent[] = [];
  assertEquals(decodeFidEvents(new DataView(bytes.buffer), bytes.length, out), bytes.length);
  assertEquals(out.length, 2);
  assertEquals(out[0].pid, 7);
  assertEquals(out[0].dir?.key, "0100000002000000:0100000001020304");
  assertEquals(new TextDecoder().decode(out[0].name!), "a b");
  assertEquals(out[0].self?.key, "0100000002000000:0100000009090909");
  assertEquals(out[0].dir?.bytes, new Uint8Array([4, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4]));
  assertEquals(new TextDecoder().decode(out[1].name!), "old");
  assertEquals(new TextDecoder().decode(out[1].newName!), "new");
  assertEquals(out[1].newDir?.key, "0100000002000000:0100000005060708");
  // A truncated buffer stops at the last whole event.
  assertEquals(
    decodeFidEvents(new DataView(bytes.buffer), bytes.length - 1, []) < bytes.length,
    true,
  );
});

const h = (key: string): FanHandle => ({ key, bytes: new Uint8Array() });
const ev = (mask: number, dir: string | null, name: string | null, pid = 10): FidEvent => ({
  mask,
  pid,
  dir: dir === null ? null : h(dir),
  name: name === null ? null : enc.encode(name),
  newDir: null,
  newName: null,
  self: null,
});

/** A directory's rename event: from `dir`/`name` to `newDir`/`newName`, its handle `self`. */
const dirRename = (dir: string, name: string, newDir: string, newName: string, self?: string) => ({
  ...ev(FAN_EVENT.RENAME | FAN_EVENT.ONDIR, dir, name),
  newDir: h(newDir),
  newName: enc.encode(newName),
  self: self === undefined ? null : h(self),
});

/** `listing`: what a walk of a directory (by path) finds, as `[path, dir]`. */
function setup(
  lookup: Record<string, string> = {},
  listing: Record<string, [string, boolean][]> = {},
) {
  const walked: string[] = [];
  const fe = new FileEvents(["/w"], {
    pathOf: (x) => lookup[x.key] ?? null,
    newDir: (p, self, list) => {
      walked.push(`${p} ${self.key}`);
      for (const [q, dir] of listing[p] ?? []) list?.(q, dir);
      return true;
    },
  }, 1);
  fe.addDir("root", "/w");
  const out: FileChange[] = [];
  return { fe, out, walked };
}

Deno.test("file events: merged bits in order, directories remembered, deletes keep paths", () => {
  const { fe, out, walked } = setup();
  fe.handle({ ...ev(FAN_EVENT.CREATE | FAN_EVENT.ONDIR, "root", "d"), self: h("dkey") }, out);
  fe.handle(ev(FAN_EVENT.CREATE | FAN_EVENT.CLOSE_WRITE | FAN_EVENT.ATTRIB, "dkey", "f"), out);
  fe.handle(ev(FAN_EVENT.DELETE, "dkey", "f"), out);
  fe.handle(ev(FAN_EVENT.DELETE | FAN_EVENT.ONDIR, "root", "d"), out);
  fe.handle(ev(FAN_EVENT.ATTRIB, null, null), out); // link count of an unlinked file
  fe.handle(ev(FAN_EVENT.CREATE, "root", "mine", 1), out); // proctree's own
  assertEquals(out.map((c) => [c.action, c.path, c.dir]), [
    ["create", "/w/d", true],
    ["create", "/w/d/f", false],
    ["attrib", "/w/d/f", false],
    ["write", "/w/d/f", false],
    ["delete", "/w/d/f", false],
    ["delete", "/w/d", true],
  ]);
  assertEquals(walked, ["/w/d dkey"]); // walked from the event's own handle
  assertEquals(fe.size, 1); // /w/d forgotten
  assertEquals(fe.stats.unnamed, 0);
});

Deno.test("file events: a directory renamed carries what is known below it", () => {
  const { fe, out } = setup();
  fe.addDir("a", "/w/a");
  fe.addDir("ab", "/w/a/b");
  fe.handle(dirRename("root", "a", "root", "z"), out);
  fe.handle(ev(FAN_EVENT.CREATE, "ab", "f"), out);
  assertEquals(out.map((c) => [c.action, c.path, c.to]), [
    ["rename", "/w/a", "/w/z"],
    ["create", "/w/z/b/f", undefined],
  ]);
});

Deno.test("file events: outside the watched paths nothing is reported, and looked up once", () => {
  const { fe, out } = setup({ other: "/elsewhere", inside: "/w/late" });
  fe.handle(ev(FAN_EVENT.CREATE, "other", "x"), out);
  fe.handle(ev(FAN_EVENT.CREATE, "other", "y"), out);
  fe.handle(ev(FAN_EVENT.CREATE, "inside", "z"), out); // a directory not walked: looked up
  assertEquals(out, [], "held until the queue is read empty");
  fe.settle(out);
  assertEquals(out.map((c) => c.path), ["/w/late/z"]);
  assertEquals(fe.stats.lookups, 2);
  // Moved in from outside: both sides named, the directory walked.
  const moved: FileChange[] = [];
  const { fe: fe2, walked } = setup({ other: "/elsewhere" });
  fe2.handle(dirRename("other", "d", "root", "d", "dkey"), moved);
  assertEquals(moved.map((c) => [c.path, c.to, c.namedAtRead]), [
    ["/elsewhere/d", "/w/d", "path"],
  ]);
  assertEquals(walked, ["/w/d dkey"]);
});

Deno.test("file events: a directory filled outside, then moved in — its contents found, not made inside", () => {
  // Read after the move: the lookup of the directory the files were made in says /w/m.
  const { fe, out } = setup({ mkey: "/w/m", other: "/elsewhere" }, {
    "/w/m": [["/w/m/sub", true], ["/w/m/sub/f", false]],
  });
  fe.handle(ev(FAN_EVENT.CREATE | FAN_EVENT.ONDIR, "mkey", "sub"), out); // made outside
  fe.handle(ev(FAN_EVENT.CREATE, "subkey", "f"), out); // not known: looked up as outside
  fe.handle(dirRename("other", "m", "root", "m", "mkey"), out);
  fe.handle(ev(FAN_EVENT.CREATE, "mkey", "g"), out); // made inside, after the move
  fe.settle(out);
  assertEquals(out.map((c) => [c.action, c.path, c.to, c.found]), [
    ["rename", "/elsewhere/m", "/w/m", 2],
    ["found", "/w/m/sub", undefined, undefined],
    ["found", "/w/m/sub/f", undefined, undefined],
    ["create", "/w/m/g", undefined, undefined],
  ]);
  assertEquals(fe.stats.outsideThen, 1);
});

Deno.test("file events: a directory the walk missed while it moved is listed when its rename comes", () => {
  // In /elsewhere/m/x/y a file was made; then m moved in, and y moved up while m was walked.
  const { fe, out, walked } = setup({ ykey: "/w/m/x/y", other: "/elsewhere" }, {
    "/w/m": [["/w/m/x", true]], // y was in neither x nor m when they were read
    "/w/m/y": [["/w/m/y/g", false]],
  });
  fe.handle(ev(FAN_EVENT.CREATE, "ykey", "g"), out); // looked up inside: /w/m/x/y
  fe.handle(dirRename("other", "m", "root", "m", "mkey"), out);
  fe.addDir("xkey", "/w/m/x", true); // the walk's
  fe.handle(dirRename("xkey", "y", "mkey", "y", "ykey"), out);
  fe.settle(out);
  assertEquals(walked, ["/w/m mkey", "/w/m/y ykey"]);
  assertEquals(out.map((c) => [c.action, c.path, c.to, c.found]), [
    ["rename", "/elsewhere/m", "/w/m", 1],
    ["found", "/w/m/x", undefined, undefined],
    ["rename", "/w/m/x/y", "/w/m/y", 1],
    ["found", "/w/m/y/g", undefined, undefined],
  ]);
  assertEquals(fe.stats.outsideThen, 1); // g was made outside, before the move
  // The same when y is known from its own mkdir, named through a lookup of x.
  const { fe: fe2, out: out2, walked: walked2 } = setup({ xkey: "/w/m/x", other: "/elsewhere" }, {
    "/w/m": [["/w/m/x", true]],
    "/w/m/y": [["/w/m/y/g", false]],
  });
  fe2.handle({ ...ev(FAN_EVENT.CREATE | FAN_EVENT.ONDIR, "xkey", "y"), self: h("ykey") }, out2);
  fe2.handle(dirRename("other", "m", "root", "m", "mkey"), out2);
  fe2.handle(dirRename("xkey", "y", "mkey", "y", "ykey"), out2);
  fe2.settle(out2);
  assertEquals(walked2.slice(-1), ["/w/m/y ykey"]);
  assertEquals(out2.map((c) => [c.action, c.path]).slice(-2), [
    ["rename", "/w/m/x/y"],
    ["found", "/w/m/y/g"],
  ]);
});

Deno.test("file events: a change named through a lookup is put back by the renames after it", () => {
  const { fe, out } = setup({ ukey: "/w/b/u" });
  fe.addDir("akey", "/w/a");
  fe.handle(ev(FAN_EVENT.CREATE, "ukey", "f"), out); // made in /w/a/u; read after a → b
  fe.handle(dirRename("root", "a", "root", "b", "akey"), out);
  fe.handle(ev(FAN_EVENT.CREATE, "ukey", "g"), out); // made after the rename
  fe.settle(out);
  assertEquals(out.map((c) => [c.action, c.path, c.to]), [
    ["create", "/w/a/u/f", undefined],
    ["rename", "/w/a", "/w/b"],
    ["create", "/w/b/u/g", undefined],
  ]);
  // Not sure (the queue never read empty, or an overflow): counted, never guessed.
  const { fe: fe2, out: out2 } = setup({ ukey: "/w/b/u" });
  fe2.handle(ev(FAN_EVENT.CREATE, "ukey", "f"), out2);
  fe2.settle(out2, false);
  assertEquals([out2.length, fe2.stats.unnamed], [0, 1]);
});

Deno.test("ECS: a file change is a file event, with the path after the change", () => {
  const rec: WatchRecord = {
    event: "file",
    time: "2026-11-29T00:00:00.000000Z",
    action: "rename",
    path: "/w/a b",
    to: "/w/sub/c",
    pid: 5,
    comm: "mv",
    user: "root",
    chain: "5|mv|root",
  };
  const d = toEcs(rec, null, "h") as Record<string, Record<string, unknown>>;
  assertEquals(d.event.category, ["file"]);
  assertEquals(d.event.type, ["change"]);
  assertEquals(d.event.action, "file-rename");
  assertEquals(d.event.dataset, "proctree.file");
  // fanotify does not say whether a non-directory is a file or a symlink: no type.
  assertEquals(d.file, { path: "/w/sub/c", name: "c", directory: "/w/sub" });
  assertEquals(d.proctree.original_path, "/w/a b");
  assertEquals(d.process.name, "mv");
  const del = toEcs({ ...rec, action: "delete", to: undefined, dir: true }, null, "h") as Record<
    string,
    Record<string, unknown>
  >;
  assertEquals(del.event.type, ["deletion"]);
  assertEquals(del.file.type, "dir");
  assertEquals(del.proctree.original_path, undefined);
  const merged = toEcs(
    { ...rec, action: "create", to: undefined, merged: true },
    null,
    "h",
  ) as Record<
    string,
    Record<string, unknown>
  >;
  assertEquals(merged.proctree.merged, true);
  // A moved-in directory's listing: an entry found, not a change; the rename says how many.
  type Doc = Record<string, Record<string, unknown>>;
  const found = toEcs({ ...rec, action: "found", to: undefined }, null, "h") as Doc;
  assertEquals([found.event.type, found.file.path], [["info"], "/w/a b"]);
  const moved = toEcs({ ...rec, found: 3, named_at_read: "path" }, null, "h") as Doc;
  assertEquals([moved.proctree.found, moved.proctree.named_at_read], [3, "path"]);
});

Deno.test("file events: a directory whose path is too long to spell is unnamed, not outside", () => {
  const { fe, out } = setup({ deep: PATH_TOO_LONG, elsewhere: "/etc" });
  fe.handle(ev(FAN_EVENT.CREATE, "deep", "f"), out);
  fe.handle(ev(FAN_EVENT.CREATE, "deep", "g"), out); // asked again: never remembered as outside
  fe.handle(ev(FAN_EVENT.CREATE, "elsewhere", "h"), out); // outside: not a change, not counted
  assertEquals(out, []);
  assertEquals(fe.stats.unnamed, 2);
});

Deno.test("file events: a directory created without its handle is not walked by its path", () => {
  const { fe, out, walked } = setup({ late: "/w/d" });
  fe.handle(ev(FAN_EVENT.CREATE | FAN_EVENT.ONDIR, "root", "d"), out);
  assertEquals(walked, []); // by now /w/d may be another directory, or a symlink
  fe.handle(ev(FAN_EVENT.CREATE, "late", "f"), out); // named by its own handle when it comes
  fe.settle(out); // a lookup's: once the queue was read empty
  assertEquals(out.map((c) => c.path), ["/w/d", "/w/d/f"]);
});

Deno.test("file events: a create and a delete merged by the kernel are said to be", () => {
  const { fe, out } = setup();
  fe.handle(ev(FAN_EVENT.CREATE | FAN_EVENT.CLOSE_WRITE | FAN_EVENT.DELETE, "root", "x"), out);
  fe.handle(ev(FAN_EVENT.CREATE | FAN_EVENT.CLOSE_WRITE, "root", "y"), out);
  assertEquals(out.map((c) => [c.action, c.path, c.merged]), [
    ["create", "/w/x", true],
    ["write", "/w/x", undefined],
    ["delete", "/w/x", true],
    ["create", "/w/y", undefined],
    ["write", "/w/y", undefined],
  ]);
});
