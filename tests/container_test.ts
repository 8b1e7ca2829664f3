import { assertEquals } from "@std/assert";
import { containerOfPath, parseContainer } from "../lib/tree/container.ts";
import { parseLoginUid } from "../lib/tree/proc_parse.ts";
import { ev, type FakeProc, harness } from "./fixtures.ts";

const ID = "0123456789abcdef".repeat(4);
const POD = "1f2e3d4c-5b6a-4789-8a9b-0c1d2e3f4a5b";

Deno.test("container: every runtime's cgroup path shape names the container", () => {
  const cases: [string, string | null, string | null][] = [
    [`/system.slice/docker-${ID}.scope`, ID, null],
    [`/docker/${ID}`, ID, null],
    [`/docker/${ID}/init.scope`, ID, null], // systemd inside the container
    [
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${
        POD.replaceAll("-", "_")
      }.slice/cri-containerd-${ID}.scope`,
      ID,
      POD,
    ],
    [`/kubepods/besteffort/pod${POD}/${ID}`, ID, POD],
    [`/kubepods.slice/kubepods-pod${POD.replaceAll("-", "_")}.slice/crio-${ID}.scope`, ID, POD],
    [`/machine.slice/libpod-${ID}.scope`, ID, null],
    [`/libpod_parent/libpod-${ID}`, ID, null],
  ];
  for (const [path, id, pod] of cases) {
    assertEquals(containerOfPath(path), { id, podUid: pod }, path);
  }
});

Deno.test("container: look-alikes are not containers", () => {
  for (
    const path of [
      "/",
      "/user.slice/user-0.slice/session-1.scope",
      `/system.slice/crio-conmon-${ID}.scope`, // CRI-O's monitor, not the container
      `/system.slice/${ID}`, // a bare id no runtime put there
      `/docker/${ID.slice(1)}`, // 63 hex
      `/system.slice/docker-${ID.toUpperCase()}.scope`,
      "/process_api/451223762f7756145d8e05392278e8c5",
    ]
  ) assertEquals(containerOfPath(path), null, path);
});

Deno.test("container: /proc/<pid>/cgroup with v1 and v2 lines", () => {
  const v1Only = `12:pids:/docker/${ID}\n1:name=systemd:/docker/${ID}\n0::/\n`;
  assertEquals(parseContainer(v1Only), { id: ID, podUid: null });
  const v2 = `0::/system.slice/docker-${ID}.scope\n`;
  assertEquals(parseContainer(v2), { id: ID, podUid: null });
  assertEquals(parseContainer("0::/init.scope\n4:memory:/x\n"), null);
  assertEquals(parseContainer(""), null);
});

Deno.test("procfs: loginuid parsing (unset is null)", () => {
  assertEquals(parseLoginUid("1000"), 1000);
  assertEquals(parseLoginUid("0"), 0);
  assertEquals(parseLoginUid("4294967295"), null);
  assertEquals(parseLoginUid(""), null);
  assertEquals(parseLoginUid("x"), null);
});

Deno.test("records: cwd and login uid on exec; container on every line, inherited by a child gone before its read", () => {
  const procs = new Map<number, FakeProc>([
    [1, { comm: "systemd", ppid: 0, startTicks: 1 }],
    [100, { comm: "shim", ppid: 1, startTicks: 50, cgroup: `0::/docker/${ID}\n` }],
  ]);
  const h = harness(procs);
  procs.set(101, {
    comm: "sh",
    ppid: 100,
    startTicks: 100,
    argv: ["sh"],
    cwd: "/srv/app",
    loginUid: 0,
    cgroup: `0::/docker/${ID}\n`,
  });
  // 102 is gone before its exec could be read: its container comes from its creator.
  h.run([
    ev.fork(101, 100, 1000),
    ev.exec(101, 1000.5),
    ev.fork(102, 101, 1001),
    ev.exec(102, 1001.5),
    ev.exit(102, 0, 101, 1002),
  ]);
  const [fork, exec, childFork, childExec, childExit] = h.records;
  assertEquals(fork.container_id, ID);
  assertEquals([exec.cwd, exec.login_uid, exec.login_user, exec.container_id], [
    "/srv/app",
    0,
    "root",
    ID,
  ]);
  assertEquals(exec.pod_uid, undefined);
  assertEquals([childFork.container_id, childExec.container_id, childExit.container_id], [
    ID,
    ID,
    ID,
  ]);
  // Unread cwd and login uid are null, never the creator's.
  assertEquals([childExec.cwd, childExec.login_uid, childExec.login_user], [null, null, null]);
  // Outside a container: no container fields at all; loginuid unset is null.
  procs.set(200, { comm: "cron", ppid: 1, startTicks: 200, loginUid: null, cwd: "/" });
  h.run([ev.fork(200, 1, 2000), ev.exec(200, 2000.5)]);
  const plain = h.records[h.records.length - 1];
  assertEquals([plain.container_id, plain.login_uid, plain.cwd], [undefined, null, "/"]);
});

Deno.test("records: a cgroup read after the process left its cgroups is not kept; the creator's container stands", () => {
  const procs = new Map<number, FakeProc>([
    [1, { comm: "systemd", ppid: 0, startTicks: 1 }],
    [100, { comm: "shim", ppid: 1, startTicks: 50, cgroup: `0::/docker/${ID}\n` }],
  ]);
  const h = harness(procs);
  // Exiting while read: status still says running, but its directory is gone and its v1
  // hierarchies already show the root (measured on a zombie in a pids cgroup).
  procs.set(101, { comm: "true", ppid: 100, startTicks: 100, cgroup: "8:pids:/\n0::/\n" });
  h.run([ev.fork(101, 100, 1000), ev.exec(101, 1000.5)]);
  const exec = h.records.find((r) => r.event === "exec")!;
  assertEquals([exec.cwd, exec.container_id], [null, ID]);
});
