// Records that travel (issue 14): cwd, login uid, container id from real cgroups, ECS lines.
import { assert, assertEquals } from "@std/assert";
import { compileHelper, noKernel, of, sleep, spawnAndWait, startProctree } from "./kernel.ts";
import type { WatchRecord } from "../lib/record/record.ts";
import { ECS_VERSION } from "../lib/sink/ecs.ts";

const ignore = noKernel !== null;

function near(a: string, b: string): void {
  const us = (t: string) => Date.parse(t) * 1000 + Number(t.slice(23, 26));
  assert(Math.abs(us(a) - us(b)) <= 1000, `${a} vs ${b}`);
}
const ID = "5eed".repeat(16);
const POD = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

/** Runs `script` with sh, waiting for it; the cgroup paths are made and removed around it. */
async function inCgroups(dirs: string[], script: string): Promise<number> {
  const mk = await spawnAndWait("sh", ["-c", `mkdir -p ${dirs.join(" ")}`]);
  assert(mk.status.success, `mkdir ${dirs.join(" ")}`);
  try {
    const { pid, status } = await spawnAndWait("sh", ["-c", script]);
    assert(status.success, script);
    return pid;
  } finally {
    // A cgroup can be removed once its processes have exited; children may still be ending.
    for (let i = 0; i < 50; i++) {
      const rm = await spawnAndWait("sh", ["-c", `rmdir ${[...dirs].reverse().join(" ")}`]);
      if (rm.status.success) break;
      await sleep(100);
    }
  }
}

Deno.test({ name: "kernel: cwd and login uid of a child of a shell", ignore }, async () => {
  const dir = await Deno.makeTempDir({ prefix: "proctree-cwd " });
  const w = await startProctree(["watch", "--events", "exec"]);
  // loginuid can be set once per session lineage (unset here): the child inherits it. The
  // shell changes both only after a pause longer than FRESH_READ_NS, so a read of its own
  // exec either describes it as exec'ed or is too late to be kept.
  const { pid: sh } = await spawnAndWait("sh", [
    "-c",
    `sleep 0.1; echo 65534 > /proc/self/loginuid && cd "${dir}" && sleep 0.2`,
  ]);
  await sleep(200);
  const { records } = await w.stop();
  await Deno.remove(dir);
  const child = records.filter((r) => r.event === "exec" && r.ppid === sh && r.comm === "sleep")
    .at(-1);
  assert(child, JSON.stringify(of(records, sh)));
  assertEquals([child.cwd, child.login_uid, child.login_user], [dir, 65534, "nobody"]);
  // The shell itself was exec'ed before either change: the test runner's cwd, login unset.
  // (null when read late; never the directory or login uid it changed to afterwards).
  const shell = of(records, sh, "exec")[0];
  assert(shell.cwd === Deno.cwd() || shell.cwd === null, String(shell.cwd));
  assertEquals(shell.login_uid, null);
});

Deno.test(
  { name: "kernel: a process moved into a container's cgroup, and its short-lived child", ignore },
  async () => {
    const v2 = `/sys/fs/cgroup/unified/proctree-test.slice/docker-${ID}.scope`;
    const v1 = `/sys/fs/cgroup/pids/kubepods/besteffort/pod${POD}/${ID}`;
    const w = await startProctree(["watch"]);
    const cases: [string[], string, string | undefined][] = [
      [[`/sys/fs/cgroup/unified/proctree-test.slice`, v2], v2, undefined],
      [
        [
          `/sys/fs/cgroup/pids/kubepods`,
          `/sys/fs/cgroup/pids/kubepods/besteffort`,
          `/sys/fs/cgroup/pids/kubepods/besteffort/pod${POD}`,
          v1,
        ],
        v1,
        POD,
      ],
    ];
    const shells: [number, string | undefined][] = [];
    for (const [dirs, into, pod] of cases) {
      // As a runtime does: move in, then exec the container's program; it runs a child
      // that exits at once (often before its /proc entry can be read).
      const sh = await inCgroups(
        dirs,
        `echo $$ > ${into}/cgroup.procs && exec sh -c '/bin/true; sleep 0.1; exit 0'`,
      );
      shells.push([sh, pod]);
    }
    await sleep(200);
    const { records } = await w.stop();
    for (const [sh, pod] of shells) {
      const exec = of(records, sh, "exec");
      // The first exec (sh before the move) is outside; the one after the move is inside.
      assertEquals(exec.length, 2, JSON.stringify(exec));
      assertEquals(exec[0].container_id, undefined);
      assertEquals([exec[1].container_id, exec[1].pod_uid], [ID, pod]);
      const kids = records.filter((r: WatchRecord) => r.ppid === sh && r.event !== "exit");
      const trueExec = kids.find((r) =>
        r.event === "exec" && (r.comm === "true" || r.comm === null)
      );
      assert(trueExec, JSON.stringify(kids));
      assertEquals(trueExec.container_id, ID, "the short-lived child is in the container too");
      for (const r of of(records, trueExec.pid!)) assertEquals(r.container_id, ID);
    }
  },
);

Deno.test(
  { name: "kernel: a child created straight into a container's cgroup, that forks first", ignore },
  async () => {
    // clone3(CLONE_INTO_CGROUP) moves nothing and writes no cgroup.procs: the child is in
    // other cgroups than its parent from birth, and does not exec; its own child execs. The
    // BPF exec facts must not take that exec for one in its creator's (outside) cgroups.
    const helper = await compileHelper("intocgroup");
    if (!helper) return;
    const dir = `/sys/fs/cgroup/unified/proctree-test-into.slice/docker-${ID}.scope`;
    const w = await startProctree(["watch"]);
    const mk = await spawnAndWait("mkdir", ["-p", dir]);
    assert(mk.status.success);
    try {
      const { status } = await spawnAndWait(helper, [dir, "-f", "/bin/sleep", "0.3"]);
      assert(status.success);
      await sleep(200);
      const { records } = await w.stop();
      const sleeps = records.filter((r) => r.event === "exec" && r.argv?.[0] === "/bin/sleep");
      assertEquals(sleeps.length, 1, JSON.stringify(sleeps));
      assertEquals(sleeps[0].container_id, ID);
    } finally {
      await spawnAndWait("sh", ["-c", `rmdir ${dir} ${dir}/..`]);
    }
  },
);

Deno.test(
  { name: "kernel: --format ecs carries the same values under ECS names", ignore },
  async () => {
    const json = await startProctree(["watch"]);
    const ecs = await startProctree(["watch", "--format", "ecs"]);
    const { pid: sh } = await spawnAndWait("sh", ["-c", "sleep 0.2; exit 3"]);
    await sleep(200);
    const a = await json.stop();
    const b = await ecs.stop();
    const docs = b.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    // deno-lint-ignore no-explicit-any
    const mine = docs.filter((d: any) => d.process?.pid === sh);
    const lines = of(a.records, sh);
    assertEquals(
      mine.map((d: { event: { action: string } }) => d.event.action),
      lines.map((r) => r.event),
    );
    for (let i = 0; i < lines.length; i++) {
      const r = lines[i], d = mine[i];
      // Two instances date events through their own clock calibration: within a millisecond.
      near(d["@timestamp"], r.time);
      assertEquals(d.ecs.version, ECS_VERSION);
      assertEquals(d.event.category, ["process"]);
      assertEquals(d.process.entity_id, r.id);
      assertEquals(d.process.parent.entity_id, r.parent_id);
      assertEquals(d.process.parent.pid, r.ppid);
      // ECS names a process by its executable (Elastic's agents do); exec lines carry it.
      if (r.event === "exec" && r.exe) assertEquals(d.process.name, r.exe.split("/").pop());
      else assertEquals(typeof d.process.name, "string");
      near(d.process.start, r.start_time!);
      assertEquals(d.user.name, r.user);
      assertEquals(d.proctree.chain, r.chain);
      assertEquals(typeof d.host.hostname, "string");
      if (r.event === "exec") {
        // Each instance reads /proc itself: one may read late and keep no argv or cwd
        // (README, Guarantees). Where both read them, they agree.
        if (r.argv && d.process.args) {
          assertEquals(d.process.args, r.argv);
          assertEquals(d.process.args_count, r.argv.length);
        }
        if (r.cwd && d.process.working_directory) {
          assertEquals(d.process.working_directory, r.cwd);
        }
        assertEquals(d.process.executable, r.exe);
        assertEquals(d.process.user.id, String(r.uid));
        assertEquals(d.event.type, ["start"]);
      }
      if (r.event === "exit") {
        assertEquals([d.process.exit_code, d.event.type], [3, ["end"]]);
        near(d.process.end, r.time);
        assertEquals(d.process.end, d["@timestamp"]);
        assert(Math.abs(d.event.duration - r.duration_ms! * 1e6) <= 1e6, "duration");
      }
    }
  },
);

/**
 * Elastic's prebuilt Linux detection rules (elastic/detection-rules, `rules/linux/`), each
 * as the EQL query reads it, over proctree's ECS documents of a harmless trigger. `:` and
 * `like` are case-sensitive wildcard matches; `in` is equality with any of the values.
 */
// deno-lint-ignore no-explicit-any
type Doc = any;
const wild = (pattern: string) =>
  new RegExp(
    "^" + pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$",
    "s",
  );
const matches = (v: unknown, ...patterns: string[]) =>
  (Array.isArray(v) ? v : [v]).some((x) =>
    typeof x === "string" && patterns.some((p) => wild(p).test(x))
  );
// The system's python, not a version manager's shim (whose scripts make a storm of their own).
const PYTHON = ["/usr/bin/python3", "/usr/local/bin/python3"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}) ?? "python3";
const SHELLS = ["bash", "dash", "sh", "tcsh", "csh", "zsh", "ksh", "fish"];
const startOf = (d: Doc, actions: string[]) =>
  d.event?.category?.includes("process") && d.host?.os?.type === "linux" &&
  d.event.type?.includes("start") && actions.includes(d.event.action);

const RULES: { name: string; trigger: string[]; fires: (d: Doc) => boolean }[] = [
  {
    // rules/linux/credential_access_private_key_password_searching_activity.toml
    name: "Private Key Searching Activity",
    trigger: ["find", "/root/", "-maxdepth", "0", "-name", "id_rsa*"],
    fires: (d) =>
      startOf(d, [
        "exec",
        "exec_event",
        "start",
        "ProcessRollup2",
        "process_started",
        "executed",
      ]) &&
      d.process.name === "find" &&
      matches(d.process.command_line, "*id_dsa*", "*id_rsa*", "*id_ed*", "*id_ecdsa*") &&
      matches(d.process.command_line, "*/home/*", "*/etc/ssh*", "*/root/*", "/"),
  },
  {
    // rules/linux/command_and_control_shell_via_background_process.toml
    name: "Potential Reverse Shell via Background Process",
    trigger: ["bash", "-c", 'setsid sh -c ": /dev/tcp/127.0.0.1/9 0>&1"; true'],
    fires: (d) =>
      startOf(d, ["exec", "exec_event", "start", "ProcessRollup2"]) &&
      ["setsid", "nohup"].includes(d.process.name) &&
      matches(d.process.args, "*/dev/tcp/*0>&1*") &&
      SHELLS.includes(d.process.parent?.name),
  },
  {
    // Base16 or Base32 Encoding/Decoding Activity
    name: "Base16 or Base32 Encoding/Decoding Activity",
    trigger: ["sh", "-c", "echo proctree | base32 >/dev/null"],
    fires: (d) =>
      startOf(d, [
        "exec",
        "exec_event",
        "start",
        "ProcessRollup2",
        "executed",
        "process_started",
      ]) &&
      ["base16", "base32", "base32plain", "base32hex"].includes(d.process.name) &&
      !matches(d.process.args, "--help", "--version"),
  },
  {
    // rules/linux/execution_python_tty_shell.toml (Interactive Terminal Spawned via Python)
    name: "Interactive Terminal Spawned via Python",
    trigger: [PYTHON, "-c", 'import pty; pty.spawn(["/bin/sh", "-c", "exit 0"])'],
    fires: (d) =>
      startOf(d, ["exec", "exec_event", "start"]) &&
      matches(d.process.parent?.name, "python*") &&
      [...SHELLS, "ash"].includes(d.process.name) &&
      d.process.parent.args_count >= 3 &&
      matches(d.process.parent.args, "*pty.spawn*") && matches(d.process.parent.args, "-c"),
  },
];

for (const rule of RULES) {
  Deno.test({
    name: `kernel: Elastic's rule "${rule.name}" fires on proctree's ECS output`,
    ignore,
  }, async () => {
    // argv is read from /proc after the event: a read that comes late keeps none (README,
    // Guarantees), so a trigger whose facts were not read is run again, at most 3 times.
    const seen: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const w = await startProctree(["watch", "--format", "ecs", "--events", "exec"]);
      const { pid } = await spawnAndWait(rule.trigger[0], rule.trigger.slice(1));
      await sleep(200);
      const { stdout } = await w.stop();
      const docs: Doc[] = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
      const mine = docs.filter((d) => d.process?.pid >= pid);
      if (mine.some(rule.fires)) return;
      seen.push(
        JSON.stringify(mine.map((d) => [d.process.name, d.process.args, d.process.parent])),
      );
    }
    throw new Error(`${rule.name} did not fire: ${seen.join("\n")}`);
  });
}
