import { assertEquals } from "@std/assert";
import { type EcsHost, parseOsRelease, toEcs } from "../lib/sink/ecs.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import type { ProcNode } from "../lib/tree/tree.ts";

const HOST: EcsHost = {
  hostname: "box",
  id: "3d1219c7c4c5404aaa1f6d2a48adfda4",
  architecture: "x86_64",
  kernel: "6.18.44",
  os: parseOsRelease(`PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
`),
};

function node(pid: number, exe: string | null, argv: string[] | null, parent: ProcNode | null) {
  return {
    pid,
    ppid: parent?.pid ?? 0,
    parent,
    children: null,
    startNs: null,
    startTicks: null,
    comm: exe ? exe.slice(exe.lastIndexOf("/") + 1, exe.lastIndexOf("/") + 16) : null,
    argv,
    exe,
    script: null,
    uid: 0,
    cwd: null,
    loginUid: null,
    container: undefined,
    alive: true,
    exitStatus: null,
    exitNs: null,
    expired: false,
  } satisfies ProcNode;
}

// deno-lint-ignore no-explicit-any
type Any = any;
const T = "2026-12-04T06:00:00.000000Z";
const shell = node(10, "/usr/bin/bash", ["bash", "-c", "nc -l 4444"], null);
const nc = node(11, "/usr/bin/netcat.traditional", ["nc", "-l", "4444"], shell);

Deno.test("ecs: host.* names the machine as Elastic's agents do", () => {
  const d: Any = toEcs({ event: "exec", time: T, pid: 11, ppid: 10 }, nc, HOST, shell);
  assertEquals(d.host, {
    hostname: "box",
    name: "box",
    id: "3d1219c7c4c5404aaa1f6d2a48adfda4",
    architecture: "x86_64",
    os: {
      type: "linux",
      kernel: "6.18.44",
      name: "Debian GNU/Linux",
      version: "12",
      platform: "debian",
      family: "debian",
      full: "Debian GNU/Linux 12 (bookworm)",
    },
  });
  assertEquals(toEcs({ event: "exec", time: T }, null, "h").host, {
    hostname: "h",
    name: "h",
    os: { type: "linux" },
  });
});

Deno.test("ecs: process.name is the executable's name; the parent comes from the tree", () => {
  const rec: WatchRecord = {
    event: "exec",
    time: T,
    pid: 11,
    ppid: 10,
    comm: "netcat.traditio",
    argv: ["nc", "-l", "4444"],
    exe: "/usr/bin/netcat.traditional",
  };
  const d: Any = toEcs(rec, nc, HOST, shell);
  assertEquals(d.process.name, "netcat.traditional");
  assertEquals(d.process.command_line, "nc -l 4444");
  assertEquals(d.process.args_count, 3);
  assertEquals(d.process.parent, {
    pid: 10,
    name: "bash",
    executable: "/usr/bin/bash",
    args: ["bash", "-c", "nc -l 4444"],
    args_count: 3,
    command_line: "bash -c nc -l 4444",
  });
  // A parent that is not the one on the line (ppid changed) is never described.
  const other: Any = toEcs({ ...rec, ppid: 1 }, nc, HOST, shell);
  assertEquals(other.process.parent, { pid: 1 });
  // Without an executable, the comm.
  assertEquals((toEcs({ ...rec, exe: null }, null, HOST) as Any).process.name, "netcat.traditio");
});

Deno.test("ecs: a thread's start and end are not a process's", () => {
  const start: Any = toEcs({ event: "fork", time: T, pid: 11, tid: 12, ppid: 10 }, nc, HOST);
  assertEquals([start.event.type, start.event.action], [["info"], "thread_start"]);
  const end: Any = toEcs(
    { event: "exit", time: T, pid: 11, tid: 12, exit_code: 0, signal: null },
    nc,
    HOST,
  );
  assertEquals([end.event.type, end.event.action], [["info"], "thread_end"]);
  assertEquals([end.process.exit_code, end.process.end], [undefined, undefined]);
  const proc: Any = toEcs(
    { event: "exit", time: T, pid: 11, exit_code: 0, signal: null },
    nc,
    HOST,
  );
  assertEquals([proc.event.type, proc.event.action, proc.process.exit_code], [["end"], "exit", 0]);
});

Deno.test("ecs: a process killed by a signal has the shell's exit code, 128 + signal", () => {
  const d: Any = toEcs(
    { event: "exit", time: T, pid: 11, exit_code: null, signal: "SIGKILL" },
    nc,
    HOST,
  );
  assertEquals([d.process.exit_code, d.proctree.signal], [137, "SIGKILL"]);
});

Deno.test("ecs: id changes use ECS's user and group fields and Elastic's action names", () => {
  const uid: Any = toEcs({ event: "uid", time: T, pid: 11, real: 1000, effective: 0 }, nc, HOST);
  assertEquals(uid.event.action, "uid_change");
  assertEquals([uid.process.real_user.id, uid.process.user.id], ["1000", "0"]);
  const gid: Any = toEcs({ event: "gid", time: T, pid: 11, real: 100, effective: 27 }, nc, HOST);
  assertEquals(gid.event.action, "gid_change");
  assertEquals([gid.process.real_group.id, gid.process.group.id], ["100", "27"]);
  assertEquals([gid.proctree?.real, gid.proctree?.effective], [undefined, undefined]);
  assertEquals(
    (toEcs({ event: "sid", time: T, pid: 11 }, nc, HOST) as Any).event.action,
    "session_id_change",
  );
});

Deno.test("ecs: proctree's own lines have a category; a file that is not a directory has no type", () => {
  const lost: Any = toEcs({ event: "lost", time: T, count: 3, reason: "overrun" }, null, HOST);
  assertEquals([lost.event.kind, lost.event.category, lost.event.type], ["event", ["process"], [
    "info",
  ]]);
  const stats: Any = toEcs({ event: "stats", time: T }, null, HOST);
  assertEquals([stats.event.kind, stats.event.category], ["metric", ["host"]]);
  const f: Any = toEcs({ event: "file", time: T, action: "create", path: "/tmp/l" }, null, HOST);
  assertEquals(f.file.type, undefined);
});

Deno.test("ecs: os-release values quoted or not, ID_LIKE as family", () => {
  assertEquals(parseOsRelease("NAME='Ubuntu'\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n"), {
    name: "Ubuntu",
    version: "24.04",
    platform: "ubuntu",
    family: "debian",
    full: null,
  });
});
